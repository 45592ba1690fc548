"""Leases, queue liveness and the broker's messages, against a real Redis."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
import redis

from audiencesync.recovery import liveness
from audiencesync.recovery.leases import FINALIZE, LEASES, Leases, member
from audiencesync.recovery.messages import Messages, chunk_of
from audiencesync.settings import longest_backoff_s


@pytest.fixture
def r(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    # Only what these tests wrote: the session's stack shares this Redis.
    for value, _ in client.zscan_iter(LEASES, match="rec-*"):
        client.zrem(LEASES, value)
    for pattern in ("as:run:rec-*", "as:reap:rec-*", "as:workers:q-*", "q-*"):
        for key in client.scan_iter(pattern):
            client.delete(key)
    client.hdel("unacked", "tag-1")
    client.zrem("unacked_index", "tag-1")


def test_a_lease_is_held_by_one_live_holder_and_free_once_it_lapses(r):
    leases, now = Leases(r, ttl_s=60), 1000.0
    assert leases.queue("rec-1", 3, deadline=now + 30, now=now)  # staged: queued
    assert leases.take("rec-1", 3, "a", deadline=now + 30, now=now)
    assert not leases.take("rec-1", 3, "b", deadline=now + 30, now=now + 1)  # a duplicate
    assert leases.renew("rec-1", 3, "a", deadline=now + 60)
    assert not leases.renew("rec-1", 3, "b", deadline=now + 90)
    assert leases.expired(now + 59) == []
    assert leases.expired(now + 61) == [("rec-1", 3)]
    assert leases.take("rec-1", 3, "b", deadline=now + 100, now=now + 61)  # "a" died
    assert not leases.renew("rec-1", 3, "a", deadline=now + 200)  # "a" lost it for good


def test_a_retry_hands_the_lease_back_queued_past_its_countdown(r):
    leases, now = Leases(r, ttl_s=60), 1000.0
    leases.take("rec-2", 0, "a", deadline=now + 30, now=now)
    assert not leases.queue("rec-2", 0, deadline=now + 500, now=now, token="b")  # not b's
    assert leases.queue("rec-2", 0, deadline=now + 500, now=now, token="a")
    assert leases.deadline("rec-2", 0) == now + 500
    assert leases.take("rec-2", 0, "c", deadline=now + 30, now=now + 1)  # queued: free to take
    leases.drop("rec-2", 0)
    assert r.zscore(LEASES, member("rec-2", 0)) is None


def test_one_reaper_claims_a_lapsed_lease(r):
    leases = Leases(r, ttl_s=60)
    assert leases.claim("rec-3/1", 5) and not leases.claim("rec-3/1", 5)


def _message(task: str, args: list) -> dict:
    body = base64.b64encode(orjson.dumps([args, {}, {}])).decode()
    return {
        "body": body,
        "headers": {"task": task, "id": "t"},
        "properties": {"body_encoding": "base64", "priority": 0},
    }


def test_chunk_messages_are_found_and_handed_back_once(r):
    prepare = _message("audiencesync.prepare", ["rec-4", 2, 10])
    upload = _message("audiencesync.upload", [{"chunk": 5}, "rec-4", 5])
    assert chunk_of(prepare) == ("rec-4", 2) and chunk_of(upload) == ("rec-4", 5)
    assert chunk_of(_message("audiencesync.finalize", [[], "rec-4"])) == ("rec-4", FINALIZE)
    assert chunk_of(_message("audiencesync.watchdog", [])) is None
    r.lpush("q-standard", orjson.dumps(prepare))
    r.hset("unacked", "tag-1", orjson.dumps([upload, "q-critical", "q-critical"]))
    r.zadd("unacked_index", {"tag-1": time.time()})

    messages = Messages(r, ("q-standard", "q-critical"))
    assert messages.waiting(("rec-4", 2)) and not messages.waiting(("rec-4", 5))
    [held] = messages.delivered(("rec-4", 5))
    assert messages.restore(held) and not messages.restore(held)  # a second reaper: nothing
    assert not r.hexists("unacked", "tag-1") and r.zscore("unacked_index", "tag-1") is None
    back = orjson.loads(r.rpop("q-critical"))  # first in line for the next worker
    assert chunk_of(back) == ("rec-4", 5) and back["headers"]["redelivered"] is True


def test_a_queue_without_a_live_worker_is_named(r):
    now, queues = 1000.0, ("q-standard", "q-critical")  # the session's workers beat on the real
    liveness.beat(r, "s@h", ["q-standard"], now, ttl_s=3600)
    liveness.beat(r, "c@h", ["q-critical"], now - 20, ttl_s=3600)
    assert liveness.missing_queues(r, now, dead_after_s=15, queues=queues) == ["q-critical"]
    liveness.beat(r, "c@h", ["q-critical"], now, ttl_s=3600)
    assert liveness.missing_queues(r, now, dead_after_s=15, queues=queues) == []
    liveness.gone(r, "s@h", ["q-standard"])
    assert liveness.missing_queues(r, now, dead_after_s=15, queues=queues) == ["q-standard"]
    assert "audiencesync worker --queues standard" in liveness.missing_message("standard")


def test_longest_backoff_sums_the_ceilings_within_the_budget():
    assert longest_backoff_s(1, 300, 10, 1800) == 511
    assert longest_backoff_s(1, 300, 10, 100) == 100
    assert longest_backoff_s(0.2, 1, 4, 20) == pytest.approx(1.4)


def test_a_mirror_refuses_only_a_snapshot_the_audience_cannot_match():
    from audiencesync.mirror.count import META_LAG_S, Seen, divergence, read_seen

    def why(snapshot_ids, before, upper, age_s=3600.0):
        seen = Seen(0, upper, 0.0)
        return divergence("9", snapshot_ids, before, seen, age_s)

    counted = Seen(600_000, 700_000, 0.0)
    assert "--resync --audience-id 9" in why(1_000_000, counted, 0)  # emptied
    assert why(1_000_000, counted, 1_000) is not None  # replaced with a few
    assert why(1_000_000, counted, 20_000) is None  # a low match rate, still possible
    assert why(1_000_000, Seen(0, 0, 0.0), 0) is None  # Meta has not counted our upload yet
    assert why(1_000_000, None, 0, age_s=META_LAG_S + 1) is not None  # it has had a day
    assert why(500, counted, 0) is None  # too small to tell
    assert read_seen({"approximate_count_lower_bound": -1}, 0) is None


def test_prepare_over_its_soft_time_limit_fails_the_chunk_with_the_reason(r, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    import tasks.prepare as prepare_module
    from workers.resources import get_store

    def too_slow(*_args, **_kwargs):
        raise SoftTimeLimitExceeded()

    store = get_store()
    store.create_run("rec-soft", {"audience_id": "1", "chunks_staged": 0})
    assert store.stage_raw("rec-soft", 0, ["a", "b"], attempt=0)
    monkeypatch.setattr(prepare_module, "prepare_staged", too_slow)
    result = prepare_module.prepare.run("rec-soft", 0, 2)
    assert result["failed"] == "prepare took longer than AUDIENCESYNC_PREPARE_TIME_LIMIT_S (300s)"
    assert result["ids_failed"] == 2


def test_a_dead_process_throttle_slots_are_freed_by_its_tag(r):
    from audiencesync.recovery.heartbeat import new_token, process_of, process_tag
    from audiencesync.settings import Settings
    from audiencesync.throttle.gate import Gate

    gate, account = Gate.from_settings(r, Settings()), "act_rec-dead"
    try:
        lease, _ = gate.enter(account)
        assert lease.startswith(process_tag()) and process_of(new_token()) == process_tag()
        assert gate.snapshot(account).inflight == 1
        assert gate.forget_process("otherhost:1:") == 0
        assert gate.forget_process(process_tag()) == 1
        assert gate.snapshot(account).inflight == 0
    finally:
        gate.reset(account)
