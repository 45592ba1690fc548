"""What every source looks like (`Source`) and the value hygiene they share (the opening of
one is in spec.py).

A source streams raw values in source order, one string per row, so rows in = values out.
Values are not normalised here (the prepare step does that and counts rejects); only two
hygiene rules apply so staging stays safe and small: CR/LF become spaces and a value is cut to
MAX_VALUE_CHARS characters.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from typing import BinaryIO, Protocol

from audiencesync.domain.normalize import mask_ids
from audiencesync.errors import SourceError

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
    """An exception's message on one line, bounded (third-party messages can span many lines),
    any ID in it masked: a parser's message may quote the row it failed on."""
    text = mask_ids(" ".join(str(exc).split())) or type(exc).__name__
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
