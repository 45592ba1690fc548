"""The reaper's round over lapsed leases, against a real Redis: a database of its own, so the
session stack's reapers (which scan database 0) never act on what these tests write."""

from __future__ import annotations

import base64

import orjson
import pytest
import redis

from audiencesync.recovery.leases import Leases
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


def _held_upload(store: RunStore, run_id: str, chunk: int, tag: str) -> None:
    """The chunk's upload message, delivered to DEAD and never acknowledged."""
    body = base64.b64encode(orjson.dumps([[{"chunk": chunk}, run_id, chunk], {}, {}])).decode()
    message = {
        "body": body,
        "headers": {"task": "audiencesync.upload", "id": tag},
        "properties": {"body_encoding": "base64"},
    }
    store.r.hset("unacked", tag, orjson.dumps([message, "critical", "critical"]))
    store.r.zadd("unacked_index", {tag: NOW - 31})


def test_a_finished_chunk_whose_worker_died_before_the_chord_counted_it_is_handed_back(store):
    """Killed after the outcome, before Celery counted the result in the chord: the message
    goes back to its queue (its redelivery returns the outcome, the chord counts it); dropping
    the lease alone left the chord one short until the visibility timeout."""
    leases = _finished_chunk(store, "rec-r1", 0)
    _held_upload(store, "rec-r1", 0, "tag-r1")
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
