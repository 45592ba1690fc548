"""The run report's arithmetic and verdicts (pure)."""

from audiencesync.domain.report import MAX_LISTED_FAILURES, build_report, chunk_result
from audiencesync.store.meta import RunMeta

META = {
    "audience_id": "42",
    "mode": "add",
    "started_at": "100.0",
    "ids_read": "30",
    "source": "csv a.csv",
}


def ok(chunk, uploaded=8, **kw):
    return chunk_result(
        chunk,
        10,
        uploaded=uploaded,
        rejected={"blank": 1},
        duplicates=1,
        requests=1,
        num_received=uploaded,
        **kw,
    )


def test_counts_add_up_and_status_is_completed():
    report = build_report(
        "r", RunMeta.parse(META), [ok(0), ok(1), ok(2, invalid_samples=["a", "b"])], 110.0
    )
    assert report["status"] == "completed" and report["message"] == ""
    assert report["ids_uploaded"] == 24 and report["ids_rejected"] == {"blank": 3}
    assert report["duplicates"] == 3 and report["unaccounted"] == 0
    assert report["duration_s"] == 10.0 and report["ids_per_s"] == 3.0
    assert report["invalid_samples"] == ["a", "b"]


def test_failed_chunks_are_listed_with_reasons():
    failed = chunk_result(
        1, 10, failed="code 100: bad", ids_failed=8, rejected={"blank": 1}, duplicates=1
    )
    report = build_report("r", RunMeta.parse(META), [ok(0), failed, ok(2)], 110.0)
    assert report["status"] == "completed_with_errors"
    assert report["failed_chunks"] == [{"chunk": 1, "ids": 8, "reason": "code 100: bad"}]
    assert report["failure_reasons"] == {"code 100: bad": 1}
    assert report["unaccounted"] == 0


def test_ids_missing_from_every_chunk_fail_the_run():
    report = build_report(
        "r", RunMeta.parse(META), [ok(0), ok(1)], 110.0
    )  # 30 read, 20 accounted for
    assert report["unaccounted"] == 10 and report["status"] == "failed"


def test_abort_and_source_error_fail_the_run():
    assert (
        build_report(
            "r", RunMeta.parse({**META, "aborted": "token"}), [ok(0), ok(1), ok(2)], 110.0
        )["message"]
        == "token"
    )
    report = build_report(
        "r", RunMeta.parse({**META, "source_error": "gzip broke"}), [ok(0), ok(1), ok(2)], 110
    )
    assert report["status"] == "failed" and "gzip broke" in report["message"]


def test_failure_list_and_samples_are_bounded():
    many = [
        chunk_result(n, 1, failed="x", ids_failed=1, invalid_samples=["s"] * 5)
        for n in range(MAX_LISTED_FAILURES + 10)
    ]
    report = build_report("r", RunMeta.parse({**META, "ids_read": str(len(many))}), many, 110.0)
    assert len(report["failed_chunks"]) == MAX_LISTED_FAILURES
    assert report["chunks_failed"] == len(many) and len(report["invalid_samples"]) == 3
    assert report["status"] == "failed"


def test_a_cancel_without_its_reason_and_a_resumed_cancel_are_reported_not_raised():
    cancelled_meta = RunMeta.parse({**META, "cancelled": "1"})
    cancelled = build_report("r", cancelled_meta, [ok(0), ok(1), ok(2)], 110.0)
    assert cancelled["status"] == "cancelled" and "cancelled" in cancelled["message"]
    dropped = chunk_result(1, 10, failed="not sent: cancelled by an operator", ids_failed=10)
    meta = {**META, "resumed_after_cancel": "1"}
    report = build_report("r", RunMeta.parse(meta), [ok(0), dropped, ok(2)], 110.0)
    assert report["status"] == "completed_with_errors"
    assert report["message"].startswith("resumed after a cancel: the 1 chunk(s) queued")
