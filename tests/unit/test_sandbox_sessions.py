"""The sandbox over real HTTP: what sessions and the add, remove and replace edges do."""

from __future__ import annotations

import orjson
from sandbox_graph import Graph, V, error, madids


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
    err = error(response)  # one open replace session per audience: update in progress
    assert (err["code"], err["error_subcode"]) == (2650, 1870145)
    # After batch 1, any order; a batch sent twice (a retry) is harmless.
    for seq, part in [(3, new[150:200]), (2, new[100:150]), (3, new[150:200])]:
        response = graph.upload(audience_id, part, op="replace", session_id=2, seq=seq)
        assert response.status_code == 200
    assert graph.members(audience_id) == sorted(old)  # nothing changes until the session ends
    last = graph.upload(audience_id, new[200:], op="replace", session_id=2, seq=4, last=True)
    assert last.status_code == 200
    assert graph.members(audience_id) == sorted(new)
    response = graph.upload(audience_id, old[:1], op="replace", session_id=2, seq=5)
    err = error(response)
    assert (err["code"], err["error_subcode"]) == (2650, 1870159)  # already finished
    assert graph.members(audience_id) == sorted(new)
