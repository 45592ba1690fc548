"""Faults mid-run on a private stack: a worker killed (either queue) or stopped, Redis restarted:
the run still completes, every ID arrives, every chunk is counted once. Meta unreachable: every
chunk fails with the reason, and every ID is accounted for."""

from __future__ import annotations

import signal
import time

from e2e_helpers import assert_exact, dirty_rows, expected
from private_stack import CHUNK_SIZE, VISIBILITY_TIMEOUT_S

from audiencesync.cli import devstack


def test_upload_worker_killed_mid_call(private, tmp_path):
    """SIGKILL of the critical worker while its uploads wait on Meta: Redis redelivers them
    after the visibility timeout; Meta gets them twice (a set), the report counts them once."""
    audience = private.new_audience()
    private.configure_sandbox(latency_ms=1000)
    rows = dirty_rows(8_000, seed=31)
    run = private.upload(tmp_path / "a.csv", rows, audience)
    private.wait_meta(run.run_id, lambda m: int(m.get("chunks_done", 0)) >= 2)
    # The next calls are waiting on Meta: the killed worker's calls are applied there.
    devstack.wait_until(lambda: private.sandbox_stats()["inflight"] > 0, 30, "calls at Meta")
    held = private.kill_holding(private.workers("critical")[0], "audiencesync.upload")
    private.configure_sandbox(latency_ms=0)
    private.start_worker("critical")
    restored_at = private.wait_redelivered(held)
    assert restored_at >= min(held.values()) + VISIBILITY_TIMEOUT_S  # not before: no double run

    code, report, err = run.finish()
    assert code == 0, err
    assert_exact(private, audience, report, rows, CHUNK_SIZE)
    sent = private.batches_sent(audience)
    assert max(sent.values()) >= 2  # a killed call was applied by Meta and sent again
    assert report["requests"] < sum(sent.values()) + 1  # the lost calls are not counted


def test_prepare_worker_killed_holding_a_chunk(private, tmp_path):
    """SIGKILL of the standard worker (its pool children too) holding a prepare message."""
    audience = private.new_audience()
    rows = dirty_rows(20_000, seed=32)
    run = private.upload(tmp_path / "a.csv", rows, audience)
    held = private.kill_holding(private.workers("standard")[0], "audiencesync.prepare")
    private.start_worker("standard")
    private.wait_redelivered(held)

    code, report, err = run.finish()
    assert code == 0, err
    assert_exact(private, audience, report, rows, CHUNK_SIZE)


def test_upload_worker_stopped_gracefully_returns_its_work(private, tmp_path):
    """SIGTERM: the worker finishes its running calls and hands back what it had not started
    (retries waiting for their countdown included), so nothing waits for the visibility
    timeout."""
    audience = private.new_audience()
    # Some calls fail so retries wait for their countdown when the worker stops; at 0.2 a chunk
    # gives up (4 failed calls in a row) once in 600, where 0.3 made the test flaky.
    private.configure_sandbox(latency_ms=300, transient_rate=0.2)
    rows = dirty_rows(8_000, seed=33)
    run = private.upload(tmp_path / "a.csv", rows, audience)
    name = private.workers("critical")[0]
    private.wait_meta(run.run_id, lambda m: int(m.get("chunks_done", 0)) >= 2)
    assert private.unacked("audiencesync.upload")
    stopped_at = time.time()
    private.signal_worker(name, signal.SIGTERM)
    assert private.procs.pop(name).wait(timeout=15) == 0
    assert not private.unacked("audiencesync.upload")  # finished or handed back: none to redeliver
    private.configure_sandbox(latency_ms=0, transient_rate=0)
    private.start_worker("critical")

    code, report, err = run.finish()
    assert code == 0, (report.get("message"), err)
    assert_exact(private, audience, report, rows, CHUNK_SIZE)
    assert time.time() - stopped_at < VISIBILITY_TIMEOUT_S + 5


def test_redis_restarted_mid_run_with_aof(private, tmp_path):
    """Redis stops (gracefully, AOF flushed) and comes back: queues, chord state, staged chunks
    and the ledger survive; the producer and workers reconnect. A worker holding unacknowledged
    tasks at that instant may exit (kombu fails to hand them back over the closed connection):
    its supervisor restarts it, and Redis redelivers its tasks after the visibility timeout. A
    task taken off its queue just as Redis stopped is lost to kombu: the watchdog re-drives it."""
    audience = private.new_audience()
    private.configure_sandbox(latency_ms=200)
    rows = dirty_rows(10_000, seed=34)
    run = private.upload(tmp_path / "a.csv", rows, audience)
    private.wait_meta(run.run_id, lambda m: int(m.get("chunks_done", 0)) >= 2)
    with private.beat(), private.supervised():
        private.restart_redis(down_s=1.0)
        private.configure_sandbox(latency_ms=0)
        code, report, err = run.finish(timeout_s=120)
    assert code == 0, err
    assert_exact(private, audience, report, rows, CHUNK_SIZE)


def test_meta_unreachable_chunks_fail_with_the_reason_and_every_id_is_counted(private, tmp_path):
    """The Graph API cannot be reached: each chunk retries, then fails with the reason; the
    report accounts for every ID and the command exits non-zero."""
    audience = private.new_audience()
    port = private.stop_sandbox()
    try:
        rows = dirty_rows(2_000, seed=35)
        run = private.upload(tmp_path / "a.csv", rows, audience)
        code, report, err = run.finish()
    finally:
        private.start_sandbox(port=port)
    assert code == 1
    assert "starting anyway, uploads will retry" in err  # the preflight could not reach Meta
    assert report["status"] == "failed" and report["ids_uploaded"] == 0
    assert report["chunks_failed"] == report["chunks"] == 4
    reason = next(iter(report["failure_reasons"]))
    assert reason.startswith("gave up after 4 calls: cannot connect to http://127.0.0.1:")
    assert report["retries"] == 4 * 3
    want = expected(rows, CHUNK_SIZE)
    assert report["ids_failed"] == want["uploaded"] and report["unaccounted"] == 0
