"""What a person sees: no rate for a run that did not finish, no 0/0 bar for a run that sent
nothing."""

from __future__ import annotations

import io
import time

import redis

from audiencesync.cli.display import ProgressBar, format_report, format_runs, run_row
from audiencesync.domain.report import build_report, chunk_result
from audiencesync.store.meta import RunMeta
from audiencesync.store.runs import RunStore

META = {"audience_id": "42", "ids_read": "7", "started_at": "100.0", "session_id": "1"}


def report_of(**meta: str) -> dict:
    results = (
        [chunk_result(0, 7, uploaded=7)]
        if "aborted" not in meta
        else [chunk_result(0, 7, failed="not sent: boom", ids_failed=7)]
    )
    return build_report("r1", RunMeta.parse({**META, **meta}), results, finished_at=107.0)


def test_a_completed_run_shows_its_rate_a_failed_or_cancelled_one_does_not():
    assert format_report(report_of()).splitlines()[-1].strip() == "7.0s, 1 IDs/s"
    for meta in ({"aborted": "boom"}, {"aborted": "stop", "cancelled": "1"}):
        report = report_of(**meta)
        assert report["status"] in ("failed", "cancelled")
        text = format_report(report)
        assert "IDs/s" not in text and "  7.0s" in text.splitlines()


def test_the_runs_table_shows_no_rate_for_a_failed_run():
    row = run_row("r1", RunMeta.parse(META), report_of(aborted="boom"), now=200.0)
    assert format_runs([row]).splitlines()[1].split()[-3:] == ["0", "-", "7.0s"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def bar_output(redis_url: str, run_id: str, meta: dict, *, then: dict | None = None) -> str:
    store = RunStore(redis.Redis.from_url(redis_url))
    store.create_run(run_id, {**meta, "started_at": time.time()})
    out = Terminal()
    with ProgressBar(store, run_id, out=out, every_s=0.01):
        while not out.getvalue():  # drawn at least once while the run goes on
            time.sleep(0.01)
        store.update(run_id, **(then or {}))
    return out.getvalue()


def test_a_run_that_sent_nothing_leaves_no_bar_behind(redis_url):
    run_id = f"bar-empty-{time.time_ns()}"
    out = bar_output(redis_url, run_id, {"producer_done": 0}, then={"producer_done": 1})
    final = out.rsplit("\r", 1)[-1]
    assert out.startswith("\r[") and final == ""  # the line drawn while it ran is wiped
    assert out.rstrip("\r").endswith(" " * 20)


def test_a_run_that_sent_chunks_ends_with_its_bar(redis_url):
    run_id = f"bar-sent-{time.time_ns()}"
    done = {"producer_done": 1, "chunks_staged": 2, "chunks_done": 2, "ids_read": 9, "ids_done": 9}
    out = bar_output(redis_url, run_id, {"producer_done": 0}, then=done)
    assert out.endswith("\n") and "chunks 2/2" in out.rsplit("\r", 1)[-1]
