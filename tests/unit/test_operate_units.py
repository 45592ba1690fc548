"""Pure parts of operating it: metrics recording, JSON log lines, the runs table, the lock."""

from __future__ import annotations

import logging
import uuid

import orjson
import redis
from prometheus_client import CollectorRegistry

from audiencesync.cli.display import format_runs, run_row
from audiencesync.domain.report import build_report, chunk_result
from audiencesync.logs import JsonFormatter
from audiencesync.metrics import RunMetrics
from audiencesync.store.meta import RunMeta
from audiencesync.store.runs import RunStore

META = {"audience_id": "42", "ids_read": "7", "started_at": "100.0", "session_id": "1"}
RESULTS = [
    chunk_result(0, 4, uploaded=3, rejected={"blank": 1}, requests=2, throttled=1, latency_s=0.2),
    chunk_result(1, 3, uploaded=3, requests=1, latency_s=0.4),
]


def test_a_finished_run_is_recorded_per_audience():
    registry = CollectorRegistry()
    report = build_report("r1", RunMeta.parse(META), RESULTS, finished_at=112.0)
    RunMetrics(registry).record_run("lapsed", report, RESULTS)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"audience": "lapsed", **labels})

    assert value("audiencesync_runs_total", status="completed") == 1
    assert value("audiencesync_ids_uploaded_total") == 6
    assert value("audiencesync_ids_rejected_total", reason="blank") == 1
    assert value("audiencesync_throttled_total") == 1
    assert value("audiencesync_graph_requests_total") == 3
    assert value("audiencesync_run_duration_seconds_sum") == 12.0
    assert value("audiencesync_chunk_upload_latency_seconds_count") == 2
    assert abs(value("audiencesync_chunk_upload_latency_seconds_sum") - 0.6) < 1e-9


def test_a_cancelled_run_reports_cancelled_not_failed():
    meta = {**META, "aborted": "cancelled by an operator", "cancelled": "1"}
    report = build_report("r1", RunMeta.parse(meta), RESULTS, finished_at=112.0)
    assert (report["status"], report["message"]) == ("cancelled", "cancelled by an operator")


def test_json_log_lines_carry_run_and_chunk_as_fields():
    record = logging.LogRecord(
        "audiencesync.upload",
        logging.WARNING,
        __file__,
        1,
        "run=%s chunk=%s failed: %s",
        None,
        None,
    )
    record.args = ("20260101-000000-abcdef", 7, "boom")
    line = orjson.loads(JsonFormatter().format(record))
    assert line["run"] == "20260101-000000-abcdef" and line["chunk"] == 7
    assert line["level"] == "WARNING" and line["message"].endswith("failed: boom")


def test_runs_table_shows_finished_and_live_runs():
    report = build_report("r1", RunMeta.parse(META), RESULTS, finished_at=112.0)
    live = {"audience_id": "43", "audience_name": "vip", "status": "running", "started_at": "100"}
    rows = [
        run_row("r1", RunMeta.parse(META), report, now=200.0),
        run_row("r2", RunMeta.parse({**live, "ids_done": "500"}), None, now=110.0),
    ]
    assert rows[0]["status"] == "completed" and rows[0]["ids"] == 6
    assert rows[1] == {
        "run_id": "r2",
        "audience": "vip",
        "status": "running",
        "ids": 500,
        "ids_per_s": 50.0,
        "duration_s": 10.0,
    }
    table = format_runs(rows).splitlines()
    assert table[0].split()[:3] == ["run", "id", "audience"]
    assert table[2].split() == ["r2", "vip", "running", "500", "50", "10.0s"]


def test_the_audience_lock_is_held_by_one_run_and_released_only_by_it(redis_url):
    store = RunStore(redis.Redis.from_url(redis_url))
    name = uuid.uuid4().hex
    assert store.take_audience_lock(name, "run-1", ttl_s=30) is None
    assert store.take_audience_lock(name, "run-2", ttl_s=30) == "run-1"
    assert not store.release_audience_lock(name, "run-2")
    assert not store.refresh_audience_lock(name, "run-2", 60)
    assert store.refresh_audience_lock(name, "run-1", 60)
    assert 30 < store.r.ttl(store.lock_key(name)) <= 60
    assert store.release_audience_lock(name, "run-1")
    assert store.take_audience_lock(name, "run-2", ttl_s=30) is None
