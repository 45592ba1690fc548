"""The sandbox's injected permanent failure (fail_batch_seq) and what its call records show."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sandbox_graph import Graph, error, madids

from audiencesync.cli import devstack


def test_fail_batch_seq_refuses_that_batch_for_good_and_only_it(
    sandbox: Callable[..., Graph],
) -> None:
    graph = sandbox(fail_batch_seq=2)
    audience_id = graph.create()
    old, new = madids(150, seed=1), madids(30, seed=2)
    assert graph.upload(audience_id, old, session_id=1, last=True).status_code == 200
    assert graph.upload(audience_id, new[:10], op="replace", session_id=2).status_code == 200
    for _ in range(2):  # a retry is refused too: the failure is permanent
        err = error(graph.upload(audience_id, new[10:20], op="replace", session_id=2, seq=2))
        assert err["code"] == 100 and not err["is_transient"]
        assert "fail_batch_seq" in err["message"]
    assert graph.members(audience_id) == sorted(old)  # the replace session stays open
    closing = graph.upload(audience_id, new[10:], op="replace", session_id=2, seq=2, last=True)
    assert closing.status_code == 200  # a last batch is never refused by the knob
    assert graph.members(audience_id) == sorted(new)


def test_call_records_show_when_each_call_was_served_and_what_its_url_carried(
    sandbox: Callable[..., Graph],
) -> None:
    graph = sandbox(latency_ms=20)
    audience_id = graph.create()
    graph.upload(audience_id, madids(5, seed=3))
    response = graph.http.delete(
        f"/v26.0/{audience_id}/users",
        params={"access_token": "sandbox-token", "payload": '{"schema":"MADID","data":[]}'},
    )
    assert response.status_code == 400
    first, second = graph.http.get(f"/_sandbox/audiences/{audience_id}/calls").json()
    assert first["url_params"] == [] and second["url_params"] == ["access_token", "payload"]
    assert first["answered_s"] - first["received_s"] >= 0.02  # the latency is inside
    assert second["received_s"] >= first["answered_s"]


def test_the_knob_from_the_command_line_and_at_runtime() -> None:
    proc, url = devstack.start_sandbox("--fail-batch-seq", "3")
    try:
        knobs = httpx.post(f"{url}/_sandbox/config", json={}).json()
        assert knobs["fail_batch_seq"] == 3
        changed = httpx.post(f"{url}/_sandbox/config", json={"fail_batch_seq": None})
        assert changed.json()["fail_batch_seq"] is None
        bad = httpx.post(f"{url}/_sandbox/config", json={"fail_batch_seq": 0})
        assert bad.status_code == 400 and "fail_batch_seq" in bad.text
    finally:
        devstack.stop(proc)
