"""finalize on a real worker reports from the ledger, and never before every staged chunk has
an outcome: a header task delivered twice can fire the chord's body early."""

from __future__ import annotations

import secrets
import time

import redis

from audiencesync.cli.runs import wait_for_report
from audiencesync.domain.report import chunk_result
from audiencesync.store.runs import RunStore


def test_finalize_fired_early_waits_for_the_ledger(stack):
    from tasks.finalize import finalize

    store = RunStore(redis.Redis.from_url(stack.redis_url))
    run_id = f"early-{secrets.token_hex(4)}"
    store.create_run(
        run_id,
        {
            "audience_id": "424242",
            "mode": "add",
            "session_id": 1,
            "chunks_staged": 0,
            "ids_read": 0,
            "started_at": time.time(),
        },
    )
    for chunk in (0, 1):
        store.stage_raw(run_id, chunk, ["not-an-id"] * 3, attempt=0)
    store.update(run_id, producer_done=1)
    first = chunk_result(0, 3, rejected={"invalid_format": 3})
    store.finish_chunk(run_id, 0, first)

    body = finalize.apply_async(([first], run_id))  # as if chunk 0 had been counted twice
    deadline = time.monotonic() + 30
    while body.state != "RETRY":  # it ran, found chunk 1 without an outcome, and re-enqueued
        assert time.monotonic() < deadline, body.state
        time.sleep(0.05)
    assert store.report(run_id) is None
    store.finish_chunk(run_id, 1, chunk_result(1, 3, rejected={"invalid_format": 3}))
    report = wait_for_report(store, run_id, timeout_s=60)
    assert report["chunks"] == 2 and report["unaccounted"] == 0
    assert report["ids_rejected"] == {"invalid_format": 6}
