"""The inputs users really have (issue 14): hashed MAIDs, braces, delimiters, files without a
header row, and what rejected values say (unit level; the e2e side is test_inputs_e2e.py)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
from source_helpers import MAID, SETTINGS, read_all, write

from audiencesync.domain.audiences import parse_audiences
from audiencesync.domain.normalize import (
    HASHED,
    INVALID_FORMAT,
    MIXED_HASHED,
    MIXED_RAW,
    NOT_UTF8,
    OPTED_OUT,
    OPTED_OUT_ID,
    RAW,
    id_kind,
    prepare_chunk,
    prepare_staged,
)
from audiencesync.domain.rejections import likely_cause, merge_samples
from audiencesync.domain.report import build_report, chunk_result
from audiencesync.errors import ConfigError, SourceError
from audiencesync.store.meta import RunMeta
from audiencesync.store.staging import encode_raw
from producers.csv_source import CsvSource, sniff_delimiter
from producers.spec import SourceSpec, open_source
from producers.validate import check_rejected, validate

HASH = hashlib.sha256(MAID.encode()).hexdigest()


# --- hashed MAIDs -----------------------------------------------------------------------------
def test_hashed_ids_pass_as_they_are_lowered_and_never_hashed_again():
    chunk = prepare_chunk([HASH, f" {HASH.upper()} ", "nope"], hash_ids=True, kind=HASHED)
    assert chunk.entries == [HASH] and chunk.duplicates == 1
    assert chunk.rejected == {INVALID_FORMAT: 1}


def test_a_run_takes_one_kind_and_rejects_the_other_as_mixed():
    raw_run = prepare_staged(encode_raw([MAID, HASH]), 2, kind=RAW)
    assert raw_run.entries == [MAID] and raw_run.rejected == {MIXED_HASHED: 1}
    hashed_run = prepare_staged(encode_raw([MAID, HASH]), 2, kind=HASHED)
    assert hashed_run.entries == [HASH] and hashed_run.rejected == {MIXED_RAW: 1}
    assert not raw_run.samples and not hashed_run.samples  # IDs are never sampled


def test_the_opted_out_id_hashed_is_dropped_from_a_hashed_run():
    zero = hashlib.sha256(OPTED_OUT_ID.encode()).hexdigest()
    chunk = prepare_chunk([zero, HASH], kind=HASHED)
    assert chunk.entries == [HASH] and chunk.rejected == {OPTED_OUT: 1}


def test_the_kind_is_the_majority_of_valid_ids():
    assert id_kind([HASH, HASH, MAID, "x"]) == HASHED
    assert id_kind([f"{{{MAID.upper()}}}", HASH]) == RAW  # a tie goes to raw
    assert id_kind(["", "junk"]) is None


# --- braces and samples ------------------------------------------------------------------------
def test_braces_are_stripped_on_the_staged_path():
    chunk = prepare_staged(encode_raw([f"{{{MAID.upper()}}}", f" {{ {MAID} }}", "{x}"]), 3)
    assert chunk.entries == [MAID] and chunk.duplicates == 1
    assert chunk.rejected == {INVALID_FORMAT: 1} and chunk.samples == {INVALID_FORMAT: ["{x}"]}


def test_samples_are_bounded_cut_and_escaped():
    raw = [f"bad-{i}-" + "y" * 60 for i in range(10)] + ["caf\udcff"]
    chunk = prepare_chunk(raw)
    assert chunk.rejected == {INVALID_FORMAT: 10, NOT_UTF8: 1}
    assert [len(s) for s in chunk.samples[INVALID_FORMAT]] == [40, 40, 40]
    assert chunk.samples[NOT_UTF8] == ["caf\\xff"]


def test_samples_mask_an_id_inside_a_value_and_still_name_the_cause():
    values = [f"u1;{MAID.upper()};US", MAID.replace("-", ""), f"id={HASH}"]
    chunk = prepare_chunk(values)
    shown = chunk.samples[INVALID_FORMAT]
    assert shown[0] == "u1;xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx;" and len(shown) == 3
    assert not any(part in s.lower() for s in shown for part in [*MAID.split("-"), HASH[:8]])
    assert "semicolon" in likely_cause(chunk.rejected, chunk.samples)
    assert "without hyphens" in likely_cause({INVALID_FORMAT: 1}, {INVALID_FORMAT: shown[1:2]})
    assert "among other text" in likely_cause(
        {INVALID_FORMAT: 1},
        {INVALID_FORMAT: [prepare_chunk([f"id={MAID}"]).samples[INVALID_FORMAT][0]]},
    )


def test_report_merges_samples_across_chunks_bounded():
    results = [
        chunk_result(n, 2, rejected={INVALID_FORMAT: 2}, rejected_samples={INVALID_FORMAT: s})
        for n, s in enumerate([["a", "b"], ["c", "d"]])
    ]
    meta = RunMeta.parse({"started_at": "1", "ids_read": "4", "audience_id": "1"})
    report = build_report("r", meta, results, 2.0)
    assert report["rejected_samples"] == {INVALID_FORMAT: ["a", "b", "c"]}
    assert report["status"] == "failed" and "4 of 4 values (100.0%)" in report["message"]
    assert merge_samples([{"x": ["1"]}, {"x": ["2", "3", "4"]}]) == {"x": ["1", "2", "3"]}


@pytest.mark.parametrize(
    ("rejected", "samples", "cause"),
    [
        ({INVALID_FORMAT: 9}, {INVALID_FORMAT: ["u1;6d92078a-8246"]}, "semicolon"),
        ({INVALID_FORMAT: 9}, {INVALID_FORMAT: [MAID.replace("-", "")]}, "without hyphens"),
        ({INVALID_FORMAT: 9}, {INVALID_FORMAT: [f"id={MAID}"]}, "among other text"),
        ({INVALID_FORMAT: 9}, {INVALID_FORMAT: ["hello"]}, "not advertiser IDs"),
        ({"blank": 9}, {}, "--no-header"),
        ({MIXED_HASHED: 9, INVALID_FORMAT: 1}, {}, "mixes raw and SHA-256"),
    ],
)
def test_likely_cause_names_it(rejected, samples, cause):
    assert cause in likely_cause(rejected, samples)


def test_a_completed_run_that_rejected_most_values_says_why():
    ok = chunk_result(0, 10, uploaded=4, rejected={INVALID_FORMAT: 6})
    ok["rejected_samples"] = {INVALID_FORMAT: ["a|b"]}
    meta = RunMeta.parse({"started_at": "1", "ids_read": "10", "audience_id": "1"})
    report = build_report("r", meta, [ok], 2)
    assert report["status"] == "completed" and "pipe" in report["message"]


# --- CSV: delimiter, header, column number ------------------------------------------------------
@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_sniffed(tmp_path: Path, delimiter: str):
    text = delimiter.join(["user_id", "maid", "country"]) + "\n"
    text += delimiter.join(["u1", MAID, "US"]) + "\n"
    path = write(tmp_path / "a.csv", text)
    assert read_all(open_source(path, column="maid", settings=SETTINGS)) == [MAID]
    assert sniff_delimiter(text) == delimiter


def test_semicolons_in_gzip_with_a_bom_and_a_given_delimiter(tmp_path: Path):
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(f"\ufeffid;maid\r\n1;{MAID}\r\n".encode()))
    assert read_all(open_source(str(path), column="maid", settings=SETTINGS)) == [MAID]
    plain = write(tmp_path / "b.csv", f"maid;x\n{MAID};1\n")
    assert read_all(open_source(plain, delimiter=",", settings=SETTINGS)) == [f"{MAID};1"]
    with pytest.raises(SourceError, match=r"pass --column \(or --delimiter ';': the header"):
        open_source(plain, column="x", delimiter=",", settings=SETTINGS)
    tabbed = write(tmp_path / "c.csv", f"x\tmaid\n1\t{MAID}\n")
    assert read_all(open_source(tabbed, column="maid", delimiter="\\t", settings=SETTINGS)) == [
        MAID
    ]


def test_no_header_reads_the_first_line_as_data(tmp_path: Path):
    path = write(tmp_path / "a.csv", f"{MAID}\n{MAID.upper()}\n")
    assert read_all(open_source(path, no_header=True, settings=SETTINGS)) == [MAID, MAID.upper()]
    with pytest.raises(SourceError, match="--no-header"):
        open_source(path, settings=SETTINGS)  # the first line holds an ID: say what to pass
    wide = write(tmp_path / "b.csv", f"u1|{MAID}|US\nu2||FR\n")
    assert read_all(CsvSource(wide, column="2", no_header=True)) == [MAID, ""]
    with pytest.raises(SourceError, match="column's number"):
        CsvSource(wide, column="maid", no_header=True)


def test_csv_options_are_refused_for_other_sources_and_recorded_for_resume(tmp_path: Path):
    with pytest.raises(SourceError, match="for CSV files only"):
        open_source(str(tmp_path / "a.parquet"), no_header=True, settings=SETTINGS)
    with pytest.raises(SourceError, match="one character"):
        open_source(str(tmp_path / "a.csv"), delimiter=";;", settings=SETTINGS)
    spec = SourceSpec("/a.csv", "2", delimiter="|", no_header=True)
    meta = {k: str(v) for k, v in spec.to_meta().items()}
    assert SourceSpec.from_meta(meta) == spec
    assert SourceSpec.from_meta(SourceSpec("/a.csv").to_meta()) == SourceSpec("/a.csv")


# --- --max-rejected-pct ------------------------------------------------------------------------
def test_validation_counts_as_the_run_would_and_gates_on_the_share(tmp_path: Path):
    rows = [MAID, "", "junk", MAID.upper(), HASH] * 3
    path = write(tmp_path / "a.csv", "maid\n" + "\n".join(rows) + "\n")
    found = validate(open_source(path, settings=SETTINGS), chunk_size=4)
    assert found.ids_read == 15
    assert found.rejected == {"blank": 3, INVALID_FORMAT: 3, MIXED_HASHED: 3}
    assert found.samples == {INVALID_FORMAT: ["junk"]}  # distinct samples
    spec = SourceSpec(path)
    assert check_rejected(spec, SETTINGS, 60).rejected_pct == 60
    with pytest.raises(ConfigError, match=r"nothing was sent: 9 of 15 values \(60.0%\)"):
        check_rejected(spec, SETTINGS, 59.9)


def test_declared_audiences_take_the_new_keys():
    text = (
        '[audiences.a]\naudience_id = "1"\nfile = "/a.csv"\nevery_s = 60\n'
        'delimiter = ";"\nno_header = true\ncolumn = "2"\nmax_rejected_pct = 5\n'
    )
    (audience,), errors = parse_audiences(text)
    assert not errors
    assert (audience.delimiter, audience.no_header, audience.max_rejected_pct) == (";", True, 5)
    _, errors = parse_audiences(text.replace("= 5", "= 150").replace("= true", '= "yes"'))
    assert any("max_rejected_pct must be" in e for e in errors)
    assert any("no_header must be true or false" in e for e in errors)


def test_a_source_error_quoting_a_row_never_shows_the_id_in_it():
    from producers.sources import one_line

    text = one_line(ValueError(f"could not parse row 7: 'u1,{MAID},US'"))
    assert MAID not in text and "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" in text
