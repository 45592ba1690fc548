"""Snowflake source: a query (run as given) or a table, streamed as Arrow result batches."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import snowflake.connector
from pydantic import SecretStr
from snowflake.connector.errors import Error as SnowflakeError
from snowflake.connector.errors import NotSupportedError, ProgrammingError

from audiencesync.errors import SourceError
from audiencesync.settings import Settings
from producers.parquet_source import arrow_values
from producers.sources import BATCH_IDS, one_line, pick_column, rows_progress, tidy

log = logging.getLogger(__name__)

# db.schema.table, each part plain (letters, digits, _, $) or double-quoted ("" escapes a quote):
# the table name goes into SQL text, so nothing else may pass.
_PART = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_TABLE_NAME = re.compile(rf"{_PART}(?:\.{_PART}){{0,2}}")
_READ_ERRORS = (SnowflakeError, OSError, pa.ArrowException)


def connect_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for snowflake.connector.connect; key pair wins over a password."""
    if not settings.snowflake_account or not settings.snowflake_user:
        raise SourceError(
            "set AUDIENCESYNC_SNOWFLAKE_ACCOUNT and AUDIENCESYNC_SNOWFLAKE_USER to read Snowflake"
        )
    kwargs: dict[str, Any] = {
        "account": settings.snowflake_account,
        "user": settings.snowflake_user,
    }
    if settings.snowflake_private_key_file:
        kwargs["private_key"] = load_private_key_der(
            settings.snowflake_private_key_file, settings.snowflake_private_key_passphrase
        )
    elif settings.snowflake_password is not None:
        kwargs["password"] = settings.snowflake_password.get_secret_value()
    else:
        raise SourceError(
            "set AUDIENCESYNC_SNOWFLAKE_PASSWORD or AUDIENCESYNC_SNOWFLAKE_PRIVATE_KEY_FILE"
        )
    optional = {
        "warehouse": settings.snowflake_warehouse,
        "database": settings.snowflake_database,
        "schema": settings.snowflake_schema,
        "role": settings.snowflake_role,
        "host": settings.snowflake_host,
        "port": settings.snowflake_port,
        "protocol": settings.snowflake_protocol,
    }
    kwargs.update({name: value for name, value in optional.items() if value is not None})
    return kwargs


def load_private_key_der(path: str, passphrase: SecretStr | None) -> bytes:
    """The PEM private key at `path` as unencrypted PKCS#8 DER bytes, as the connector wants."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    setting = "AUDIENCESYNC_SNOWFLAKE_PRIVATE_KEY_FILE"
    try:
        pem = Path(path).read_bytes()
    except OSError as e:
        raise SourceError(
            f"cannot read Snowflake key {path}: {e.strerror}; check {setting}"
        ) from None
    secret = passphrase.get_secret_value() if passphrase is not None else ""
    try:
        key = serialization.load_pem_private_key(pem, password=secret.encode() or None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography's messages do not echo the passphrase, but say nothing more useful either.
        raise SourceError(
            f"cannot load Snowflake key {path}: not a PEM private key, or wrong or missing "
            "passphrase; check it and AUDIENCESYNC_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"
        ) from None
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SnowflakeSource:
    """Streams the first (or the named) column of a query's or a table's rows."""

    def __init__(
        self,
        settings: Settings,
        *,
        query: str | None = None,
        table: str | None = None,
        column: str | None = None,
        prefer_arrow: bool = True,
        connect_extras: Mapping[str, Any] | None = None,
    ) -> None:
        """`prefer_arrow=False` forces the fetchmany path; `connect_extras` (tests, proxies) are
        passed to snowflake.connector.connect as they are."""
        if (query is None) == (table is None):
            raise SourceError("give exactly one of --query or --table")
        if table is not None and not _TABLE_NAME.fullmatch(table):
            raise SourceError(
                f"{table!r} is not a table name; use table, schema.table or db.schema.table"
            )
        self.description = "snowflake query" if query is not None else f"snowflake table {table}"
        self.estimated_ids: int | None = None
        self._fetch_rows = settings.snowflake_fetch_rows
        self._prefer_arrow = prefer_arrow
        self._rows_read = 0
        self._done = False
        self._secrets = [
            s.get_secret_value()
            for s in (settings.snowflake_password, settings.snowflake_private_key_passphrase)
            if s is not None and s.get_secret_value()
        ]
        kwargs = connect_kwargs(settings) | dict(connect_extras or {})
        try:
            self._conn = snowflake.connector.connect(**kwargs)
        except SnowflakeError as e:
            raise SourceError(
                f"cannot connect to Snowflake account {settings.snowflake_account} as "
                f"{settings.snowflake_user}: {self._safe(e)}; check the AUDIENCESYNC_SNOWFLAKE_* "
                "settings"
            ) from None
        try:
            self._cursor = self._conn.cursor()
            self._index = self._start(query, table, column)
            self.estimated_ids = self._cursor.rowcount
        except BaseException:
            self.close()
            raise

    def _start(self, query: str | None, table: str | None, column: str | None) -> int:
        """Run the query (for a table: pick the column first); returns the column's index."""
        if table is not None:
            self._execute(f"SELECT * FROM {table} LIMIT 0", "check the table name")
            names = [d.name for d in self._cursor.description or []]
            name = names[pick_column(names, column, f"table {table}")]
            self._execute(f"SELECT {quote_identifier(name)} FROM {table}", "check the table")
            return 0
        assert query is not None
        self._execute(query, "check the query")
        if not self._cursor.description:
            raise SourceError("the Snowflake query returned no columns; pass a SELECT")
        names = [d.name for d in self._cursor.description]
        return pick_column(names, column, "the query's result")

    def _execute(self, sql: str, advice: str) -> None:
        try:
            self._cursor.execute(sql)
        except SnowflakeError as e:
            raise SourceError(f"Snowflake query failed: {self._safe(e)}; {advice}") from None

    def _safe(self, error: BaseException) -> str:
        text = one_line(error)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def batches(self) -> Iterator[list[str]]:
        try:
            yield from self._arrow_batches() if self._prefer_arrow else self._row_batches()
        except _READ_ERRORS as e:
            raise SourceError(
                f"reading the Snowflake result failed after {self._rows_read} rows: "
                f"{self._safe(e)}; check the connection and run again"
            ) from None
        self._done = True

    def _arrow_batches(self) -> Iterator[list[str]]:
        try:
            tables = self._cursor.fetch_arrow_batches()
        except (NotSupportedError, ProgrammingError):
            log.info("snowflake result is not Arrow; fetching rows instead")
            yield from self._row_batches()
            return
        for table in tables:
            # One Arrow result chunk can be large: slice it to keep batches bounded.
            for start in range(0, table.num_rows, BATCH_IDS):
                values = arrow_values(table.slice(start, BATCH_IDS).column(self._index))
                self._rows_read += len(values)
                yield values

    def _row_batches(self) -> Iterator[list[str]]:
        index = self._index
        while rows := self._cursor.fetchmany(self._fetch_rows):
            picked = (row[index] for row in rows)
            values = ["" if v is None else v if type(v) is str else str(v) for v in picked]
            self._rows_read += len(values)
            yield tidy(values)

    def progress(self) -> float | None:
        return rows_progress(self._done, self._rows_read, self.estimated_ids)

    def close(self) -> None:
        for resource in (getattr(self, "_cursor", None), self._conn):
            if resource is None:
                continue
            try:
                resource.close()
            except SnowflakeError as e:  # closing is best effort; the data is already read
                log.debug("closing snowflake %s failed: %s", type(resource).__name__, one_line(e))
