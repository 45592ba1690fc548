"""The run's Redis state against a real redis-server: staging fenced per attempt, the ledger
counting each chunk once whatever redelivery happens, the watchdog's compare-and-set."""

from __future__ import annotations

import secrets
import threading
import time

import pytest
import redis

from audiencesync.domain.report import chunk_result
from audiencesync.store.runs import RunStore


@pytest.fixture
def store(redis_url: str) -> RunStore:
    return RunStore(redis.Redis.from_url(redis_url), ttl_s=86_400)


@pytest.fixture
def run_id(store: RunStore):
    run_id = f"test-{secrets.token_hex(4)}"
    store.create_run(run_id, {"chunks_staged": 0, "ids_read": 0, "started_at": time.time()})
    yield run_id
    # The session's Redis is shared: leave nothing that other tests could count.
    store.r.delete(*store.r.keys(f"{store.key(run_id)}*"))
    store.r.zrem("as:runs", run_id)


def test_a_chunk_is_staged_once_in_order_by_the_current_attempt(store, run_id):
    assert store.stage_raw(run_id, 0, ["a", "b"], attempt=0)
    assert not store.stage_raw(run_id, 0, ["a", "b"], attempt=0)  # again: refused
    assert not store.stage_raw(run_id, 2, ["c"], attempt=0)  # out of order: refused
    assert store.begin_attempt(run_id, rereading=True) == 1
    assert not store.stage_raw(run_id, 1, ["c"], attempt=0)  # a superseded producer: refused
    assert store.stage_raw(run_id, 1, ["c"], attempt=1)
    meta = store.meta(run_id)
    assert (meta["chunks_staged"], meta["ids_read"]) == ("2", "3")
    assert store.inflight(run_id) == {0: 2, 1: 1}
    assert store.take_raw(run_id, 1) == b"c"


def test_the_first_outcome_is_recorded_and_counted_once(store, run_id):
    store.stage_raw(run_id, 0, ["a"] * 5, attempt=0)
    first = chunk_result(0, 5, uploaded=5, requests=1)
    later = chunk_result(0, 5, failed="prepared chunk missing from Redis", ids_failed=5)
    assert store.finish_chunk(run_id, 0, first) == first
    assert store.finish_chunk(run_id, 0, later) == first  # a redelivery gets the recorded one
    assert store.outcome(run_id, 0) == first and store.outcomes(run_id) == [first]
    meta = store.meta(run_id)
    assert (meta["chunks_done"], meta["ids_done"], meta["ids_uploaded"]) == ("1", "5", "5")
    assert meta["chunks_failed"] == "0"
    assert store.inflight(run_id) == {} and store.take_raw(run_id, 0) is None


def test_raw_chunk_stays_staged_until_the_chunk_finishes(store, run_id):
    store.stage_raw(run_id, 0, ["a"], attempt=0)
    store.put_prepared(run_id, 0, b'{"data":["a"]}', "a")
    assert store.take_raw(run_id, 0) == b"a"  # a redelivered prepare can redo its work
    store.finish_chunk(run_id, 0, chunk_result(0, 1, uploaded=1))
    assert store.take_raw(run_id, 0) is None and store.get_prepared(run_id, 0) is None


def test_watchdog_marks_only_idle_running_runs_and_progress_revives_them(store, run_id):
    now = time.time()
    assert run_id not in store.mark_stalled(now, stall_after_s=60)
    assert run_id in store.mark_stalled(now + 61, stall_after_s=60)
    assert store.meta(run_id)["status"] == "stalled"
    assert run_id not in store.mark_stalled(now + 61, stall_after_s=60)  # already marked
    store.stage_raw(run_id, 0, ["a"], attempt=0)
    store.finish_chunk(run_id, 0, chunk_result(0, 1, uploaded=1))
    assert store.meta(run_id)["status"] == "running"
    store.save_report(run_id, {"status": "completed"})
    assert run_id not in store.mark_stalled(now + 3600, stall_after_s=60)  # finished: left alone


def test_begin_attempt_drops_the_report_and_only_a_new_read_forgets_source_errors(store, run_id):
    store.abort(run_id, "token rejected")
    store.update(run_id, source_error="boom", producer_done=1)
    store.save_report(run_id, {"status": "failed"})
    assert store.begin_attempt(run_id, rereading=False) == 1  # the watchdog re-driving chunks
    meta = store.meta(run_id)
    assert (meta["aborted"], meta["source_error"]) == ("token rejected", "boom")
    assert store.begin_attempt(run_id, rereading=True, session_id=7) == 2  # resume reads again
    meta = store.meta(run_id)
    assert "aborted" not in meta and "source_error" not in meta
    assert (meta["status"], meta["producer_done"], meta["session_id"]) == ("running", "0", "7")
    assert store.report(run_id) is None


def test_a_waiter_wakes_when_the_report_is_saved_and_a_resume_closes_the_latch(store, run_id):
    assert not store.wait_finished(run_id, 0.05)  # no report yet: the wait times out
    woke: list[bool] = []
    waiters = [
        threading.Thread(target=lambda: woke.append(store.wait_finished(run_id, 3.0)))
        for _ in range(3)  # two `upload --wait` and a `status`-like reader: all wake
    ]
    for waiter in waiters:
        waiter.start()
    store.save_report(run_id, {"status": "completed"})
    for waiter in waiters:
        waiter.join(timeout=60)
    assert woke == [True] * 3
    assert store.r.ttl(store.key(run_id, "finished")) > 0  # gone with the run
    store.begin_attempt(run_id, rereading=False)  # resume: its waiters wait for the new report
    assert not store.wait_finished(run_id, 0.05)
