"""The sandbox's own surface: inspection endpoints, reset, runtime config, the served process."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
from sandbox_graph import Graph, V, error, madids

from audiencesync.sandbox import SandboxConfig, start_in_thread


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
        graph = Graph(base_url)
        created = graph.http.post("/_sandbox/audiences", json={"id": "1", "ad_account_id": "9"})
        assert created.status_code == 200
        answer = graph.upload("1", madids(1))  # with the old token
        assert error(answer)["code"] == 190  # it no longer works
        [call] = graph.calls("1")
        assert call["code"] == 190
        assert call["answered_s"] - call["received_s"] >= 0.12  # the new latency, by its clock
        bad = httpx.post(f"{base_url}/_sandbox/config", json={"port": 1})
        assert bad.status_code == 400 and "unknown knobs" in bad.text
        assert (
            httpx.post(f"{base_url}/_sandbox/config", json={"transient_rate": 2}).status_code == 400
        )
    finally:
        stop()
