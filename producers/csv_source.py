"""CSV source: plain or gzip (by the .gz suffix), header row required, one column streamed."""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from itertools import islice
from typing import TypeVar

from audiencesync.errors import SourceError
from producers.sources import BATCH_IDS, looks_like_id, open_file, pick_column, tidy

# csv's default field limit (128 KiB) crashes on one oversized field; this raises it but keeps
# a bound, so a runaway quoted field cannot take the whole file into memory.
FIELD_LIMIT_CHARS = 16 * 1024 * 1024
_T = TypeVar("_T")
# Never echo gzip's own messages: BadGzipFile quotes the file's first bytes, i.e. part of an ID.
_GZIP_ERRORS: tuple[type[Exception], ...] = (EOFError, zlib.error, gzip.BadGzipFile)


class CsvSource:
    """Streams one column of a comma-separated file with a header row."""

    def __init__(
        self,
        path: str,
        *,
        column: str | None = None,
        delimiter: str = ",",
        batch_ids: int = BATCH_IDS,
    ) -> None:
        self.path = path
        self._gzip = path.lower().endswith(".gz")
        self.description = f"{'csv.gz' if self._gzip else 'csv'} {path}"
        self.estimated_ids: int | None = None  # counting rows would mean reading the file twice
        self._batch_ids = batch_ids
        self._done = False
        self._last_progress = 0.0
        self._raw, self._size_bytes = open_file(path)
        try:
            stream = gzip.GzipFile(fileobj=self._raw, mode="rb") if self._gzip else self._raw
            # utf-8-sig drops a BOM; surrogateescape lets non-UTF-8 bytes through for the
            # prepare step to reject and count, instead of killing the run.
            self._text = io.TextIOWrapper(
                stream, encoding="utf-8-sig", errors="surrogateescape", newline=""
            )
            if csv.field_size_limit() < FIELD_LIMIT_CHARS:
                csv.field_size_limit(FIELD_LIMIT_CHARS)  # process-wide, so only ever raised
            self._reader = csv.reader(self._text, delimiter=delimiter)
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
        index = pick_column(header, column, self.path)
        if column is None and looks_like_id(header[index]):
            raise SourceError(
                f"{self.path} has no header row (its first line holds an ID); add a header row"
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
            line = self._reader.line_num
            raise SourceError(
                f"cannot parse {self.path} near line {line}: {e}; check the file"
            ) from None
        except OSError as e:
            raise SourceError(
                f"cannot read {self.path}: {e.strerror or e}; check the file"
            ) from None

    def batches(self) -> Iterator[list[str]]:
        reader, index, size = self._reader, self._index, self._batch_ids

        def next_batch() -> list[str]:
            # The only per-row work: pick the column; a short or blank row gives "".
            if index == 0:
                return [row[0] if row else "" for row in islice(reader, size)]
            return [row[index] if len(row) > index else "" for row in islice(reader, size)]

        while True:
            lines_before = reader.line_num
            batch = self._read(next_batch)
            if not batch:
                break
            # A row spanning more physical lines than one holds a CR or LF inside a quoted field;
            # otherwise the newline scan can be skipped.
            multiline = reader.line_num - lines_before > len(batch)
            yield tidy(batch, may_have_newlines=multiline)
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
