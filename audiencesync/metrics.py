"""Prometheus business metrics, per audience, recorded when a run finishes (in `finalize`).

Everything is recorded in `critical` workers (threads pool: one process each), so plain
in-process metrics suffice and no multiprocess directory is needed. Each critical worker with
AUDIENCESYNC_METRICS_PORT set serves its own figures; Prometheus sums them across workers.
The audience label is the declared audience's name, or the audience id for ad-hoc uploads.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS_S = (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600)


class RunMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY):
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, ["audience", *labels], registry=registry)

        self.runs = counter("audiencesync_runs", "Runs finished, by status", "status")
        self.ids_read = counter("audiencesync_ids_read", "IDs read from sources")
        self.ids_uploaded = counter("audiencesync_ids_uploaded", "IDs in chunks Meta accepted")
        self.ids_rejected = counter("audiencesync_ids_rejected", "IDs dropped, by reason", "reason")
        self.ids_failed = counter("audiencesync_ids_failed", "IDs in chunks that failed")
        self.requests = counter("audiencesync_graph_requests", "Graph API calls made")
        self.throttled = counter("audiencesync_throttled", "Throttled answers from Meta")
        self.run_duration = Histogram(
            "audiencesync_run_duration_seconds",
            "Run duration, start to report",
            ["audience"],
            buckets=DURATION_BUCKETS_S,
            registry=registry,
        )
        self.chunk_latency = Histogram(
            "audiencesync_chunk_upload_latency_seconds",
            "Latency of a chunk's accepted upload call",
            ["audience"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )

    def record_run(self, audience: str, report: dict, chunk_results: list[dict]) -> None:
        self.runs.labels(audience, report["status"]).inc()
        self.ids_read.labels(audience).inc(report["ids_read"])
        self.ids_uploaded.labels(audience).inc(report["ids_uploaded"])
        for reason, count in report["ids_rejected"].items():
            self.ids_rejected.labels(audience, reason).inc(count)
        self.ids_failed.labels(audience).inc(report["ids_failed"])
        self.requests.labels(audience).inc(report["requests"])
        self.throttled.labels(audience).inc(report["throttled"])
        self.run_duration.labels(audience).observe(report["duration_s"])
        for result in chunk_results:
            if result.get("uploaded"):
                self.chunk_latency.labels(audience).observe(result.get("latency_s", 0.0))


METRICS = RunMetrics()  # the process's metrics, in the default registry


def serve(port: int) -> None:
    """Serve /metrics (the default registry) from a daemon thread of this process."""
    start_http_server(port)
