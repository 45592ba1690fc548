"""What the destination does wrong, the pipeline survives, and the report says exactly."""

from __future__ import annotations

import pytest
from e2e_helpers import dirty_rows, expected
from test_pipeline_e2e import run_upload, write_csv

from audiencesync.settings import Settings

pytestmark = pytest.mark.slow


def csv_source(tmp_path, rows):
    from producers.sources import open_source

    write_csv(tmp_path / "a.csv", rows)
    return open_source(str(tmp_path / "a.csv"), column="maid", settings=Settings())


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


def test_throttle_episode_cools_the_account_down_and_is_reported(stack, sandbox_knobs, tmp_path):
    """The sandbox allows 3 calls/s, far below the gate's rate: the fleet is refused, cools
    down (2 s, its first probe within Meta's one-minute estimate), learns the budget from the
    usage figures and finishes exactly."""
    audience = stack.new_audience()
    sandbox_knobs(rate_per_s=3, penalty_s=0.5)
    before = stack.sandbox_stats()
    rows = dirty_rows(100_000, seed=22)
    report = run_upload(stack, csv_source(tmp_path, rows), audience)
    after = stack.sandbox_stats()
    assert report["status"] == "completed", report
    assert stack.members(audience) == expected(rows)["members"]
    throttle = report["throttle"]
    assert report["throttled"] >= 1 and throttle["episodes"] >= 1
    assert throttle["cooldown_s"] >= 2.0 * throttle["episodes"]  # nothing sent before it ended
    assert throttle["deferrals"] > 0 and throttle["budget_calls_per_window"] == 3
    # Only calls already on their way when the first refusal came land in the penalty.
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
