"""File sources (CSV, gzip CSV, Parquet) and open_source, on real files in tmp_path."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from source_helpers import MAID, SETTINGS, open_error, read_all, write

from audiencesync.errors import SourceError
from producers.csv_source import CsvSource
from producers.parquet_source import ParquetSource
from producers.sources import BATCH_IDS, MAX_VALUE_CHARS
from producers.spec import open_source


def fake_maid(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


def write_maids_csv(path: Path, rows: int) -> str:
    with open(path, "w", encoding="utf-8") as file:
        file.write("id,maid\n")
        for start in range(0, rows, 100_000):
            stop = min(rows, start + 100_000)
            file.write("".join(f"{i},{fake_maid(i)}\n" for i in range(start, stop)))
    return str(path)


# --- CSV ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "column", "expected"),
    [
        ("id,maid", None, ["1", "2"]),  # default: first column
        ("id,maid", "maid", ["a", "b"]),
        ("id,MAID", "maid", ["a", "b"]),  # case-insensitive
        ("id,MAID,maid", "maid", ["x", "y"]),  # an exact match wins
    ],
)
def test_csv_picks_column(
    tmp_path: Path, header: str, column: str | None, expected: list[str]
) -> None:
    path = write(tmp_path / "a.csv", f"{header}\n1,a,x\n2,b,y\n")
    source = open_source(path, column=column, settings=SETTINGS)
    assert source.description == f"csv {path}" and source.estimated_ids is None
    assert read_all(source) == expected


def test_csv_gz_reads_like_plain_csv(tmp_path: Path) -> None:
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(b"maid\nA\nb\n"))
    source = open_source(str(path), settings=SETTINGS)
    assert source.description.startswith("csv.gz ")
    assert read_all(source) == ["A", "b"]


def test_csv_strips_utf8_bom_from_header(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfmaid,x\nv1,1\n")
    assert read_all(open_source(str(path), column="maid", settings=SETTINGS)) == ["v1"]


def test_csv_blank_short_and_empty_cells_become_empty_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "id,maid\n1,a\n2\n\n3,\n4,b\n")
    assert read_all(open_source(path, column="maid", settings=SETTINGS)) == ["a", "", "", "", "b"]


def test_csv_non_utf8_bytes_survive_surrogate_escaped(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"maid\n\xff\xfeabc\nok\n")
    values = read_all(open_source(str(path), settings=SETTINGS))
    assert values == ["\udcff\udcfeabc", "ok"]
    assert values[0].encode("utf-8", "surrogateescape") == b"\xff\xfeabc"


def test_csv_one_megabyte_field_is_cut_to_max_chars(tmp_path: Path) -> None:
    path = write(tmp_path / "big.csv", "maid,n\n" + "x" * 1_000_000 + ",1\nok,2\n")
    assert read_all(open_source(path, settings=SETTINGS)) == ["x" * MAX_VALUE_CHARS, "ok"]


def test_csv_newlines_inside_quoted_fields_become_spaces(tmp_path: Path) -> None:
    path = tmp_path / "nl.csv"
    path.write_bytes(b'maid,n\n"a\nb",1\n"c\r\nd",2\ne,3\r\n')
    assert read_all(open_source(str(path), settings=SETTINGS)) == ["a b", "c  d", "e"]


def test_csv_rows_in_equal_values_out_in_bounded_batches(tmp_path: Path) -> None:
    path = write_maids_csv(tmp_path / "m.csv", 100_000)
    source = open_source(path, column="maid", settings=SETTINGS)
    sizes, first, last = [], None, None
    for batch in source.batches():
        sizes.append(len(batch))
        first = first or batch[0]
        last = batch[-1]
    source.close()
    assert sum(sizes) == 100_000
    assert max(sizes) <= BATCH_IDS and len(sizes) >= 2
    assert (first, last) == (fake_maid(0), fake_maid(99_999))


@pytest.mark.parametrize("gz", [False, True])
def test_csv_progress_rises_to_one(tmp_path: Path, gz: bool) -> None:
    plain = write_maids_csv(tmp_path / "m.csv", 100_000)
    path = plain
    if gz:
        path = str(tmp_path / "m.csv.gz")
        Path(path).write_bytes(gzip.compress(Path(plain).read_bytes(), compresslevel=1))
    source = CsvSource(path, column="maid", batch_ids=5_000)
    assert source.progress() is not None and source.progress() < 0.5
    seen = [source.progress() for _ in source.batches()]
    source.close()
    assert seen == sorted(seen)
    assert 0 < seen[len(seen) // 2] < 1
    assert source.progress() == 1.0


def test_csv_header_only_yields_nothing(tmp_path: Path) -> None:
    assert read_all(open_source(write(tmp_path / "h.csv", "maid\n"), settings=SETTINGS)) == []


def test_csv_custom_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "a;b\n1;2,3\n")
    assert read_all(CsvSource(path, column="b", delimiter=";")) == ["2,3"]


# --- fail fast ---------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    message = open_error(str(tmp_path / "nope.csv"))
    assert "no such file" in message and "check the path" in message


@pytest.mark.parametrize("name", ["dir.csv", "dir.parquet", "dir"])
def test_directory(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    assert "is a directory" in open_error(str(tmp_path / name))


@pytest.mark.parametrize("name", ["e.csv", "e.parquet"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    assert "is empty" in open_error(write(tmp_path / name, ""))


def test_gzip_of_nothing_has_no_header(tmp_path: Path) -> None:
    path = tmp_path / "e.csv.gz"
    path.write_bytes(gzip.compress(b""))
    assert "no header row" in open_error(str(path))


def test_missing_column_lists_available_ones(tmp_path: Path) -> None:
    message = open_error(write(tmp_path / "a.csv", "id,maid_x\n1,2\n"), column="maid")
    assert (
        message
        == f"column 'maid' not in {tmp_path / 'a.csv'}; columns are: id, maid_x; pass --column"
    )


def test_headerless_file_is_refused_without_echoing_the_id(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", f"{MAID}\n{MAID}\n")
    assert "no header row" in open_error(path)
    message = open_error(path, column="maid")
    assert "<an ID>" in message and MAID not in message


def test_bad_extension(tmp_path: Path) -> None:
    message = open_error(write(tmp_path / "a.txt", "maid\n1\n"))
    assert ".csv, .csv.gz, .parquet or .pq" in message


def test_exactly_one_of_path_query_table(tmp_path: Path) -> None:
    assert "exactly one" in open_error(None)  # type: ignore[arg-type]
    assert "exactly one" in open_error(str(tmp_path / "a.csv"), query="select 1")


def test_not_gzip_fails_without_echoing_content(tmp_path: Path) -> None:
    message = open_error(write(tmp_path / "a.csv.gz", f"maid\n{MAID}\n"))
    assert "gzip" in message and "ma" not in message.split(":", 1)[1]


def test_truncated_gzip_fails_mid_stream_as_source_error(tmp_path: Path) -> None:
    plain = Path(write_maids_csv(tmp_path / "m.csv", 50_000)).read_bytes()
    path = tmp_path / "t.csv.gz"
    packed = gzip.compress(plain)
    path.write_bytes(packed[: len(packed) // 2])
    source = CsvSource(str(path), batch_ids=1_000)
    with pytest.raises(SourceError, match="gzip"):
        read_all(source)


def test_not_a_parquet_file(tmp_path: Path) -> None:
    message = open_error(write(tmp_path / "a.parquet", "maid\n1\n"))
    assert "not a Parquet file" in message


# --- Parquet -----------------------------------------------------------------------------------


def test_parquet_nulls_ints_and_hygiene(tmp_path: Path) -> None:
    path = str(tmp_path / "a.pq")
    maids = ["a", None, "x" * 1000, "b\r\nc"]
    pq.write_table(pa.table({"maid": maids, "n": pa.array([1, None, 3, 4], pa.int64())}), path)
    source = open_source(path, settings=SETTINGS)
    assert source.estimated_ids == 4 and source.description == f"parquet {path}"
    assert read_all(source) == ["a", "", "x" * MAX_VALUE_CHARS, "b  c"]
    assert read_all(open_source(path, column="N", settings=SETTINGS)) == ["1", "", "3", "4"]


def test_parquet_binary_column_keeps_bad_bytes(tmp_path: Path) -> None:
    path = str(tmp_path / "b.parquet")
    pq.write_table(pa.table({"maid": pa.array([b"ok", b"\xff", None], pa.binary())}), path)
    assert read_all(open_source(path, settings=SETTINGS)) == ["ok", "\udcff", ""]


def test_parquet_streams_bounded_batches_and_progress(tmp_path: Path) -> None:
    path = str(tmp_path / "big.parquet")
    pq.write_table(pa.table({"maid": [fake_maid(i) for i in range(150_000)]}), path)
    source = ParquetSource(path)
    assert source.estimated_ids == 150_000 and source.progress() == 0.0
    sizes = [len(batch) for batch in source.batches()]
    assert sizes == [65_536, 65_536, 18_928]
    assert source.progress() == 1.0
    source.close()


def test_parquet_missing_column(tmp_path: Path) -> None:
    path = str(tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": [1], "maid_x": ["a"]}), path)
    assert "columns are: id, maid_x" in open_error(path, column="maid")


# --- memory ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_csv_memory_stays_bounded_on_two_million_rows(tmp_path: Path) -> None:
    path = write_maids_csv(tmp_path / "m.csv", 2_000_000)
    source = open_source(path, column="maid", settings=SETTINGS)
    rows = 0
    tracemalloc.start()
    try:
        for batch in source.batches():
            rows += len(batch)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        source.close()
    assert rows == 2_000_000
    assert peak_bytes < 50 * 1024 * 1024, f"peak {peak_bytes / 2**20:.1f} MiB"
