"""The Snowflake source through the real connector, against fakesnow's server mode."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import snowflake.connector
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from source_helpers import open_error, read_all

from audiencesync.errors import SourceError
from audiencesync.settings import Settings
from producers.snowflake_source import SnowflakeSource, connect_kwargs
from producers.sources import BATCH_IDS, MAX_VALUE_CHARS
from producers.spec import open_source

BIG_ROWS = 120_000
pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")


def query_error(settings: Settings, **kw: str) -> str:
    return open_error(None, settings, **kw)


@pytest.fixture(scope="module")
def settings(fakesnow_kwargs) -> Iterator[Settings]:
    kw = fakesnow_kwargs
    conn = snowflake.connector.connect(**kw)
    cur = conn.cursor()
    for sql in (
        "create database db",
        "create schema db.s",
        "create table db.s.maids (maid varchar, n int)",
        "insert into db.s.maids values ('a', 1), (null, 2), ('b\nc', 3), "
        f"('{'x' * 300}', 4), ('', null)",
        "create table db.s.big (maid varchar)",
        f"insert into db.s.big select 'id-' || i::varchar from range({BIG_ROWS}) t(i)",
    ):
        cur.execute(sql)
    conn.close()
    yield Settings(
        snowflake_account=kw["account"],
        snowflake_user=kw["user"],
        snowflake_password=SecretStr(kw["password"]),
        snowflake_host=kw["host"],
        snowflake_port=kw["port"],
        snowflake_protocol="http",
        snowflake_database="DB",
        snowflake_schema="S",
    )


def test_query_streams_first_column_with_nulls_and_hygiene(settings: Settings) -> None:
    source = open_source(None, query="select maid, n from maids order by n", settings=settings)
    assert source.description == "snowflake query" and source.estimated_ids == 5
    assert read_all(source) == ["a", "", "b c", "x" * MAX_VALUE_CHARS, ""]


def test_query_column_by_name_case_insensitive_and_ints(settings: Settings) -> None:
    query = "select maid, n from maids order by n"
    source = open_source(None, query=query, column="n", settings=settings)
    assert read_all(source) == ["1", "2", "3", "4", ""]


def test_table_with_column_default_and_qualified_name(settings: Settings) -> None:
    source = open_source(None, table="db.s.maids", column="N", settings=settings)
    assert source.description == "snowflake table db.s.maids" and source.estimated_ids == 5
    assert sorted(read_all(source)) == ["", "1", "2", "3", "4"]
    assert len(read_all(open_source(None, table='"MAIDS"', settings=settings))) == 5


def test_table_missing_column_lists_columns(settings: Settings) -> None:
    message = query_error(settings, table="maids", column="idfa")
    assert "columns are: MAID, N" in message and "--column" in message


def test_query_error_is_one_line_source_error(settings: Settings) -> None:
    message = query_error(settings, query="select nope from maids")
    assert message.startswith("Snowflake query failed: ") and message.endswith("check the query")
    assert "NOPE" in message


@pytest.mark.parametrize(
    "table", ["maids; drop table maids", 'maids" ; drop table maids --', "maids --", "a.b.c.d"]
)
def test_table_name_injection_is_refused(settings: Settings, table: str) -> None:
    assert "is not a table name" in query_error(settings, table=table)
    assert len(read_all(open_source(None, table="maids", settings=settings))) == 5


@pytest.mark.parametrize("prefer_arrow", [True, False])
def test_result_larger_than_one_batch_streams_completely(
    settings: Settings, prefer_arrow: bool
) -> None:
    source = SnowflakeSource(
        settings, query="select maid from big order by 1", prefer_arrow=prefer_arrow
    )
    assert source.estimated_ids == BIG_ROWS and source.progress() == 0.0
    sizes, values = [], set()
    for batch in source.batches():
        sizes.append(len(batch))
        values.update(batch)
    source.close()
    assert sum(sizes) == BIG_ROWS and len(values) == BIG_ROWS and "id-119999" in values
    limit = BATCH_IDS if prefer_arrow else settings.snowflake_fetch_rows
    assert len(sizes) >= 2 and max(sizes) <= limit
    assert source.progress() == 1.0


def test_non_arrow_result_falls_back_to_fetchmany(settings: Settings) -> None:
    # fakesnow answers DML in JSON format, as Snowflake does: fetch_arrow_batches refuses it.
    open_source(None, query="create table scratch (a int)", settings=settings).close()
    source = open_source(None, query="insert into scratch values (1), (2)", settings=settings)
    assert read_all(source) == ["2"]  # the one row: number of rows inserted


def test_connection_failure_is_one_line_without_password(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    password = "s3cret-pass"
    bad = settings.model_copy(
        update={"snowflake_port": closed_port, "snowflake_password": SecretStr(password)}
    )
    message = query_error(bad, query="select 1")
    assert message.startswith("cannot connect to Snowflake") and password not in message


def test_missing_credentials_fail_before_connecting() -> None:
    assert "ACCOUNT" in query_error(Settings(), query="select 1")
    no_secret = Settings(snowflake_account="a", snowflake_user="u")
    assert "PASSWORD or" in query_error(no_secret, query="select 1")


def write_key(path: Path, passphrase: bytes | None) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    path.write_bytes(pem)
    return str(path)


def test_key_pair_connects(settings: Settings, tmp_path: Path) -> None:
    key_file = write_key(tmp_path / "k.p8", b"phrase")
    key_pair = settings.model_copy(
        update={
            "snowflake_password": None,
            "snowflake_private_key_file": key_file,
            "snowflake_private_key_passphrase": SecretStr("phrase"),
        }
    )
    assert read_all(open_source(None, query="select 'k' as m", settings=key_pair)) == ["k"]


def test_key_pair_is_passed_as_der_and_wins_over_password(tmp_path: Path) -> None:
    key_file = write_key(tmp_path / "k.p8", b"pass-phrase")
    settings = Settings(
        snowflake_account="acct",
        snowflake_user="u",
        snowflake_password=SecretStr("pw"),
        snowflake_private_key_file=key_file,
        snowflake_private_key_passphrase=SecretStr("pass-phrase"),
        snowflake_role="R",
    )
    kwargs = connect_kwargs(settings)
    assert "password" not in kwargs and kwargs["role"] == "R" and "host" not in kwargs
    loaded = serialization.load_der_private_key(kwargs["private_key"], password=None)
    assert loaded.key_size == 2048


def test_key_pair_wrong_passphrase_is_refused_without_echoing_it(tmp_path: Path) -> None:
    key_file = write_key(tmp_path / "k.p8", b"right-phrase")
    settings = Settings(
        snowflake_account="acct",
        snowflake_user="u",
        snowflake_private_key_file=key_file,
        snowflake_private_key_passphrase=SecretStr("wrong-phrase"),
    )
    with pytest.raises(SourceError) as caught:
        connect_kwargs(settings)
    assert "passphrase" in str(caught.value) and "wrong-phrase" not in str(caught.value)
    missing = settings.model_copy(update={"snowflake_private_key_file": str(tmp_path / "none")})
    with pytest.raises(SourceError, match="cannot read Snowflake key"):
        connect_kwargs(missing)
