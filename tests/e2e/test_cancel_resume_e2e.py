"""Cancel a run, then resume it, with real processes: the resume finishes the run, and its report
says what the cancel dropped (issue 14, item 1)."""

from __future__ import annotations

import subprocess

import orjson
import pytest
from e2e_helpers import cli, dirty_rows
from test_operate_e2e import poll, store
from test_pipeline_e2e import write_csv

from audiencesync.cli import devstack
from audiencesync.domain.report import DROPPED_BY_CANCEL

pytestmark = pytest.mark.slow


def test_resume_after_cancel_finishes_and_reports_what_the_cancel_dropped(
    stack, sandbox_knobs, tmp_path
):
    rows = dirty_rows(12_000, seed=33)
    write_csv(tmp_path / "a.csv", rows)
    audience = stack.new_audience()
    sandbox_knobs(latency_ms=300)  # uploads slower than reading: the window fills and waits
    env = {**stack.env, "AUDIENCESYNC_CHUNK_SIZE": "1000"}
    env["AUDIENCESYNC_STAGING_WINDOW_CHUNKS"] = "4"
    args = ["upload", str(tmp_path / "a.csv"), "--column", "maid", "--audience-id", audience]
    upload = subprocess.Popen(
        devstack.cli_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    run_id = upload.stdout.readline().decode().strip()
    runs = store(stack)
    poll(lambda: int(runs.meta(run_id).get("chunks_done", 0)) >= 1, 30, "a chunk done")
    assert cli(env, "cancel", run_id).returncode == 0
    assert upload.wait(timeout=30) == 0
    cancelled = poll(lambda: runs.report(run_id), 30, "the cancelled run's report")
    assert cancelled["status"] == "cancelled" and cancelled["ids_read"] < len(rows)
    outcomes = runs.outcomes(run_id)
    dropped = [o for o in outcomes if (o["failed"] or "").startswith(DROPPED_BY_CANCEL)]
    assert dropped  # queued behind the throttle's slow start when the cancel came

    sandbox_knobs(latency_ms=0)
    resumed = cli(env, "resume", run_id, "--wait", "--json", timeout_s=120)
    report = orjson.loads(resumed.stdout.splitlines()[-1])
    assert report["ids_read"] == len(rows) and report["unaccounted"] == 0, report
    assert report["status"] == "completed_with_errors" and resumed.returncode == 1
    assert report["chunks_failed"] == len(dropped)
    assert report["ids_failed"] == sum(o["ids_failed"] for o in dropped)
    assert report["message"].startswith(
        f"resumed after a cancel: the {len(dropped)} chunk(s) queued when it was cancelled"
    )
    assert report["session_closed"]  # the cancel no longer holds the session open
    meta = runs.meta(run_id)
    assert "cancelled" not in meta and "aborted" not in meta
    assert meta["status"] == "completed_with_errors"
    sent = [c for c in stack.calls(audience) if not c["last_batch_flag"]]
    assert sum(c["entries"] for c in sent) == report["ids_uploaded"]
