"""The run's hash, read typed: RunMeta parses every flag, counter and id once."""

from __future__ import annotations

import secrets

import pytest
import redis

from audiencesync.errors import ConfigError
from audiencesync.store.meta import Mode, RunMeta, Status
from audiencesync.store.runs import RunStore


def test_a_runs_hash_is_read_typed(redis_url):
    store = RunStore(redis.Redis.from_url(redis_url))
    run_id = f"meta-{secrets.token_hex(4)}"
    store.create_run(
        run_id,
        {
            "audience_id": "42",
            "mode": "mirror",
            "hash": 1,
            "session_id": 7,
            "remove_session_id": 9,
            "removals_from": 3,
            "source_rejected": '{"bad": 2}',
            "started_at": 100.5,
            "chunks_staged": 0,
            "ids_read": 0,
            "producer_done": 0,
        },
    )
    assert store.stage_raw(run_id, 0, ["a", "b"], attempt=0)
    store.update(run_id, producer_done=1)
    meta = store.existing(run_id)
    assert (meta.mode, meta.status, meta.hash_ids, meta.attempt) == (
        Mode.MIRROR,
        Status.RUNNING,
        True,
        0,
    )
    assert (meta.chunks_staged, meta.ids_read, meta.producer_done, meta.source_done) == (
        1,
        2,
        True,
        False,
    )
    assert (meta.session_id, meta.remove_session_id, meta.removals_from) == (7, 9, 3)
    assert meta.source_rejected == {"bad": 2} and meta.started_at == 100.5
    assert meta.raw == store.meta(run_id)  # the hash itself is as Redis holds it
    store.cancel(run_id)
    cancelled = store.existing(run_id)
    assert cancelled.cancelled and "cancelled by an operator" in (cancelled.aborted or "")


def test_no_such_run_is_none_or_one_line_error(redis_url):
    store = RunStore(redis.Redis.from_url(redis_url))
    assert store.run("no-such-run") is None
    with pytest.raises(ConfigError, match="no run no-such-run in this Redis"):
        store.existing("no-such-run")


def test_a_run_recorded_before_newer_fields_reads_with_their_defaults():
    meta = RunMeta.parse({"audience_id": "1", "session_id": "5", "started_at": "1"})
    assert (meta.mode, meta.status, meta.removals_from) == (Mode.ADD, Status.RUNNING, None)
    assert not (meta.session_closed or meta.cancelled or meta.aborted)
