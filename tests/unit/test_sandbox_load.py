"""The sandbox slows down under load: latency_per_inflight_ms, from the CLI and at run time."""

from __future__ import annotations

import threading
import time

import httpx
from sandbox_graph import Graph, madids

from audiencesync.cli import devstack
from audiencesync.sandbox import SandboxConfig, start_in_thread


def timed_uploads(graph: Graph, audience_id: str, n: int) -> list[float]:
    """n uploads released at once; each one's latency."""
    barrier = threading.Barrier(n)
    latencies = [0.0] * n

    def send(i: int) -> None:
        barrier.wait()
        started = time.perf_counter()
        assert graph.upload(audience_id, madids(1, seed=i), seq=i + 1).status_code == 200
        latencies[i] = time.perf_counter() - started

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def test_latency_grows_with_calls_in_flight():
    config = SandboxConfig(port=0, latency_ms=20, latency_per_inflight_ms=80)
    base_url, stop = start_in_thread(config)
    try:
        graph = Graph(base_url)
        audience_id = graph.create()
        alone = timed_uploads(graph, audience_id, 1)[0]
        crowd = timed_uploads(graph, audience_id, 8)
        stats = graph.stats()
    finally:
        stop()
    assert alone < 0.08 + 0.1  # 20 ms and no one else in flight (plus a loaded box's slack)
    assert stats["max_inflight"] >= 6 and stats["inflight"] == 0
    # The last of k calls arriving together waits 80 ms for each of the k-1 before it.
    assert max(crowd) >= 0.02 + 0.08 * (stats["max_inflight"] - 1)
    assert min(crowd) < max(crowd) / 2


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
