"""The Redis key layout helpers: fakeredis for plain commands, the real server for Lua."""

import uuid

import fakeredis
import pytest
import redis

from audiencesync.runstore import RunStore, encode_raw

PAYLOAD = b'{"schema":"MOBILE_ADVERTISER_ID","data":["6d92078a-8246-4ba4-ae5b-76104861e7dc"]}'


@pytest.mark.parametrize("level", [0, 1, 9])
def test_prepared_payload_round_trips_with_or_without_compression(level):
    store = RunStore(fakeredis.FakeRedis(), compress_level=level)
    store.put_prepared("r", 0, PAYLOAD * 1, closer="x")
    stored = store.r.get(store.key("r", "prep", 0))
    assert (stored == PAYLOAD) is (level == 0)
    assert store.get_prepared("r", 0) == PAYLOAD
    assert store.closer("r") == "x"


def test_finish_chunk_counts_once_however_often_delivered(redis_url):
    store = RunStore(redis.Redis.from_url(redis_url))
    run = uuid.uuid4().hex
    store.create_run(run, {"started_at": 0})
    store.stage_raw(run, 0, ["a", "b"])
    for _ in range(3):
        store.finish_chunk(run, 0, ids_in=2, uploaded=2, failed=False)
    meta = store.meta(run)
    assert meta["chunks_done"] == "1" and meta["ids_uploaded"] == "2"
    assert store.staged_count(run) == 0


def test_encode_raw_refuses_values_with_newlines():
    assert encode_raw(["a", "\udcff"]) == b"a\n\xff"
    with pytest.raises(ValueError, match="newline"):
        encode_raw(["a\nb"])
