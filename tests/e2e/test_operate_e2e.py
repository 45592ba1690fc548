"""Operating it, with real processes: Flower, beat, a producer worker, extra workers, metrics."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import httpx
import orjson
import pytest
import redis
from e2e_helpers import MAID, cli, dirty_rows, expected, run_upload, write_csv
from prometheus_client.parser import text_string_to_metric_families

from audiencesync.cli import devstack
from audiencesync.settings import Settings
from audiencesync.store.runs import RunStore
from producers.spec import SourceSpec

AUTH = ("ops", "flower-test-pw")


def store(stack) -> RunStore:
    return RunStore(redis.Redis.from_url(stack.redis_url))


def poll(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.3)
    raise TimeoutError(what)


def csv_source(path: Path, rows: list[str]):
    from producers.spec import open_source

    write_csv(path, rows)
    return open_source(str(path), column="maid", settings=Settings())


@pytest.fixture(scope="module")
def flower(stack, tmp_path_factory):
    port = devstack.free_port()
    env = {**stack.env, "AUDIENCESYNC_FLOWER_BASIC_AUTH": ":".join(AUTH)}
    with open(tmp_path_factory.mktemp("flower") / "flower.log", "ab") as out:
        proc = subprocess.Popen(
            devstack.cli_command("flower", "--port", str(port)),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        devstack.wait_until(
            lambda: httpx.get(f"{url}/healthcheck").status_code == 200, 30, "flower", proc
        )
        yield url
    finally:
        devstack.stop(proc)


def flower_tasks(url: str, run_id: str) -> list[dict]:
    tasks = httpx.get(f"{url}/api/tasks", params={"limit": 10000}, auth=AUTH, timeout=10).json()
    return [t for t in tasks.values() if run_id in (t.get("args") or "")]


def run_tasks_done(url: str, run_id: str, count: int) -> list[dict]:
    """The run's tasks once Flower has seen `count` of them succeed. Celery cuts a task's args
    shown to 1 KiB: a finalize of many chunks no longer shows the run id and is not counted."""

    def check():
        tasks = flower_tasks(url, run_id)
        return tasks if sum(t["state"] == "SUCCESS" for t in tasks) >= count else None

    return poll(check, 30, f"Flower did not show {count} tasks of run {run_id}")


def test_flower_shows_both_queues_workers_and_the_runs_tasks_without_ids_or_tokens(
    stack, flower, tmp_path
):
    assert httpx.get(f"{flower}/api/workers").status_code == 401
    assert httpx.get(f"{flower}/api/tasks", auth=("ops", "wrong")).status_code == 401
    rows = dirty_rows(15_000, seed=21)
    audience = stack.new_audience()
    report = run_upload(stack, csv_source(tmp_path / "a.csv", rows), audience)
    assert report["status"] == "completed"

    tasks = run_tasks_done(flower, report["run_id"], count=2 * 2 + 1)
    assert {t["name"] for t in tasks} == {
        "audiencesync.prepare",
        "audiencesync.upload",
        "audiencesync.finalize",
    }
    for task in tasks:
        shown = f"{task['args']} {task['kwargs']} {task.get('result')}"
        assert not MAID.search(shown.lower()), task
        assert devstack.SANDBOX_TOKEN not in shown

    def both_workers():
        workers = httpx.get(f"{flower}/api/workers", params={"refresh": 1}, auth=AUTH).json()
        names = {name.split("@")[0] for name in workers}
        return names if {"standard-t", "critical-t"} <= names else None

    poll(both_workers, 20, "Flower does not list both queues' workers")


def metric_values(url: str, audience: str) -> dict[str, float]:
    text = httpx.get(url).text
    return {
        sample.name
        + "".join(
            f"|{v}" for k, v in sorted(sample.labels.items()) if k != "audience"
        ): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("audience") == audience
    }


def test_the_metrics_endpoint_shows_the_runs_counts(stack, tmp_path):
    rows = dirty_rows(12_000, seed=22)
    audience = stack.new_audience()
    report = run_upload(stack, csv_source(tmp_path / "a.csv", rows), audience)
    values = metric_values(stack.metrics_url, audience)
    assert values["audiencesync_runs_total|completed"] == 1
    assert values["audiencesync_ids_read_total"] == len(rows)
    assert values["audiencesync_ids_uploaded_total"] == expected(rows)["uploaded"]
    for reason, count in report["ids_rejected"].items():
        assert values[f"audiencesync_ids_rejected_total|{reason}"] == count
    assert values["audiencesync_run_duration_seconds_count"] == 1
    assert values["audiencesync_chunk_upload_latency_seconds_count"] == report["chunks"] == 2


def test_two_workers_per_queue_share_one_audience_and_it_lands_exactly(
    stack, flower, sandbox_knobs, tmp_path
):
    env = {**stack.env, "AUDIENCESYNC_LOG_JSON": "true"}
    procs = [
        devstack.start_worker(
            "standard", env, concurrency=1, name="standard-x", log=tmp_path / "standard-x.log"
        ),
        devstack.start_worker(
            "critical", env, concurrency=4, name="critical-x", log=tmp_path / "critical-x.log"
        ),
    ]
    try:
        from workers.app import app

        devstack.wait_workers(app, ["standard-x", "critical-x"], procs=procs)
        sandbox_knobs(latency_ms=60)
        rows = dirty_rows(50_000, seed=23)
        audience = stack.new_audience()
        source = csv_source(tmp_path / "a.csv", rows)
        report = run_upload(stack, source, audience, chunk_size=1000)
        assert report["status"] == "completed" and report["chunks"] == 50
        assert stack.members(audience) == expected(rows)["members"]

        tasks = run_tasks_done(flower, report["run_id"], count=2 * 50)
        by_task: dict[str, set[str]] = {}
        for task in tasks:
            by_task.setdefault(task["name"], set()).add(task["worker"].split("@")[0])
        assert by_task["audiencesync.prepare"] == {"standard-t", "standard-x"}
        assert by_task["audiencesync.upload"] == {"critical-t", "critical-x"}
    finally:
        for proc in procs:
            devstack.stop(proc)
    # AUDIENCESYNC_LOG_JSON: every log line of those workers is one JSON object.
    lines = [
        orjson.loads(line)
        for name in ("standard-x", "critical-x")
        for line in (tmp_path / f"{name}.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assert any(line["message"].endswith("ready.") for line in lines)
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)


@pytest.fixture(scope="module")
def producer(stack, tmp_path_factory):
    """A `producer` worker (scheduled runs) reading a declared-audiences file the tests write."""
    from workers.app import app

    workdir = tmp_path_factory.mktemp("declared")
    audiences, log = workdir / "audiences.toml", workdir / "producer.log"
    env = {**stack.env, "AUDIENCESYNC_AUDIENCES_FILE": str(audiences)}
    proc = devstack.start_worker("producer", env, concurrency=2, name="producer-t", log=log)
    try:
        devstack.wait_workers(app, ["producer-t"], procs=[proc])
        yield env, audiences, log
    finally:
        devstack.stop(proc)


def runs_of(stack, name: str) -> list[tuple[dict, dict | None]]:
    """(meta, report) of every run of a declared audience, oldest first."""
    s = store(stack)
    found = [(s.meta(r), s.report(r)) for r in s.recent(200)]
    return sorted(
        ((m, rep) for m, rep in found if m.get("audience_name") == name),
        key=lambda pair: float(pair[0]["started_at"]),
    )


def test_a_declared_audience_runs_on_schedule_never_twice_at_once(
    stack, producer, sandbox_knobs, tmp_path
):
    env, audiences_file, producer_log = producer
    rows = dirty_rows(15_000, seed=24)
    write_csv(tmp_path / "a.csv", rows)
    audience = stack.new_audience()
    name = f"sched-{audience}"
    audiences_file.write_text(
        f'[audiences.{name}]\naudience_id = "{audience}"\nfile = "{tmp_path / "a.csv"}"\n'
        'column = "maid"\nevery_s = 1\n'
    )
    # Each run lasts about 3 s (two calls in parallel, then the session close): 3 ticks.
    sandbox_knobs(latency_ms=1500)
    with open(tmp_path / "beat.log", "ab") as out:
        beat = subprocess.Popen(
            devstack.cli_command(
                "beat", "--audiences", str(audiences_file), "--schedule-file", str(tmp_path / "s")
            ),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        poll(lambda: sum(rep is not None for _, rep in runs_of(stack, name)) >= 2, 60, "2 runs")
    finally:
        devstack.stop(beat)
    runs = runs_of(stack, name)
    for (_, earlier), (later, _) in pairwise(runs):
        assert earlier is not None, "a run started while the previous one was still running"
        finished = datetime.fromisoformat(earlier["finished_at"]).timestamp()
        assert float(later["started_at"]) >= finished
    assert all(rep["status"] == "completed" for _, rep in runs if rep)
    # Throttled with every other run on the ad account, not alone per audience.
    assert all(rep["throttle"]["account"] == "act_1001" for _, rep in runs if rep)
    # Each run records its source, so `resume` can finish one whose producer died.
    spec = SourceSpec(path=str(tmp_path / "a.csv"), column="maid")
    assert all(SourceSpec.from_meta(meta) == spec for meta, _ in runs)
    skipped = producer_log.read_text().count(f"audience={name} skipped")
    assert skipped >= 2, "beat's ticks during a run should have been skipped"
    assert stack.members(audience) == expected(rows)["members"]
    poll(lambda: store(stack).r.get(store(stack).lock_key(name)) is None, 30, "lock released")


def test_cancel_stops_a_run_and_runs_lists_it_as_cancelled(stack, sandbox_knobs, tmp_path):
    rows = dirty_rows(40_000, seed=25)
    write_csv(tmp_path / "a.csv", rows)
    audience = stack.new_audience()
    sandbox_knobs(latency_ms=300)
    env = {
        **stack.env,
        "AUDIENCESYNC_CHUNK_SIZE": "1000",
        "AUDIENCESYNC_STAGING_WINDOW_CHUNKS": "4",
    }
    args = ["upload", str(tmp_path / "a.csv"), "--column", "maid", "--audience-id", audience]
    upload = subprocess.Popen(
        devstack.cli_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    run_id = upload.stdout.readline().decode().strip()
    poll(lambda: int(store(stack).meta(run_id).get("chunks_done", 0)) >= 2, 30, "2 chunks done")

    done = cli(stack.env, "cancel", run_id)
    assert done.returncode == 0 and "cancelling" in done.stderr
    assert upload.wait(timeout=30) == 0  # the producer stopped reading
    report = poll(lambda: store(stack).report(run_id), 30, "the cancelled run's report")
    assert report["status"] == "cancelled" and "cancelled by an operator" in report["message"]
    assert report["unaccounted"] == 0 and report["ids_read"] < len(rows)
    assert report["ids_uploaded"] < expected(rows)["uploaded"]
    assert not report["session_closed"]
    assert sum(c["entries"] for c in stack.calls(audience)) == report["ids_uploaded"]

    again = cli(stack.env, "cancel", run_id)
    assert again.returncode == 1 and "already finished: cancelled" in again.stderr
    listed = cli(stack.env, "runs", "--json", "--limit", "5")
    rows_listed = [orjson.loads(line) for line in listed.stdout.splitlines()]
    mine = next(r for r in rows_listed if r["run_id"] == run_id)
    assert (mine["audience"], mine["status"], mine["ids"]) == (
        audience,
        "cancelled",
        report["ids_uploaded"],
    )
    table = cli(stack.env, "runs").stdout
    assert any(line.startswith(run_id) and "cancelled" in line for line in table.splitlines())
