"""A producer that dies mid-stream: the watchdog flags the run, `resume` finishes it."""

from __future__ import annotations

import signal

import orjson
from e2e_helpers import assert_exact, dirty_rows
from private_stack import CHUNK_SIZE


def test_producer_killed_mid_stream_then_resumed(private, tmp_path):
    audience = private.new_audience()
    private.configure_sandbox(latency_ms=150)  # uploads slower than reading: the window fills
    rows = dirty_rows(15_000, seed=41)
    run = private.upload(tmp_path / "a.csv", rows, audience)
    private.wait_meta(run.run_id, lambda m: int(m.get("chunks_staged", 0)) >= 8)
    run.proc.send_signal(signal.SIGKILL)  # the chord never learns its size: no body, no report
    run.proc.communicate()
    private.configure_sandbox(latency_ms=0)

    with private.beat():
        meta = private.wait_meta(run.run_id, lambda m: m["status"] == "stalled")
    assert meta["producer_done"] == "0" and int(meta["ids_read"]) < len(rows)
    status = private.cli("status", run.run_id)
    assert status.returncode == 1 and "stalled" in status.stdout
    assert f"audiencesync resume {run.run_id}" in status.stderr

    store = private.store()
    done_before = {o["chunk"] for o in store.outcomes(run.run_id)}
    unfinished = set(store.inflight(run.run_id))  # staged, never published: resume re-drives
    assert done_before and unfinished
    resumed = private.cli("resume", run.run_id, "--wait", "--json")
    assert resumed.returncode == 0, resumed.stderr
    report = orjson.loads(resumed.stdout.splitlines()[-1])
    assert_exact(private, audience, report, rows, CHUNK_SIZE)  # the whole run, counted once
    sent = private.batches_sent(audience)
    assert all(sent[chunk + 1] == 1 for chunk in done_before)  # finished chunks: not resent
    assert all(sent[chunk + 1] == 1 for chunk in unfinished)

    again = private.cli("resume", run.run_id)
    assert again.returncode == 1 and "nothing to resume" in again.stderr
