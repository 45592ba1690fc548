"""The CSV source's fast path (plain lines split, not parsed) against its csv-module path."""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from test_sources import MAID, SETTINGS, read_all, write

from producers import csv_source
from producers.csv_source import CsvSource
from producers.sources import MAX_VALUE_CHARS, open_source


@settings(max_examples=300, deadline=None)
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
