"""Staged payloads and raw chunks: encoding and optional compression (fakeredis suffices)."""

import fakeredis
import pytest

from audiencesync.store.runs import RunStore
from audiencesync.store.staging import encode_raw

PAYLOAD = b'{"schema":"MOBILE_ADVERTISER_ID","data":["6d92078a-8246-4ba4-ae5b-76104861e7dc"]}'


@pytest.mark.parametrize("level", [0, 1, 9])
def test_prepared_payload_round_trips_with_or_without_compression(level):
    store = RunStore(fakeredis.FakeRedis(), compress_level=level)
    store.put_prepared("r", 0, PAYLOAD, closer="x")
    stored = store.r.get(store.key("r", "prep", 0))
    assert (stored == PAYLOAD) is (level == 0)
    assert store.get_prepared("r", 0) == PAYLOAD
    assert store.closer("r") == "x"


def test_encode_raw_refuses_values_with_newlines():
    assert encode_raw(["a", "\udcff"]) == b"a\n\xff"
    with pytest.raises(ValueError, match="newline"):
        encode_raw(["a\nb"])
