"""Where a run's rows come from (`SourceSpec`, recorded in the run) and opening that source.

Apart from sources.py (the base every source builds on), so the source modules and this factory
import sources.py and never each other in a loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from audiencesync.errors import SourceError
from audiencesync.settings import Settings
from producers.sources import Source


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

    @classmethod
    def given(
        cls,
        path: str | None,
        *,
        column: str | None,
        query: str | None,
        table: str | None,
        delimiter: str | None = None,
        no_header: bool = False,
    ) -> SourceSpec:
        """As a command or a declared audience gives it: a path is made absolute."""
        path = os.path.abspath(path) if path else None
        return cls(path, column, query, table, delimiter, no_header)

    def to_meta(self) -> dict[str, str | int]:
        fields = {f"source_{k}": v for k, v in asdict(self).items() if v not in (None, False)}
        return fields | ({"source_no_header": 1} if self.no_header else {})

    @classmethod
    def from_meta(cls, meta: Mapping[str, str]) -> SourceSpec:
        texts = ("path", "column", "query", "table", "delimiter")
        spec = {k: meta.get(f"source_{k}") for k in texts}
        return cls(**spec, no_header=meta.get("source_no_header") == "1")

    def open(self, settings: Settings) -> Source:
        return open_source(
            self.path,
            column=self.column,
            query=self.query,
            table=self.table,
            settings=settings,
            delimiter=self.delimiter,
            no_header=self.no_header,
        )


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
