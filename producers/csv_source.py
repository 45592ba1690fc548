"""CSV source: plain or gzip (by the .gz suffix), one column streamed.

The delimiter is sniffed from the first line (the candidate found most often: comma, semicolon,
tab or pipe; a comma when none is there) unless given. A header row is expected; `no_header`
reads the first line as data, and `column` is then a 1-based column number.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from itertools import chain, islice
from typing import Protocol, TypeVar, cast

from audiencesync.errors import SourceError
from producers.sources import BATCH_IDS, looks_like_id, open_file, pick_column, tidy

# csv's default field limit (128 KiB) crashes on one oversized field; this raises it but keeps
# a bound, so a runaway quoted field cannot take the whole file into memory.
FIELD_LIMIT_CHARS = 16 * 1024 * 1024
# The fast path reads this much text at a time and splits it into lines (no csv parsing).
BLOCK_CHARS = 1024 * 1024
_T = TypeVar("_T")
# Never echo gzip's own messages: BadGzipFile quotes the file's first bytes, i.e. part of an ID.
_GZIP_ERRORS: tuple[type[Exception], ...] = (EOFError, zlib.error, gzip.BadGzipFile)
DELIMITERS = (",", ";", "\t", "|")
PEEK_BYTES = 64 * 1024


def sniff_delimiter(first_line: str) -> str:
    """The candidate delimiter the line holds most often (ties: the earlier one); else a comma."""
    counts = [first_line.count(d) for d in DELIMITERS]
    return DELIMITERS[counts.index(max(counts))] if max(counts) else ","


class _Peekable(Protocol):
    def peek(self, size: int = 0, /) -> bytes: ...


def _peek_line(stream: _Peekable) -> str:
    """The start of the first line, without consuming it (buffered and gzip files can peek:
    at least its first few kilobytes, which is enough to sniff a header)."""
    head = stream.peek(PEEK_BYTES)[:PEEK_BYTES]
    return head.split(b"\n", 1)[0].decode("utf-8", "replace")


def column_number(column: str | None) -> int:
    """A file without a header row: its ID column as a 0-based index from a 1-based number."""
    if column is None:
        return 0
    if not column.strip().isdigit() or int(column) < 1:
        raise SourceError(
            f"--column {column!r} with --no-header: give the column's number (1 = the first)"
        )
    return int(column) - 1


class CsvSource:
    """Streams one column of a delimited file."""

    def __init__(
        self,
        path: str,
        *,
        column: str | None = None,
        delimiter: str | None = None,
        no_header: bool = False,
        batch_ids: int = BATCH_IDS,
    ) -> None:
        self.path = path
        self._gzip = path.lower().endswith(".gz")
        self.description = f"{'csv.gz' if self._gzip else 'csv'} {path}"
        self.estimated_ids: int | None = None  # counting rows would mean reading the file twice
        self._batch_ids = batch_ids
        self._done = False
        self._line_offset = 0  # physical lines read before the current csv reader started
        self._last_progress = 0.0
        self._raw, self._size_bytes = open_file(path)
        try:
            stream = gzip.GzipFile(fileobj=self._raw, mode="rb") if self._gzip else self._raw
            self._delimiter = delimiter or self._read(
                lambda: sniff_delimiter(_peek_line(cast(_Peekable, stream)))
            )
            # utf-8-sig drops a BOM; surrogateescape lets non-UTF-8 bytes through for the
            # prepare step to reject and count, instead of killing the run.
            self._text = io.TextIOWrapper(
                stream, encoding="utf-8-sig", errors="surrogateescape", newline=""
            )
            if csv.field_size_limit() < FIELD_LIMIT_CHARS:
                csv.field_size_limit(FIELD_LIMIT_CHARS)  # process-wide, so only ever raised
            self._reader = csv.reader(self._text, delimiter=self._delimiter)
            if no_header:
                self._index = column_number(column)
            else:
                header = self._read(lambda: next(self._reader, None))
                self._index = self._check_header(header, column)
        except BaseException:
            self.close()
            raise

    def _check_header(self, header: list[str] | None, column: str | None) -> int:
        if header is None:
            raise SourceError(f"{self.path} is empty (no header row); check the file")
        if not header:
            raise SourceError(f"first line of {self.path} is blank; a CSV needs a header row")
        try:
            index = pick_column(header, column, self.path)
        except SourceError as exc:
            other = sniff_delimiter(self._delimiter.join(header))
            if len(header) > 1 or other == self._delimiter:
                raise
            raise SourceError(f"{exc} (or --delimiter {other!r}: the header holds it)") from None
        if column is None and looks_like_id(header[index]):
            raise SourceError(
                f"{self.path} has no header row (its first line holds an ID); add one, "
                "or pass --no-header"
            )
        return index

    def _read(self, read: Callable[[], _T]) -> _T:
        """Run one read, turning I/O, gzip and CSV errors into a one-line SourceError."""
        try:
            return read()
        except _GZIP_ERRORS:
            raise SourceError(
                f"cannot read {self.path}: not gzip or corrupt/truncated gzip data; check the file"
            ) from None
        except csv.Error as e:
            line = self._line_offset + self._reader.line_num
            raise SourceError(
                f"cannot parse {self.path} near line {line}: {e}; check the file"
            ) from None
        except OSError as e:
            raise SourceError(
                f"cannot read {self.path}: {e.strerror or e}; check the file"
            ) from None

    def batches(self) -> Iterator[list[str]]:
        if self._index == 0:
            yield from self._plain_batches()
        yield from self._csv_batches()

    def _plain_batches(self) -> Iterator[list[str]]:
        """Blocks of plain lines (no quote, delimiter or lone CR: one value a line) are split,
        not parsed: ~20x faster than csv. The first other block goes to the csv reader."""
        lines_read = 0
        while True:
            block = self._read(lambda: self._text.read(BLOCK_CHARS))
            if not block.endswith("\n"):
                block += self._read(lambda: self._text.readline(FIELD_LIMIT_CHARS))
            crlf = "\r" in block
            plain = '"' not in block and self._delimiter not in block
            if plain and crlf and block.count("\r") == block.count("\r\n"):
                block, crlf = block.replace("\r\n", "\n"), False  # Windows line ends
            if not plain or crlf or len(block) >= BLOCK_CHARS + FIELD_LIMIT_CHARS:
                # From here on csv parses, starting with this block (line numbers carried on).
                self._line_offset = self._reader.line_num + lines_read
                lines = chain(io.StringIO(block, newline=""), self._text)
                self._reader = csv.reader(lines, delimiter=self._delimiter)
                return
            if not block:
                return
            values = block.split("\n")
            if block.endswith("\n"):
                values.pop()  # the empty string after the last line's newline
            lines_read += len(values)
            for start in range(0, len(values), self._batch_ids):
                yield tidy(values[start : start + self._batch_ids], may_have_newlines=False)

    def _csv_batches(self) -> Iterator[list[str]]:
        reader, index, size = self._reader, self._index, self._batch_ids

        def next_batch() -> list[str]:
            # The only per-row work: pick the column; a short or blank row gives "".
            if index == 0:
                return [row[0] if row else "" for row in islice(reader, size)]
            return [row[index] if len(row) > index else "" for row in islice(reader, size)]

        while True:
            batch = self._read(next_batch)
            if not batch:
                break
            # Scanned for CR and LF (quoted fields may hold them): counting physical lines missed
            # a lone CR where a block handed over to csv, and the scan is cheap next to parsing.
            yield tidy(batch)
        self._done = True

    def progress(self) -> float | None:
        if self._done:
            return 1.0
        if not self._raw.closed:
            # The raw (compressed, for .gz) offset: the decompressed size is unknown up front.
            self._last_progress = min(1.0, self._raw.tell() / self._size_bytes)
        return self._last_progress

    def close(self) -> None:
        text = getattr(self, "_text", None)
        if text is not None:
            text.close()
        self._raw.close()
