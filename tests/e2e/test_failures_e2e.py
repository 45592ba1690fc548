"""What the destination does wrong, the pipeline survives, and the report says exactly."""

from __future__ import annotations

from e2e_helpers import csv_source, dirty_rows, expected, run_upload


def test_transient_errors_are_retried_and_nothing_is_lost(stack, sandbox_knobs, tmp_path):
    audience = stack.new_audience()
    sandbox_knobs(transient_rate=0.5)  # half before applying the data, half after
    rows = dirty_rows(120_000, seed=21)
    report = run_upload(stack, csv_source(tmp_path, rows), audience)
    want = expected(rows)
    assert report["status"] == "completed", report
    calls = stack.calls(audience)
    assert report["requests"] == len(calls)
    # Every failed call was retried, except a "session closed" answer to the re-sent last batch
    # (the first one was applied though its answer was lost): that one ends the run.
    refusals = [c for c in calls if c["status"] != 200]
    closed = [c for c in refusals if c["last_batch_flag"] and c["code"] == 100]
    assert report["retries"] == len(refusals) - len(closed) > 0
    assert report["session_closed"]
    assert report["ids_uploaded"] == want["uploaded"]
    assert stack.members(audience) == want["members"]


def test_a_budget_far_below_the_gates_rate_is_read_from_metas_figures(
    stack, sandbox_knobs, tmp_path
):
    """The sandbox allows 3 calls/s, far below the gate's 200: the fleet reads the budget from
    Meta's usage figures and keeps within it; a refusal can only come while Meta shows no
    figure yet (its first calls), and then the account cools down (2 s, within Meta's
    one-minute estimate), and the episode is reported and logged once."""
    audience = stack.new_audience()
    sandbox_knobs(rate_per_s=3, penalty_s=0.5)
    before = stack.sandbox_stats()
    rows = dirty_rows(100_000, seed=22)
    # Chunks of 2,000: 50 calls, far more than the bucket holds at once.
    report = run_upload(stack, csv_source(tmp_path, rows), audience, chunk_size=2_000)
    after = stack.sandbox_stats()
    assert report["status"] == "completed", report
    assert stack.members(audience) == expected(rows)["members"]
    throttle = report["throttle"]
    assert throttle["budget_calls_per_window"] == 3 and throttle["budget_wait_s"] > 0
    assert throttle["episodes"] <= 1 and report["throttled"] <= 3
    assert throttle["cooldown_s"] >= 2.0 * throttle["episodes"]  # nothing sent before it ended
    assert after["calls_in_penalty"] - before["calls_in_penalty"] <= 3 * throttle["episodes"]
    log = (stack.logs / "critical.log").read_text()
    assert log.count(f"run={report['run_id']} throttling started") == throttle["episodes"]
    assert log.count(f"run={report['run_id']} throttling ended") == throttle["episodes"]


def test_token_rejected_mid_run_stops_the_run(stack, sandbox_knobs, tmp_path):
    audience = stack.new_audience()
    sandbox_knobs(token="rotated-token", latency_ms=20)
    rows = dirty_rows(300_000, seed=23)
    report = run_upload(stack, csv_source(tmp_path, rows), audience, staging_window_chunks=4)
    assert report["status"] == "failed"
    assert "AUDIENCESYNC_ACCESS_TOKEN" in report["message"]
    assert report["ids_uploaded"] == 0 and stack.members(audience) == set()
    # The producer stopped reading and few calls were made: no retry storm.
    assert report["ids_read"] < len(rows)
    assert report["requests"] <= 4
    assert report["unaccounted"] == 0
    assert report["ids_read"] == report["ids_failed"] + report["duplicates"] + sum(
        report["ids_rejected"].values()
    )


def test_unknown_audience_fails_every_chunk_with_metas_message(stack, tmp_path):
    rows = dirty_rows(25_000, seed=24)
    report = run_upload(stack, csv_source(tmp_path, rows), "424242")
    assert report["status"] == "failed"
    assert report["chunks_failed"] == report["chunks"] == 3
    assert "does not exist" in report["failed_chunks"][0]["reason"]
    assert report["retries"] == 0
    want = expected(rows)
    assert report["ids_failed"] == want["uploaded"] and report["unaccounted"] == 0
