"""Meta's replace session window in the sandbox: a session never closed ends replace_window_s
after batch 1 with the audience replaced by what arrived; later batches are discarded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sandbox_graph import Graph, V, error, madids

from audiencesync.cli.devstack import wait_until
from audiencesync.sandbox import rules, state
from audiencesync.sandbox.faults import GraphFault

FIELDS = "approximate_count_lower_bound,approximate_count_upper_bound,operation_status"


def info(graph: Graph, audience_id: str) -> dict[str, Any]:
    answer = graph.http.get(f"/{V}/{audience_id}", params={"fields": FIELDS} | graph.auth)
    return dict(answer.json())


def codes(response: httpx.Response) -> tuple[int, int]:
    err = error(response)
    return err["code"], err["error_subcode"]


def test_a_session_outliving_its_window_replaces_the_audience_with_what_arrived(
    sandbox: Callable[..., Graph],
) -> None:
    graph = sandbox(replace_window_s=1.0)
    audience_id = graph.create()
    old, new = madids(300, seed=1), madids(400, seed=2)
    graph.upload(audience_id, old, session_id=1, last=True)
    parts = [new[i : i + 100] for i in range(0, 400, 100)]

    def replace(seq: int, *, last: bool = False) -> httpx.Response:
        return graph.upload(audience_id, parts[seq - 1], op="replace", session_id=7, seq=seq,
                            last=last)  # fmt: skip

    assert replace(1).status_code == 200
    assert replace(3).status_code == 200  # any order after batch 1
    assert replace(3).status_code == 200  # a duplicate is harmless
    during = info(graph, audience_id)
    assert during["operation_status"]["description"] == "Replace in progress"
    assert during["approximate_count_lower_bound"] == 300  # unchanged until the session ends
    wait_until(
        lambda: info(graph, audience_id)["operation_status"]["code"] != 300, 10, "window ends"
    )
    expected = sorted(parts[0] + parts[2])
    assert graph.members(audience_id) == expected  # what arrived, and nothing of the old
    assert "Replace error" in info(graph, audience_id)["operation_status"]["description"]
    assert codes(replace(2)) == (2650, 1870158)  # after the window: discarded
    assert codes(replace(4, last=True)) == (2650, 1870158)
    assert graph.members(audience_id) == expected
    # A new session may start; closed in time, it replaces the audience and clears the error.
    closing = graph.upload(audience_id, old[:50], op="replace", session_id=8, seq=1, last=True)
    assert closing.status_code == 200
    assert graph.members(audience_id) == sorted(old[:50])
    assert info(graph, audience_id)["operation_status"] == {"code": 200, "description": "Normal"}


def test_100m_audiences_cannot_be_replaced(sandbox: Callable[..., Graph]) -> None:
    graph = sandbox()
    audience_id = graph.create()
    resized = graph.http.post(
        f"/_sandbox/audiences/{audience_id}", json={"approximate_count": 100_000_000}
    )
    assert resized.status_code == 200
    assert info(graph, audience_id)["approximate_count_upper_bound"] == 100_000_000
    refused = graph.upload(audience_id, madids(5), op="replace", session_id=3, seq=1)
    assert codes(refused) == (2650, 1870144)
    assert graph.upload(audience_id, madids(5), session_id=4).status_code == 200  # adds: fine
    bad = graph.http.post(f"/_sandbox/audiences/{audience_id}", json={"approximate_count": -1})
    assert bad.status_code == 400
    created = graph.http.post(
        "/_sandbox/audiences", json={"ad_account_id": "1001", "approximate_count": 99_999_999}
    ).json()
    fits = graph.upload(created["id"], madids(5), op="replace", session_id=5, seq=1, last=True)
    assert fits.status_code == 200


def session(seq: int, last: bool = False, sid: int = 7) -> rules.SessionParams:
    return rules.SessionParams(sid, seq, last, None)


def test_replace_rules_as_pure_state_changes() -> None:
    audience = state.Audience("1", "9", members={"old"})
    payload = rules.Payload(multi_key=False, data=[])

    def send(s: rules.SessionParams, valid: list[str], now_s: float) -> None:
        state.expire_replace(audience, now_s, window_s=10.0)
        state.check_upload(audience, state.REPLACE, payload, s, valid)
        state.apply_upload(audience, state.REPLACE, payload, s, valid, now_s)

    send(session(1), ["a"], now_s=0.0)
    send(session(2), ["b"], now_s=5.0)
    send(session(1), ["c"], now_s=8.0)  # batch 1 again starts the session anew: "b" is lost
    send(session(3), ["d"], now_s=17.0)  # the window runs from the second batch 1 (8 + 10)
    with pytest.raises(GraphFault) as other:
        send(session(1, sid=8), ["x"], now_s=17.5)
    assert other.value.subcode == 1870145
    state.expire_replace(audience, 18.0, window_s=10.0)
    assert audience.members == {"c", "d"} and audience.open_replace_id is None
    with pytest.raises(GraphFault) as late:
        send(session(4, last=True), ["e"], now_s=18.5)
    assert (late.value.code, late.value.subcode) == (2650, 1870158)
    send(session(1, last=True, sid=9), ["f"], now_s=19.0)  # one batch, closed at once
    with pytest.raises(GraphFault) as finished:
        send(session(2, sid=9), ["g"], now_s=19.5)
    assert finished.value.subcode == 1870159 and audience.members == {"f"}
