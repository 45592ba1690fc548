"""What every source looks like (`Source`), the value hygiene they share, and `open_source`.

A source streams raw values in source order, one string per row, so rows in = values out.
Values are not normalised here (the prepare step does that and counts rejects); only two
hygiene rules apply so staging stays safe and small: CR/LF become spaces and a value is cut to
MAX_VALUE_CHARS characters.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import BinaryIO, Protocol

from audiencesync.errors import SourceError
from audiencesync.settings import Settings

MAX_VALUE_CHARS = 256  # longer values are invalid anyway; cutting bounds memory and Redis
BATCH_IDS = 65_536  # values per batch a source yields (the producer re-chunks to <= 10k)
_MAX_LISTED_COLUMNS = 20
# A header that looks like a MAID means the file has no header row; never echo it.
_ID_LIKE = re.compile(r"[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}")


class Source(Protocol):
    description: str  # safe to log: kind + path, or "snowflake query"
    estimated_ids: int | None  # total rows if cheaply known

    def batches(self) -> Iterator[list[str]]: ...

    def progress(self) -> float | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceSpec:
    """Where a run's rows come from, as the run records it (never a password): `resume` opens
    the same source again from it."""

    path: str | None = None  # absolute, so resume works from any directory
    column: str | None = None
    query: str | None = None
    table: str | None = None
    delimiter: str | None = None  # CSV only; sniffed when None
    no_header: bool = False  # CSV only

    def to_meta(self) -> dict[str, str | int]:
        fields = {f"source_{k}": v for k, v in asdict(self).items() if v not in (None, False)}
        return fields | ({"source_no_header": 1} if self.no_header else {})

    @classmethod
    def from_meta(cls, meta: Mapping[str, str]) -> SourceSpec:
        texts = ("path", "column", "query", "table", "delimiter")
        spec = {k: meta.get(f"source_{k}") for k in texts}
        return cls(**spec, no_header=meta.get("source_no_header") == "1")

    def open(self, settings: Settings) -> Source:
        csv_options = {"delimiter": self.delimiter, "no_header": self.no_header}
        return open_source(
            self.path,
            column=self.column,
            query=self.query,
            table=self.table,
            settings=settings,
            **csv_options,
        )


def tidy(values: list[str], *, may_have_newlines: bool = True) -> list[str]:
    """Apply the hygiene rules; returns `values` itself when (cheap C-level tests say) none apply.

    `may_have_newlines=False` lets a caller that knows better (CSV counts physical lines) skip
    the newline scan.
    """
    too_long = max(map(len, values), default=0) > MAX_VALUE_CHARS
    if may_have_newlines:
        joined = "".join(values)
        may_have_newlines = "\n" in joined or "\r" in joined
    if not (too_long or may_have_newlines):
        return values
    return [_tidy_one(v) for v in values]


def _tidy_one(value: str) -> str:
    value = value[:MAX_VALUE_CHARS]
    if "\n" in value or "\r" in value:
        value = value.replace("\r", " ").replace("\n", " ")
    return value


def rows_progress(done: bool, rows_read: int, total_rows: int | None) -> float | None:
    """Share read, for sources that know their row count up front."""
    if done:
        return 1.0
    return min(1.0, rows_read / total_rows) if total_rows else None


def one_line(exc: BaseException, limit_chars: int = 300) -> str:
    """An exception's message on one line, bounded (third-party messages can span many lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit_chars else text[: limit_chars - 3] + "..."


def open_file(path: str) -> tuple[BinaryIO, int]:
    """Open `path` for binary reading; returns the file and its size in bytes.

    Missing, unreadable, directory and empty files fail here, before any upload starts.
    """
    try:
        file = open(path, "rb")  # noqa: SIM115 (the source owns it until close())
    except IsADirectoryError:
        raise SourceError(f"{path} is a directory; pass a file") from None
    except FileNotFoundError:
        raise SourceError(f"cannot read {path}: no such file; check the path") from None
    except PermissionError:
        raise SourceError(f"cannot read {path}: permission denied; check its permissions") from None
    except OSError as e:
        raise SourceError(f"cannot read {path}: {one_line(e)}; check the path") from None
    size_bytes = os.fstat(file.fileno()).st_size
    if os.path.isdir(path):  # some platforms open directories without complaint
        file.close()
        raise SourceError(f"{path} is a directory; pass a file")
    if size_bytes == 0:
        file.close()
        raise SourceError(f"{path} is empty (0 bytes); check the file")
    return file, size_bytes


def looks_like_id(name: str) -> bool:
    return _ID_LIKE.fullmatch(name.strip()) is not None


def pick_column(names: Sequence[str], column: str | None, where: str) -> int:
    """Index of `column` in `names` (exact, then case-insensitive); the first column if None."""
    if not names:
        raise SourceError(f"{where} has no columns; check the source")
    if column is None:
        return 0
    if column in names:
        return names.index(column)
    wanted = column.strip().casefold()
    for index, name in enumerate(names):
        if name.strip().casefold() == wanted:
            return index
    shown = ["<an ID>" if looks_like_id(n) else repr(n)[1:-1] for n in names]
    listed = ", ".join(shown[:_MAX_LISTED_COLUMNS])
    if len(shown) > _MAX_LISTED_COLUMNS:
        listed += f", ... ({len(shown)} in all)"
    raise SourceError(f"column {column!r} not in {where}; columns are: {listed}; pass --column")


def open_source(
    spec: str | None,
    *,
    column: str | None = None,
    query: str | None = None,
    table: str | None = None,
    settings: Settings,
    delimiter: str | None = None,
    no_header: bool = False,
) -> Source:
    """Open a file path (.csv, .csv.gz, .parquet, .pq) or a Snowflake query/table.

    Fails fast with a one-line SourceError on anything that can be checked before streaming.
    Imports are local so a CSV run does not pay for the Snowflake connector.
    """
    given = [name for name, v in (("a path", spec), ("--query", query), ("--table", table)) if v]
    if len(given) != 1:
        got = " and ".join(given) if given else "none"
        raise SourceError(f"give exactly one of a path, --query or --table (got {got})")
    is_csv = os.fspath(spec or "").lower().endswith((".csv", ".csv.gz"))
    if (delimiter is not None or no_header) and not is_csv:
        raise SourceError("--delimiter and --no-header are for CSV files only; leave them out")
    delimiter = "\t" if delimiter in ("\\t", "tab") else delimiter  # as a shell passes it
    if delimiter is not None and len(delimiter) != 1:
        raise SourceError(f"--delimiter {delimiter!r}: give one character, or tab")
    if query:
        from producers.snowflake_source import SnowflakeSource

        return SnowflakeSource(settings, query=query, column=column)
    if table:
        from producers.snowflake_source import SnowflakeSource

        return SnowflakeSource(settings, table=table, column=column)
    path = os.fspath(spec or "")
    if os.path.isdir(path):  # say so, rather than "unsupported file type" for a bare dir name
        raise SourceError(f"{path} is a directory; pass a file")
    lower = path.lower()
    if is_csv:
        from producers.csv_source import CsvSource

        return CsvSource(path, column=column, delimiter=delimiter, no_header=no_header)
    if lower.endswith((".parquet", ".pq")):
        from producers.parquet_source import ParquetSource

        return ParquetSource(path, column=column)
    raise SourceError(
        f"cannot read {path}: unsupported file type; use .csv, .csv.gz, .parquet or .pq"
    )
