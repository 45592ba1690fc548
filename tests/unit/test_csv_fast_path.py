"""The CSV source's fast path (plain lines split, not parsed) against its csv-module path."""

from __future__ import annotations

import csv
import gzip
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from source_helpers import MAID, SETTINGS, read_all, write

from audiencesync.errors import SourceError
from producers import csv_source
from producers.csv_source import CsvSource
from producers.sources import MAX_VALUE_CHARS
from producers.spec import open_source


@settings(max_examples=300, deadline=None)
@example(cells=["", '"', '"', '\r"""\r'], block=1)  # a lone CR in a quoted field at a hand-over
@given(st.lists(st.text(alphabet='ab,"\r\n é', max_size=6), max_size=12), st.integers(1, 9))
def test_plain_line_fast_path_reads_like_the_csv_path(cells: list[str], block: int) -> None:
    """Tiny blocks put quotes, delimiters and CRs at every place: before, across and after a
    block boundary, where the fast path must hand the rest of the file to csv."""
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(csv_source, "BLOCK_CHARS", block):
        path = Path(tmp) / "f.csv"
        path.write_bytes(("maid\n" + "\n".join(cells)).encode())
        fast = read_all(CsvSource(str(path), batch_ids=3))
        with mock.patch.object(CsvSource, "_plain_batches", lambda self: iter(())):
            assert fast == read_all(CsvSource(str(path), batch_ids=3))


def test_single_column_one_megabyte_line_and_crlf_on_the_fast_path(tmp_path: Path) -> None:
    path = write(tmp_path / "big.csv", f"maid\r\n{MAID}\r\n" + "x" * 1_000_000 + "\r\nok\r\n")
    assert read_all(open_source(path, settings=SETTINGS)) == [MAID, "x" * MAX_VALUE_CHARS, "ok"]


def test_truncated_single_column_gzip_fails_as_source_error(tmp_path: Path) -> None:
    plain = ("maid\n" + f"{MAID}\n" * 200_000).encode()
    packed = gzip.compress(plain)
    path = tmp_path / "t.csv.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(SourceError, match="gzip"):
        read_all(CsvSource(str(path)))


def test_a_quote_after_plain_blocks_hands_over_to_csv_with_the_right_line(tmp_path: Path) -> None:
    """The csv module takes over mid-file; its errors name the file's physical line."""
    rows = 30_000  # more than one block of plain lines first
    path = tmp_path / "q.csv"
    path.write_text("maid\n" + f"{MAID}\n" * rows + '"a\nb"\nc\n', encoding="utf-8")
    assert read_all(CsvSource(str(path))) == [MAID] * rows + ["a b", "c"]
    path.write_text("maid\n" + f"{MAID}\n" * rows + f'"{"x" * 50}"\n', encoding="utf-8")
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(40)  # a MAID fits, the quoted field does not
        with (
            mock.patch.object(csv_source, "FIELD_LIMIT_CHARS", 40),
            pytest.raises(SourceError) as e,
        ):
            read_all(CsvSource(str(path)))
    finally:
        csv.field_size_limit(limit)
    assert f"near line {rows + 2}:" in str(e.value)
