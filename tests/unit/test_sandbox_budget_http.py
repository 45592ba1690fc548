"""The sandbox's rate-limit models over real HTTP: refusals and headers as Meta sends them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
from sandbox_graph import Graph, V, error, madids

from audiencesync.cli import devstack
from audiencesync.cli.devstack import wait_until


def usage(response: httpx.Response, account: str = "1001") -> dict[str, Any]:
    return dict(orjson.loads(response.headers["X-Business-Use-Case-Usage"])[account][0])


def read(graph: Graph, audience_id: str) -> httpx.Response:
    """A read of the audience: a call of the account's budget too (one point of the score)."""
    return graph.http.get(f"/{V}/{audience_id}", params={"fields": "id"} | graph.auth)


def usage_now(graph: Graph, account: str = "1001") -> int:
    """The account's figure as the sandbox's inspection gives it: no call of its budget spent."""
    return int(graph.stats()["usage_pct"][account])


def test_rolling_window_counts_refused_calls_and_frees_up_as_calls_age_out(
    sandbox: Callable[..., Graph],
) -> None:
    graph = sandbox(budget_calls=3, budget_window_s=3)
    audience_id = graph.create()
    ids = madids(6)
    for i in range(3):
        assert graph.upload(audience_id, ids[i : i + 1], session_id=i + 1).status_code == 200
    for attempt in (1, 2):  # each refused call enters the window
        refused = graph.upload(audience_id, ids[3:4], session_id=9)
        err = error(refused)
        assert (err["code"], err["error_subcode"], err["is_transient"]) == (80003, 2446079, True)
        figures = usage(refused)
        assert figures["call_count"] == figures["total_time"] == 100 + 33 * attempt + attempt // 3
        assert figures["estimated_time_to_regain_access"] == 1  # whole minutes, at least 1
    assert graph.members(audience_id) == sorted(ids[:3])  # refused calls applied nothing
    wait_until(lambda: usage_now(graph) < 100, 10, "window frees")
    assert graph.upload(audience_id, ids[3:4], session_id=10).status_code == 200
    stats = graph.stats()
    assert stats["throttled_by"] == {"window": 2} and stats["calls_in_penalty"] == 0


def test_score_refuses_over_its_max_blocks_then_decays(sandbox: Callable[..., Graph]) -> None:
    graph = sandbox(score_max=9, score_decay_s=6, write_points=3, block_s=1)
    audience_id = graph.create()
    ids = madids(5)
    answers = [graph.upload(audience_id, ids[i : i + 1], session_id=i + 1) for i in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert usage(answers[2])["call_count"] >= 90  # 9 points of 9, less what decayed meanwhile
    for _ in range(2):  # over the score, then inside the block
        refused = graph.upload(audience_id, ids[3:4], session_id=9)
        err = error(refused)
        assert (err["code"], err["error_subcode"], err["is_transient"]) == (613, 1487742, True)
        figures = usage(refused)
        assert figures["call_count"] >= 100 and figures["estimated_time_to_regain_access"] == 1
    stats = graph.stats()
    assert stats["throttled_by"] == {"score": 2} and stats["calls_in_penalty"] == 1
    # Block over and room for a write (under 6 points of 9): 1.5 points decay a second.
    wait_until(lambda: usage_now(graph) <= 60, 10, "score decays")
    after = graph.upload(audience_id, ids[3:4], session_id=10)
    assert after.status_code == 200
    assert usage(after)["estimated_time_to_regain_access"] == 0
    assert graph.members(audience_id) == sorted(ids[:4])


def test_usage_header_after_calls_zero_sends_it_from_the_first_call(
    sandbox: Callable[..., Graph],
) -> None:
    graph = sandbox(budget_calls=200, usage_header_after_calls=0)
    audience_id = graph.create()
    answer = graph.upload(audience_id, madids(1))
    assert usage(answer)["call_count"] == 0  # 1 call of 200: 0.5 %, whole percent
    assert usage(read(graph, audience_id))["call_count"] == 1  # a read is a call: 2 of 200


def test_a_read_is_a_call_of_the_budget_and_refused_like_one(sandbox: Callable[..., Graph]) -> None:
    """Meta's score charges a read 1 point and a write 3; its custom_audience budget counts every
    call: the preflight read of a run is spent like an upload, and refused once over."""
    graph = sandbox(score_max=7, score_decay_s=600, write_points=3, read_points=1, block_s=1)
    audience_id = graph.create()
    assert graph.upload(audience_id, madids(1), session_id=1).status_code == 200  # 3 points
    assert [read(graph, audience_id).status_code for _ in range(4)] == [200] * 4  # 7 points
    refused = read(graph, audience_id)
    assert (error(refused)["code"], usage(refused)["call_count"]) == (613, 100)
    assert graph.stats()["throttled_by"] == {"score": 1}

    graph = sandbox(budget_calls=2, budget_window_s=600)
    audience_id = graph.create()
    assert read(graph, audience_id).status_code == 200
    assert graph.upload(audience_id, madids(1), session_id=1).status_code == 200
    assert error(read(graph, audience_id))["code"] == 80003


def test_budget_knobs_from_the_command_line_and_at_runtime() -> None:
    proc, url = devstack.start_sandbox(
        "--budget-calls", "120", "--budget-window-s", "30", "--score-max", "300",
        "--score-decay-s", "20", "--write-points", "3", "--block-s", "4",
        "--usage-header-after-calls", "5", "--replace-window-s", "20",
    )  # fmt: skip
    try:
        knobs = httpx.post(f"{url}/_sandbox/config", json={}).json()
        assert {k: knobs[k] for k in ("budget_calls", "budget_window_s", "score_max")} == {
            "budget_calls": 120, "budget_window_s": 30.0, "score_max": 300.0,
        }  # fmt: skip
        assert (knobs["score_decay_s"], knobs["write_points"], knobs["block_s"]) == (20, 3, 4)
        assert (knobs["usage_header_after_calls"], knobs["replace_window_s"]) == (5, 20)
        changed = httpx.post(f"{url}/_sandbox/config", json={"budget_calls": None})
        assert changed.json()["budget_calls"] is None
        bad = httpx.post(f"{url}/_sandbox/config", json={"score_decay_s": 0})
        assert bad.status_code == 400 and "score_decay_s" in bad.text
    finally:
        devstack.stop(proc)
