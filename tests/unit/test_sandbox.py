"""The sandbox over real HTTP: Meta's rules for one call (schema, size, token, proof, session)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from sandbox_graph import OPTED_OUT, TOKEN, Graph, V, error, madids


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
