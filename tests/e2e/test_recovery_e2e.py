"""Recovery with the DEFAULT settings, no beat, real worker processes: a killed worker, a lost
message, a queue with no worker, the destination away for a minute. Every run completes with the
exact set, each chunk counted once. Recovery times are printed (the guarantees table quotes
them); the only time asserted is the guarantee itself (90 s), far above what the leases take."""

from __future__ import annotations

import shutil
import time

import pytest
from default_stack import DefaultStack
from e2e_helpers import assert_exact, dirty_rows

from audiencesync.cli import devstack
from audiencesync.recovery.liveness import missing_message
from audiencesync.recovery.messages import chunk_of

pytestmark = pytest.mark.slow
GUARANTEE_S = 90  # the bound, from the restart (or the loss) to the run's report


@pytest.fixture(scope="module")
def default_stack(tmp_path_factory):
    # Under pytest's temporary directory, kept after the session: a failure's logs stay to read
    # (its diagnosis prints their tails); Redis's data is removed.
    stack = DefaultStack(tmp_path_factory.mktemp("defaults"))
    try:
        yield stack.start()
    finally:
        stack.stop_all()
        shutil.rmtree(stack.workdir / "redis", ignore_errors=True)


@pytest.fixture
def defaults(default_stack):
    default_stack.ensure()
    default_stack.configure_sandbox(latency_ms=50)
    return default_stack


def _started(stack, run, chunks_done: int = 3) -> None:
    stack.wait_meta(run.run_id, lambda m: int(m.get("chunks_done", 0)) >= chunks_done, 60)


def _kill_and_restart(stack: DefaultStack, tmp_path, queues: tuple[str, ...], seed: int) -> float:
    audience = stack.new_audience()
    rows = dirty_rows(200_000, seed=seed)
    run = stack.upload_waiting(tmp_path / "a.csv", rows, audience)
    _started(stack, run)
    for queue in queues:
        stack.kill(queue)
    killed = stack.store().meta(run.run_id)
    time.sleep(5)
    restarted_at = time.time()
    for queue in queues:
        stack.start_worker(queue)
    code, report = run.finish()
    recovery_s = time.time() - restarted_at
    print(
        f"\nkilled {'+'.join(queues)} at chunk {killed.get('chunks_done')}/"
        f"{killed.get('chunks_staged')}: report {recovery_s:.1f}s after the restart"
    )
    assert code == 0, report
    assert_exact(stack, audience, report, rows)
    assert recovery_s < GUARANTEE_S
    return recovery_s


def test_critical_worker_killed_mid_upload(defaults, tmp_path):
    _kill_and_restart(defaults, tmp_path, ("critical",), seed=131)


def test_standard_worker_killed_mid_upload(defaults, tmp_path):
    _kill_and_restart(defaults, tmp_path, ("standard",), seed=132)


def test_both_workers_killed_mid_upload(defaults, tmp_path):
    _kill_and_restart(defaults, tmp_path, ("critical", "standard"), seed=133)


def test_critical_worker_killed_while_finalize_closes_the_session(defaults, tmp_path):
    """Killed while finalize waits for Meta's answer to the session's close, which Meta applies:
    the run's lease runs out, a reaper hands finalize back, and its close, told the session is
    closed, knows its earlier one landed. The run completes, its session closed."""
    audience = defaults.new_audience()
    rows = dirty_rows(30_000, seed=136)
    defaults.configure_sandbox(latency_ms=3000)  # time to kill the close's worker mid-call
    run = defaults.upload_waiting(tmp_path / "a.csv", rows, audience)
    store = defaults.store()

    def closing() -> bool:  # the close sent, and at the sandbox (every chunk has its answer)
        meta = store.run(run.run_id)
        return meta is not None and meta.close_tried and defaults.sandbox_stats()["inflight"] > 0

    defaults.wait_for(closing, 120, "finalize never sent the session's close")
    defaults.kill("critical")
    killed_at = time.time()
    defaults.start_worker("critical")
    code, report = run.finish()
    recovery_s = time.time() - killed_at
    print(f"\ncritical killed during the close: report {recovery_s:.1f}s after the kill")
    assert code == 0, report
    assert report["status"] == "completed" and report["session_closed"] is True
    assert_exact(defaults, audience, report, rows)
    closes = [c for c in defaults.calls(audience) if c["last_batch_flag"]]
    assert len(closes) == 2  # the killed worker's, and its redelivery's (told: closed)
    assert recovery_s < GUARANTEE_S


