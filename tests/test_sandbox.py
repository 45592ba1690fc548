"""The sandbox over real HTTP: each of Meta's rules it enforces, and its inspection endpoints."""

from __future__ import annotations

import hashlib
import hmac
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest

from audiencesync.sandbox import SandboxConfig, start_in_thread

TOKEN = "sandbox-token"
V = "v26.0"
OPTED_OUT = "00000000-0000-0000-0000-000000000000"


def madids(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    hexes = (f"{rng.getrandbits(128):032x}" for _ in range(n))
    return [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in hexes]


class Graph:
    """A thin client speaking to the sandbox the way the real client will (form bodies)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, timeout=30, limits=httpx.Limits(max_connections=64)
        )
        self.auth: dict[str, Any] = {"access_token": TOKEN}

    def create(self, account: str = "1001") -> str:
        body = {"name": "test", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"}
        response = self.http.post(f"/{V}/act_{account}/customaudiences", data=body | self.auth)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def upload(
        self,
        audience_id: str,
        data: list[Any],
        *,
        op: str = "add",
        session: dict[str, Any] | None = None,
        session_id: int = 1,
        seq: int = 1,
        last: bool = False,
        schema: Any = "MOBILE_ADVERTISER_ID",
        **extra: Any,
    ) -> httpx.Response:
        if session is None:
            session = {"session_id": session_id, "batch_seq": seq, "last_batch_flag": last}
        form = {
            "payload": orjson.dumps({"schema": schema, "data": data}).decode(),
            "session": orjson.dumps(session).decode(),
        } | self.auth
        form.update(extra)
        method, edge = {
            "add": ("POST", "users"),
            "remove": ("DELETE", "users"),
            "replace": ("POST", "usersreplace"),
        }[op]
        return self.http.request(method, f"/{V}/{audience_id}/{edge}", data=form)

    def members(self, audience_id: str) -> list[str]:
        response = self.http.get(f"/_sandbox/audiences/{audience_id}/members")
        assert response.status_code == 200
        return response.text.splitlines()

    def stats(self) -> dict[str, Any]:
        return dict(self.http.get("/_sandbox/stats").json())


@pytest.fixture
def sandbox() -> Iterator[Callable[..., Graph]]:
    stops: list[Callable[[], None]] = []

    def start(**config: Any) -> Graph:
        base_url, stop = start_in_thread(SandboxConfig(port=0, **config))
        stops.append(stop)
        return Graph(base_url)

    yield start
    for stop in stops:
        stop()


@pytest.fixture
def graph(sandbox: Callable[..., Graph]) -> Graph:
    return sandbox()


def error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"message", "type", "code", "is_transient", "fbtrace_id"} <= set(body["error"])
    return dict(body["error"])


def test_create_and_add_gives_exact_members(graph: Graph) -> None:
    audience_id = graph.create()
    first, second = madids(300, seed=1), madids(200, seed=2)
    answer = graph.upload(audience_id, first, seq=1).json()
    assert answer == {
        "audience_id": audience_id,
        "session_id": "1",
        "num_received": 300,
        "num_invalid_entries": 0,
        "invalid_entry_samples": {},
    }
    assert graph.upload(audience_id, second + first[:10], seq=2, last=True).status_code == 200
    assert graph.members(audience_id) == sorted(set(first) | set(second))
    fields = "approximate_count_lower_bound,approximate_count_upper_bound,operation_status"
    info = graph.http.get(f"/{V}/{audience_id}", params={"fields": fields} | graph.auth).json()
    assert info["approximate_count_lower_bound"] == info["approximate_count_upper_bound"] == 500
    assert info["operation_status"] == {"code": 200, "description": "Normal"}
    stats = graph.stats()
    assert stats["upload_calls"] == 2 and stats["entries_received"] == 510
    assert stats["audiences"][audience_id] == {"members": 500, "calls": 2, "entries_received": 510}


def test_invalid_entries_are_counted_and_not_added(graph: Graph) -> None:
    audience_id = graph.create()
    good = madids(3)
    hashed = hashlib.sha256(good[0].encode()).hexdigest()
    bad = [good[1].upper(), f" {good[2]}", "not-an-id", 42, OPTED_OUT]
    answer = graph.upload(audience_id, [*good, hashed, *bad]).json()
    assert answer["num_received"] == 9
    assert answer["num_invalid_entries"] == 5
    samples = answer["invalid_entry_samples"]
    assert isinstance(samples, dict) and len(samples) == 3
    assert samples[good[1].upper()].startswith("upper case")
    assert graph.members(audience_id) == sorted([*good, hashed])


def test_multi_key_schema_and_malformed_rows(graph: Graph) -> None:
    audience_id = graph.create()
    ids = madids(4)
    rows: list[Any] = [[i] for i in ids] + [ids[0], [ids[1], ids[2]]]
    answer = graph.upload(audience_id, rows, schema=["MADID"]).json()
    assert answer["num_invalid_entries"] == 2
    assert graph.members(audience_id) == sorted(ids)


def test_over_10000_entries_is_a_vague_500(graph: Graph) -> None:
    audience_id = graph.create()
    ids = madids(10_001)
    response = graph.upload(audience_id, ids)
    assert response.status_code == 500
    assert error(response)["code"] == 1
    assert graph.members(audience_id) == []
    assert graph.upload(audience_id, ids[:10_000], session_id=2).status_code == 200
    stats = graph.stats()
    assert stats["oversized_calls"] == 1
    assert stats["max_entries_per_call"] == 10_001
    assert stats["errors_by_code"] == {"1": 1}


def test_token_is_checked(graph: Graph) -> None:
    audience_id = graph.create()
    for auth in ({"access_token": "wrong"}, {}):
        graph.auth = auth
        response = graph.upload(audience_id, madids(1))
        assert response.status_code == 400
        assert (error(response)["code"], error(response)["type"]) == (190, "OAuthException")
    response = graph.http.get(f"/{V}/{audience_id}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.json()["id"] == audience_id
    assert graph.members(audience_id) == []


def test_appsecret_proof_is_required_and_checked(sandbox: Callable[..., Graph]) -> None:
    secret = "s3cret"
    graph = sandbox(app_secret=secret)

    def proof(message: str, key: str = secret) -> str:
        return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()

    now = int(time.time())
    graph.auth = {"access_token": TOKEN, "appsecret_proof": proof(TOKEN)}  # the older form
    audience_id = graph.create()
    refused = {
        "missing": {"access_token": TOKEN},
        "wrong key": {"access_token": TOKEN, "appsecret_proof": proof(TOKEN, "other")},
        "time not signed": {
            "access_token": TOKEN,
            "appsecret_proof": proof(TOKEN),
            "appsecret_time": str(now),
        },
        "stale": {
            "access_token": TOKEN,
            "appsecret_proof": proof(f"{TOKEN}|{now - 301}"),
            "appsecret_time": str(now - 301),
        },
    }
    for why, auth in refused.items():
        graph.auth = auth
        response = graph.upload(audience_id, madids(1))
        assert response.status_code == 400, why
        assert error(response)["code"] == 100 and "appsecret_proof" in error(response)["message"]
    good = {"appsecret_proof": proof(f"{TOKEN}|{now}"), "appsecret_time": str(now)}
    graph.auth = {"access_token": TOKEN} | good
    assert graph.upload(audience_id, madids(2)).status_code == 200
    assert len(graph.members(audience_id)) == 2


def test_unknown_audience_is_100_33(graph: Graph) -> None:
    for response in (
        graph.upload("999", madids(1)),
        graph.http.get(f"/{V}/999", params=graph.auth),
    ):
        assert response.status_code == 400
        err = error(response)
        assert (err["code"], err["error_subcode"]) == (100, 33)
        assert "does not exist" in err["message"]


def test_mixing_single_and_multi_key_schemas_is_2650(graph: Graph) -> None:
    audience_id = graph.create()
    ids = madids(2)
    assert graph.upload(audience_id, ids[:1]).status_code == 200
    response = graph.upload(audience_id, [[ids[1]]], schema=["MADID"])
    assert response.status_code == 400
    assert error(response)["code"] == 2650 and "schema" in error(response)["message"].lower()
    assert graph.members(audience_id) == ids[:1]


@pytest.mark.parametrize(
    "session",
    [
        {"batch_seq": 1, "last_batch_flag": False},
        {"session_id": 0, "batch_seq": 1, "last_batch_flag": False},
        {"session_id": "7", "batch_seq": 1, "last_batch_flag": False},
        {"session_id": 7, "batch_seq": 0, "last_batch_flag": False},
        {"session_id": 7, "batch_seq": 1, "last_batch_flag": "true"},
        {"session_id": 7, "batch_seq": 1, "last_batch_flag": False, "estimated_num_total": -1},
    ],
)
def test_bad_session_is_100(graph: Graph, session: dict[str, Any]) -> None:
    audience_id = graph.create()
    response = graph.upload(audience_id, madids(1), session=session)
    assert response.status_code == 400 and error(response)["code"] == 100
    assert graph.members(audience_id) == []


def test_bad_payload_is_100_and_session_is_optional_on_users(graph: Graph) -> None:
    audience_id = graph.create()
    url = f"/{V}/{audience_id}/users"
    session = orjson.dumps({"session_id": 1, "batch_seq": 1, "last_batch_flag": False}).decode()
    bodies = [
        {"session": session},  # no payload
        {"payload": "{not json", "session": session},
        {"payload": '{"data": ["x"]}', "session": session},  # no schema
        {"payload": '{"schema": "EMAIL", "data": ["x"]}', "session": session},
        {"payload": '{"schema": "MOBILE_ADVERTISER_ID", "data": []}', "session": session},
    ]
    for body in bodies:
        response = graph.http.post(url, data=body | graph.auth)
        assert response.status_code == 400 and error(response)["code"] == 100, body
    assert graph.stats()["errors_by_code"] == {"100": len(bodies)}
    # A single-batch add needs no session (Meta's SDK sends none unless asked) ...
    ids = madids(1)
    payload = orjson.dumps({"schema": "MOBILE_ADVERTISER_ID", "data": ids}).decode()
    assert graph.http.post(url, data={"payload": payload} | graph.auth).status_code == 200
    assert graph.members(audience_id) == ids
    # ... but a replace does.
    replace = graph.http.post(
        f"/{V}/{audience_id}/usersreplace", data={"payload": payload} | graph.auth
    )
    assert replace.status_code == 400 and error(replace)["code"] == 100


def test_closed_session_refuses_more_batches(graph: Graph) -> None:
    audience_id = graph.create()
    ids = madids(3)
    assert graph.upload(audience_id, ids[:1], seq=2).status_code == 200  # add: any order
    assert graph.upload(audience_id, ids[1:2], seq=1, last=True).status_code == 200
    response = graph.upload(audience_id, ids[2:], seq=3)
    assert response.status_code == 400
    assert error(response)["code"] == 100 and "closed" in error(response)["message"]
    assert graph.upload(audience_id, ids[2:], session_id=2).status_code == 200
    assert graph.members(audience_id) == sorted(ids)


def test_remove_and_the_100_member_floor(graph: Graph) -> None:
    audience_id = graph.create()
    ids = madids(150)
    graph.upload(audience_id, ids, session_id=1, last=True)
    assert graph.upload(audience_id, ids[:20], op="remove", session_id=2).status_code == 200
    assert graph.members(audience_id) == sorted(ids[20:])
    response = graph.upload(audience_id, ids[20:60], op="remove", session_id=3)
    assert response.status_code == 400
    assert error(response)["code"] == 100 and "100" in error(response)["message"]
    assert len(graph.members(audience_id)) == 130
    # A small audience (under 100 already) may shrink; a removal may come without a session.
    small_id = graph.create()
    graph.upload(small_id, ids[:50], session_id=4)
    payload = {"schema": "MOBILE_ADVERTISER_ID", "data": ids[:10]}
    form = {"payload": orjson.dumps(payload).decode()}
    response = graph.http.request("DELETE", f"/{V}/{small_id}/users", data=form | graph.auth)
    assert response.status_code == 200, response.text
    assert graph.members(small_id) == sorted(ids[10:50])


def test_replace_makes_members_exactly_the_session(graph: Graph) -> None:
    audience_id = graph.create()
    old, new = madids(200, seed=1), madids(250, seed=2)
    graph.upload(audience_id, old, session_id=1, last=True)
    response = graph.upload(audience_id, new[:100], op="replace", session_id=2, seq=2)
    err = error(response)
    assert (err["code"], err["error_subcode"]) == (2650, 1870147)
    assert (
        graph.upload(audience_id, new[:100], op="replace", session_id=2, seq=1).status_code == 200
    )
    response = graph.upload(audience_id, new[100:], op="replace", session_id=3, seq=1)
    assert error(response)["code"] == 2650  # one open replace session per audience
    response = graph.upload(audience_id, new[100:], op="replace", session_id=2, seq=3)
    assert response.status_code == 400 and error(response)["code"] == 100  # out of order
    assert graph.members(audience_id) == sorted(old)  # nothing changes until the session ends
    assert (
        graph.upload(audience_id, new[100:200], op="replace", session_id=2, seq=2).status_code
        == 200
    )
    # Re-sending the last accepted batch (a retry) is harmless.
    assert (
        graph.upload(audience_id, new[100:200], op="replace", session_id=2, seq=2).status_code
        == 200
    )
    last = graph.upload(audience_id, new[200:], op="replace", session_id=2, seq=3, last=True)
    assert last.status_code == 200
    assert graph.members(audience_id) == sorted(new)
    response = graph.upload(audience_id, old[:1], op="replace", session_id=2, seq=4)
    assert error(response)["code"] == 100 and "closed" in error(response)["message"]


def test_rate_limit_then_penalty_window(sandbox: Callable[..., Graph]) -> None:
    graph = sandbox(rate_per_s=5, penalty_s=0.5)
    audience_id = graph.create()
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
    time.sleep(1.05)  # past the penalty and the one-second window
    assert graph.upload(audience_id, ids[5:6], session_id=11).status_code == 200


def test_usage_headers_on_every_answer_with_rising_call_count(
    sandbox: Callable[..., Graph],
) -> None:
    graph = sandbox(rate_per_s=100)
    audience_id = graph.create(account="777")
    counts = []
    for i, madid in enumerate(madids(4)):
        response = graph.upload(audience_id, [madid], session_id=i + 1)
        usage = orjson.loads(response.headers["X-Business-Use-Case-Usage"])
        assert list(usage) == ["777"]
        entry = usage["777"][0]
        assert entry["type"] == "custom_audience"
        assert entry["ads_api_access_tier"] == "standard_access"
        counts.append(entry["call_count"])
        app_usage = orjson.loads(response.headers["X-App-Usage"])
        assert set(app_usage) == {"call_count", "total_cputime", "total_time"}
    assert counts == [1, 2, 3, 4]
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
    started = time.perf_counter()
    audience_id = graph.create()
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    assert graph.upload(audience_id, madids(5)).status_code == 200
    assert time.perf_counter() - started >= 0.15


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


def test_json_bodies_and_query_tokens_work_too(graph: Graph) -> None:
    audience_id = graph.create()
    ids = madids(3)
    body = {
        "access_token": TOKEN,
        "payload": {"schema": "MOBILE_ADVERTISER_ID", "data": ids},
        "session": orjson.dumps(
            {"session_id": 5, "batch_seq": 1, "last_batch_flag": True}
        ).decode(),
    }
    response = graph.http.post(f"/{V}/{audience_id}/users", json=body)
    assert response.status_code == 200 and response.json()["session_id"] == "5"
    response = graph.http.get(f"/v25.0/{audience_id}", params={"access_token": TOKEN})
    assert response.json() == {"id": audience_id}
    # A chunked JSON body on DELETE (httpx streams an iterator with Transfer-Encoding: chunked).
    body["session"] = {"session_id": 6, "batch_seq": 1, "last_batch_flag": True}
    body["payload"] = {"schema": "MOBILE_ADVERTISER_ID", "data": ids[:1]}
    encoded = orjson.dumps(body)
    pieces = iter([encoded[:10], encoded[10:]])
    headers = {"content-type": "application/json"}
    response = graph.http.request(
        "DELETE", f"/{V}/{audience_id}/users", content=pieces, headers=headers
    )
    assert response.status_code == 200, response.text
    assert graph.members(audience_id) == sorted(ids[1:])


def test_inspection_endpoints_and_reset(graph: Graph) -> None:
    assert graph.http.get("/_sandbox/health").json() == {"ok": True}
    created = graph.http.post("/_sandbox/audiences", json={"id": "42", "ad_account_id": "act_9"})
    assert created.json() == {"id": "42", "ad_account_id": "9"}
    assert (
        graph.http.post("/_sandbox/audiences", json={"id": "42", "ad_account_id": "9"}).status_code
        == 409
    )
    graph.upload("42", madids(2), seq=1, last=True)
    calls = graph.http.get("/_sandbox/audiences/42/calls").json()
    served = calls[0].pop("received_s"), calls[0].pop("answered_s")
    assert 0 < served[0] <= served[1]
    assert calls == [
        {
            "method": "POST",
            "edge": "users",
            "session_id": 1,
            "batch_seq": 1,
            "last_batch_flag": True,
            "entries": 2,
            "status": 200,
            "code": None,
            "applied": True,
            "url_params": [],
        }
    ]
    assert graph.http.get("/_sandbox/nothing").status_code == 404
    response = graph.http.get(f"/{V}/42/nothing", params=graph.auth)
    assert response.status_code == 404 and error(response)["code"] == 803
    assert graph.http.post("/_sandbox/reset").status_code == 200
    assert graph.http.get("/_sandbox/audiences/42/members").status_code == 404
    stats = graph.stats()
    assert stats["calls"] == 0 and stats["audiences"] == {}


def test_serve_announces_itself_and_stops_on_sigterm() -> None:
    code = "from audiencesync.sandbox import SandboxConfig, serve; serve(SandboxConfig(port=0))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("sandbox listening on http://127.0.0.1:")
        base_url = line.removeprefix("sandbox listening on ")
        with httpx.Client(base_url=base_url) as client:  # a kept-alive connection stays open
            assert client.get("/_sandbox/health").json() == {"ok": True}
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_runtime_config_changes_knobs_and_refuses_unknown_ones():
    base_url, stop = start_in_thread(SandboxConfig(port=0))
    try:
        changed = httpx.post(f"{base_url}/_sandbox/config", json={"latency_ms": 120, "token": "t2"})
        assert changed.status_code == 200 and changed.json()["latency_ms"] == 120
        started = time.perf_counter()
        answer = httpx.get(f"{base_url}/v26.0/1", headers={"Authorization": "Bearer sandbox-token"})
        assert time.perf_counter() - started >= 0.12
        assert answer.json()["error"]["code"] == 190  # the old token no longer works
        bad = httpx.post(f"{base_url}/_sandbox/config", json={"port": 1})
        assert bad.status_code == 400 and "unknown knobs" in bad.text
        assert (
            httpx.post(f"{base_url}/_sandbox/config", json={"transient_rate": 2}).status_code == 400
        )
    finally:
        stop()
