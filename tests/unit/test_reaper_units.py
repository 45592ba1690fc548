"""The reaper's round over lapsed leases, against a real Redis: a database of its own, so the
session stack's reapers (which scan database 0) never act on what these tests write."""

from __future__ import annotations

import base64

import orjson
import pytest
import redis

from audiencesync.recovery.leases import FINALIZE, Leases
from audiencesync.settings import Settings
from audiencesync.store.runs import RunStore
from tasks.reaper import reap_once

NOW = 1_000_000.0
DEAD = "deadhost:4242:00ff"  # the lease token of a worker process that was killed


@pytest.fixture
def store(redis_url):
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/15")
    client.flushdb()
    yield RunStore(client)
    client.flushdb()


def _finished_chunk(store: RunStore, run_id: str, chunk: int) -> Leases:
    """A chunk staged, uploaded by DEAD (its outcome in the ledger), whose lease then lapsed."""
    store.create_run(run_id, {"audience_id": "1", "chunks_staged": 0})
    assert store.stage_raw(run_id, chunk, ["a"], attempt=0)
    leases = Leases(store.r, ttl_s=60)
    assert leases.take(run_id, chunk, DEAD, deadline=NOW - 1, now=NOW - 31)
    result = {"chunk": chunk, "ids_in": 1, "uploaded": 1, "failed": None}
    store.finish_chunk(run_id, chunk, result)
    return leases


def _held(store: RunStore, task: str, args: list, tag: str) -> None:
    """A message of `task`, delivered to DEAD and never acknowledged."""
    body = base64.b64encode(orjson.dumps([args, {}, {}])).decode()
    message = {
        "body": body,
        "headers": {"task": f"audiencesync.{task}", "id": tag},
        "properties": {"body_encoding": "base64"},
    }
    store.r.hset("unacked", tag, orjson.dumps([message, "critical", "critical"]))
    store.r.zadd("unacked_index", {tag: NOW - 31})


def test_a_finished_chunk_whose_worker_died_before_the_chord_counted_it_is_handed_back(store):
    """Killed after the outcome, before Celery counted the result in the chord: the message
    goes back to its queue (its redelivery returns the outcome, the chord counts it); dropping
    the lease alone left the chord one short until the visibility timeout."""
    leases = _finished_chunk(store, "rec-r1", 0)
    _held(store, "upload", [{"chunk": 0}, "rec-r1", 0], "tag-r1")
    settings = Settings()
    counts = reap_once(store, leases, settings, NOW)
    assert counts["restored"] == 1 and counts["dropped"] == 0
    assert not store.r.hexists("unacked", "tag-r1")
    back = orjson.loads(store.r.rpop("critical"))
    assert back["headers"]["id"] == "tag-r1" and back["headers"]["redelivered"] is True
    assert leases.deadline("rec-r1", 0) == NOW + settings.lease_s  # queued for the redelivery


def test_a_finished_chunk_with_no_message_left_only_loses_its_lease(store):
    leases = _finished_chunk(store, "rec-r2", 0)
    counts = reap_once(store, leases, Settings(), NOW)
    assert counts["dropped"] == 1 and counts["restored"] == 0
    assert leases.deadline("rec-r2", 0) is None and store.r.llen("critical") == 0


def _staged_run(store: RunStore, run_id: str, chunks: int, progress_at: float) -> Leases:
    """A run whose producer staged `chunks` chunks and is done; every chunk has its outcome."""
    store.create_run(run_id, {"audience_id": "1", "chunks_staged": 0})
    leases = Leases(store.r, ttl_s=60)
    for chunk in range(chunks):
        assert store.stage_raw(run_id, chunk, ["a"], attempt=0)
        store.finish_chunk(run_id, chunk, {"chunk": chunk, "ids_in": 1, "uploaded": 1, "failed": 0})
        leases.drop(run_id, chunk)
    store.staging_done(run_id)
    store.update(run_id, progress_at=progress_at)
    return leases


def test_the_producer_leases_the_runs_report_once_every_chunk_is_staged(store):
    leases = _staged_run(store, "rec-f0", 2, NOW)
    assert store.run("rec-f0").producer_done
    deadline = leases.deadline("rec-f0", FINALIZE)
    assert deadline is not None and deadline > NOW  # time.time() + lease_s


def test_a_finalize_whose_worker_died_is_handed_back(store):
    """Killed while it ran (polling the ledger, or closing the session): its lease runs out and
    its message goes back to its queue at once, not after the broker's visibility timeout."""
    leases = _staged_run(store, "rec-f1", 1, NOW - 60)
    assert leases.take("rec-f1", FINALIZE, DEAD, deadline=NOW - 1, now=NOW - 31)
    _held(store, "finalize", [[{"chunk": 0, "failed": False}], "rec-f1"], "tag-f1")  # the chord's
    settings = Settings()
    counts = reap_once(store, leases, settings, NOW)
    assert counts["restored"] == 1
    back = orjson.loads(store.r.rpop("critical"))
    assert back["headers"]["task"] == "audiencesync.finalize" and back["headers"]["redelivered"]
    assert leases.deadline("rec-f1", FINALIZE) == NOW + settings.lease_s


def test_a_runs_lease_waits_while_its_chunks_finish_and_goes_with_its_report(store):
    settings = Settings()
    leases = _staged_run(store, "rec-f2", 2, NOW - 1)  # a chunk finished a second ago
    assert leases.queue("rec-f2", FINALIZE, deadline=NOW - 1, now=NOW - 31)
    assert reap_once(store, leases, settings, NOW)["waiting"] == 1  # the body may be on its way
    assert leases.deadline("rec-f2", FINALIZE) == NOW - 1 + settings.lease_s  # a lease after it

    store.save_report("rec-f2", {"status": "completed"})
    store.r.delete(*store.r.keys("as:reap:*"))  # the first round's claim (real time)
    later = NOW + settings.lease_s + 1
    assert reap_once(store, leases, settings, later)["dropped"] == 1
    assert leases.deadline("rec-f2", FINALIZE) is None


def test_a_runs_lease_waits_for_a_chunk_without_its_outcome(store):
    leases = _staged_run(store, "rec-f3", 2, NOW - 60)
    store.update("rec-f3", chunks_staged=3)  # a chunk in flight: its own lease vouches for it
    assert leases.queue("rec-f3", FINALIZE, deadline=NOW - 1, now=NOW - 31)
    assert reap_once(store, leases, Settings(), NOW)["waiting"] == 1
