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

    @classmethod
    def given(
        cls, path: str | None, *, column: str | None, query: str | None, table: str | None
    ) -> SourceSpec:
        """As a command or a declared audience gives it: a path is made absolute."""
        path = os.path.abspath(path) if path else None
        return cls(path=path, column=column, query=query, table=table)

    def to_meta(self) -> dict[str, str]:
        return {f"source_{k}": v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_meta(cls, meta: Mapping[str, str]) -> SourceSpec:
        return cls(**{k: meta.get(f"source_{k}") for k in ("path", "column", "query", "table")})

    def open(self, settings: Settings) -> Source:
        return open_source(
            self.path, column=self.column, query=self.query, table=self.table, settings=settings
        )


def open_source(
    spec: str | None,
    *,
    column: str | None = None,
    query: str | None = None,
    table: str | None = None,
    settings: Settings,
) -> Source:
    """Open a file path (.csv, .csv.gz, .parquet, .pq) or a Snowflake query/table.

    Fails fast with a one-line SourceError on anything that can be checked before streaming.
    Imports are local so a CSV run does not pay for the Snowflake connector.
    """
    given = [name for name, v in (("a path", spec), ("--query", query), ("--table", table)) if v]
    if len(given) != 1:
        got = " and ".join(given) if given else "none"
        raise SourceError(f"give exactly one of a path, --query or --table (got {got})")
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
    if lower.endswith((".csv", ".csv.gz")):
        from producers.csv_source import CsvSource

        return CsvSource(path, column=column)
    if lower.endswith((".parquet", ".pq")):
        from producers.parquet_source import ParquetSource

        return ParquetSource(path, column=column)
    raise SourceError(
        f"cannot read {path}: unsupported file type; use .csv, .csv.gz, .parquet or .pq"
    )
