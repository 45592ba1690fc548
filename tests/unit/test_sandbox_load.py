"""The sandbox slows down under load: latency_per_inflight_ms, from the CLI and at run time."""

from __future__ import annotations

import threading

import httpx
from sandbox_graph import Graph, madids

from audiencesync.cli import devstack
from audiencesync.sandbox import SandboxConfig, start_in_thread


def uploads_at_once(graph: Graph, audience_id: str, n: int) -> None:
    """n uploads released together."""
    barrier = threading.Barrier(n)

    def send(i: int) -> None:
        barrier.wait()
        assert graph.upload(audience_id, madids(1, seed=i), seq=i + 1).status_code == 200

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_latency_grows_with_calls_in_flight():
    """Latencies as the sandbox records them (its clock, around the delay it adds): each
    call waits at least the base latency plus the per-call share of every other call in
    flight when it arrived, so only lower bounds are asserted (a sleep never ends early)."""
    config = SandboxConfig(port=0, latency_ms=20, latency_per_inflight_ms=80)
    base_url, stop = start_in_thread(config)
    try:
        graph = Graph(base_url)
        alone_audience, crowd_audience = graph.create(), graph.create()
        uploads_at_once(graph, alone_audience, 1)
        uploads_at_once(graph, crowd_audience, 8)
        stats = graph.stats()
        alone = [c["answered_s"] - c["received_s"] for c in graph.calls(alone_audience)]
        crowd = [c["answered_s"] - c["received_s"] for c in graph.calls(crowd_audience)]
    finally:
        stop()
    assert len(alone) == 1 and alone[0] >= 0.02
    assert stats["max_inflight"] >= 6 and stats["inflight"] == 0
    # The last of k calls arriving together waits 80 ms for each of the k-1 before it.
    assert max(crowd) >= 0.02 + 0.08 * (stats["max_inflight"] - 1)


def test_latency_per_inflight_is_a_cli_flag_and_a_runtime_knob(tmp_path):
    proc, url = devstack.start_sandbox("--latency-per-inflight-ms", "35", log=tmp_path / "s.log")
    try:
        knobs = httpx.post(f"{url}/_sandbox/config", json={}).json()
        assert knobs["latency_per_inflight_ms"] == 35
        changed = httpx.post(f"{url}/_sandbox/config", json={"latency_per_inflight_ms": 5})
        assert changed.json()["latency_per_inflight_ms"] == 5
        bad = httpx.post(f"{url}/_sandbox/config", json={"latency_per_inflight_ms": -1})
        assert bad.status_code == 400 and "must not be negative" in bad.text
    finally:
        devstack.stop(proc)
