"""The sandbox over real HTTP: rate limit and penalty, usage headers, faults, latency, load."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import orjson
from sandbox_graph import Graph, error, madids, wait_until


def test_rate_limit_then_penalty_window(sandbox: Callable[..., Graph]) -> None:
    graph = sandbox(rate_per_s=5, penalty_s=0.5)
    audience_id = graph.create()  # with the 5 uploads, past usage_header_after_calls
    ids = madids(8)
    for i in range(5):
        assert graph.upload(audience_id, ids[i : i + 1], session_id=i + 1).status_code == 200
    for _ in range(2):
        response = graph.upload(audience_id, ids[5:6], session_id=10)
        assert response.status_code == 400
        err = error(response)
        assert (err["code"], err["error_subcode"], err["is_transient"]) == (80003, 2446079, True)
        usage = orjson.loads(response.headers["X-Business-Use-Case-Usage"])["1001"][0]
        assert usage["estimated_time_to_regain_access"] == 1
        assert usage["call_count"] == 100
    stats = graph.stats()
    assert (stats["throttled"], stats["calls_in_penalty"]) == (2, 1)
    assert stats["errors_by_code"] == {"80003": 2}
    assert len(graph.members(audience_id)) == 5  # refused calls applied nothing
    # Under 100 % once the penalty is over and the one-second window has room: then a call goes.
    wait_until(lambda: graph.usage_pct(audience_id) < 100)
    assert graph.upload(audience_id, ids[5:6], session_id=11).status_code == 200
    assert graph.stats()["upload_calls"] == 8  # the reads polled were not upload calls


def test_usage_header_appears_after_a_few_calls_then_on_every_answer(
    sandbox: Callable[..., Graph],
) -> None:
    graph = sandbox(rate_per_s=100)  # default usage_header_after_calls: 3
    audience_id = graph.create(account="777")  # the account's first call
    counts = []
    for i, madid in enumerate(madids(5)):
        response = graph.upload(audience_id, [madid], session_id=i + 1)
        app_usage = orjson.loads(response.headers["X-App-Usage"])
        assert set(app_usage) == {"call_count", "total_cputime", "total_time"}
        if "X-Business-Use-Case-Usage" not in response.headers:
            counts.append(None)
            continue
        usage = orjson.loads(response.headers["X-Business-Use-Case-Usage"])
        assert list(usage) == ["777"]
        entry = usage["777"][0]
        assert entry["type"] == "custom_audience"
        assert entry["ads_api_access_tier"] == "standard_access"
        counts.append(entry["call_count"])
    assert counts == [None, None, 3, 4, 5]  # whole percent of 100 calls/s
    graph.auth = {"access_token": "wrong"}
    refused = graph.upload(audience_id, madids(1), session_id=9)
    assert refused.status_code == 400
    assert "777" in orjson.loads(refused.headers["X-Business-Use-Case-Usage"])


def test_transient_errors_at_the_configured_share_before_and_after_apply(
    sandbox: Callable[..., Graph],
) -> None:
    graph = sandbox(transient_rate=0.4, seed=7)
    audience_id = graph.create()
    ids = madids(200)
    ok = []
    for i, madid in enumerate(ids):
        response = graph.upload(audience_id, [madid], session_id=i + 1)
        if response.status_code == 200:
            ok.append(madid)
            continue
        assert response.status_code == 500
        err = error(response)
        assert (err["code"], err["is_transient"]) == (2, True)
    stats = graph.stats()
    assert 50 <= stats["transient"] <= 110  # 80 expected
    before, after = stats["transient_before_apply"], stats["transient_after_apply"]
    assert before > 10 and after > 10 and before + after == stats["transient"]
    members = set(graph.members(audience_id))
    assert set(ok) < members  # the after-apply failures were applied anyway
    assert len(members) == len(ok) + after
    calls = graph.http.get(f"/_sandbox/audiences/{audience_id}/calls").json()
    failed_applied = [c for c in calls if c["status"] == 500 and c["applied"]]
    assert len(failed_applied) == after and all(c["code"] == 2 for c in failed_applied)


def test_latency_is_added_to_graph_calls(sandbox: Callable[..., Graph]) -> None:
    graph = sandbox(latency_ms=150, jitter_ms=50, seed=1)
    audience_id = graph.create()
    for seq in (1, 2):
        assert graph.upload(audience_id, madids(5, seed=seq), seq=seq).status_code == 200
    calls = graph.calls(audience_id)
    assert len(calls) == 2
    for call in calls:  # the sandbox's own clock: received before the latency, answered after
        assert call["answered_s"] - call["received_s"] >= 0.15


def test_64_concurrent_large_calls(sandbox: Callable[..., Graph]) -> None:
    graph = sandbox(latency_ms=50)
    audience_id = graph.create()
    batches = [madids(5_000, seed=s) for s in range(64)]

    def send(seq: int) -> int:
        response = graph.upload(audience_id, batches[seq], seq=seq + 1)
        return response.status_code

    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(send, range(64)))
    assert statuses == [200] * 64
    stats = graph.stats()
    assert stats["audiences"][audience_id]["members"] == 320_000
    assert stats["max_entries_per_call"] == 5_000
    response = graph.http.get(f"/_sandbox/audiences/{audience_id}/members")
    assert response.headers["transfer-encoding"] == "chunked"
    lines = response.text.splitlines()
    assert len(lines) == 320_000 and lines == sorted(lines)