def test_no_worker_is_said_and_a_lost_message_is_sent_again(defaults, tmp_path):
    """No `critical` worker: `upload --wait` and `status` say so; the uploads wait in their
    queue. One of them is lost (removed from Redis, as kombu loses a message taken off the queue
    but not yet recorded): once a worker starts, the run goes on, and the lost chunk is sent
    again when its lease runs out; resume then publishes the finalize its chord lacks."""
    defaults.stop("critical")
    audience = defaults.new_audience()
    rows = dirty_rows(100_000, seed=134)
    began = time.time()
    run = defaults.upload_waiting(tmp_path / "a.csv", rows, audience)
    r = defaults.redis()
    said = missing_message("critical")
    told_at = defaults.wait_for(lambda: run.said(said), 30, "upload --wait said nothing")
    status = defaults.cli("status", run.run_id)
    assert said in status.stderr, status.stderr
    print(f"\nno critical worker: upload --wait said so {told_at - began:.1f}s after it started")

    defaults.wait_for(lambda: r.llen("critical") >= 3, 30, "no upload queued")
    raw = r.lindex("critical", 0)  # the next to be taken
    lost_run, lost_chunk = chunk_of(__import__("orjson").loads(raw))
    assert lost_run == run.run_id and r.lrem("critical", 1, raw) == 1
    lost_at = time.time()
    defaults.start_worker("critical")
    store = defaults.store()
    sent_at = defaults.wait_for(
        lambda: store.outcome(run.run_id, lost_chunk) is not None, GUARANTEE_S, "lost chunk"
    )
    code, report = run.finish()
    print(
        f"lost chunk {lost_chunk} sent again {sent_at - lost_at:.1f}s after it was lost; "
        f"report {time.time() - lost_at:.1f}s after"
    )
    assert code == 0, report
    assert_exact(defaults, audience, report, rows)
    assert store.outcome(run.run_id, lost_chunk)["uploaded"] > 0


def test_destination_unreachable_for_a_minute(defaults, tmp_path):
    """The Graph API goes away for a minute mid-run: every chunk outlasts it on its default
    retries; nothing fails, and no batch is sent more often than its failed calls require."""
    audience = defaults.new_audience()
    rows = dirty_rows(200_000, seed=135)
    calls_before = defaults.sandbox_stats()["upload_calls"]  # the sandbox serves other tests too
    run = defaults.upload_waiting(tmp_path / "a.csv", rows, audience)
    # Away once the first upload went: three chunks done (as the kill tests wait for) came, now
    # and then, when the ledger had caught up with calls that had all been made already.
    devstack.wait_until(
        lambda: defaults.sandbox_stats()["upload_calls"] > calls_before, 60, "the first upload"
    )
    defaults.proxy.stop()
    stopped_at = time.time()
    time.sleep(60)
    assert run.proc.poll() is None, "the run ended before the destination came back"
    defaults.proxy.start()
    back_at = time.time()
    code, report = run.finish(timeout_s=400)
    print(
        f"\ndestination away {back_at - stopped_at:.0f}s: report {time.time() - back_at:.1f}s "
        f"after it came back; retries {report['retries']}"
    )
    assert code == 0, (report.get("message"), report.get("failed_chunks"))
    assert_exact(defaults, audience, report, rows)
    assert report["retries"] > 0  # chunks waited the outage out on their retries
    # A call refused never reached Meta: sent once. One cut mid-flight may have been applied and
    # is sent again, as its retry requires: twice at most.
    sent = defaults.batches_sent(audience)
    assert max(sent.values()) <= 2 and report["requests"] >= sum(sent.values())
