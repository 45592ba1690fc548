"""The report from the ledger's outcomes (pure): numbers that add up, or a verdict that says
what is missing and what to do."""

from __future__ import annotations

from audiencesync.domain.report import build_report, chunk_result
from audiencesync.store.meta import RunMeta

META = {"started_at": "1000.0", "ids_read": "25", "audience_id": "1"}
OUTCOMES = [
    chunk_result(0, 10, uploaded=8, rejected={"blank": 1}, duplicates=1, requests=1),
    chunk_result(1, 10, uploaded=10, requests=2, retries=1),
    chunk_result(2, 5, failed="gave up after 4 calls: no answer", ids_failed=5, requests=4),
]


def test_every_id_read_is_accounted_for():
    report = build_report("r", RunMeta.parse(META), OUTCOMES, finished_at=1010.0)
    assert report["unaccounted"] == 0 and report["chunks"] == 3
    assert (report["ids_uploaded"], report["ids_failed"], report["duplicates"]) == (18, 5, 1)
    assert report["status"] == "completed_with_errors"
    assert report["message"].endswith("upload again to retry them (re-adding IDs is harmless)")


def test_a_chunk_without_an_outcome_fails_the_run_and_says_resume():
    report = build_report("r", RunMeta.parse(META), OUTCOMES[1:], finished_at=1010.0)
    assert report["status"] == "failed" and report["unaccounted"] == 10
    assert report["message"].endswith("finish the run with: audiencesync resume r")


def test_a_source_failure_says_resume():
    meta = META | {"source_error": "cannot read a.csv.gz: corrupt gzip data"}
    report = build_report("r", RunMeta.parse(meta), OUTCOMES, finished_at=1010.0)
    assert report["status"] == "failed" and "corrupt gzip data" in report["message"]
    assert report["message"].endswith("audiencesync resume r")
