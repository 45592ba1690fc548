"""The benchmark's own parts work (its figures come from `python -m bench.run`, not from here)."""

from __future__ import annotations

import re

from bench.contenders import run_audiencesync, run_lean
from bench.data import write_maids_csv

MAID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_generated_maids_are_well_formed(tmp_path):
    lines = write_maids_csv(tmp_path / "m.csv", 1_234).read_text().splitlines()
    assert lines[0] == "maid" and len(lines) == 1_235
    assert all(MAID.fullmatch(line) for line in lines[1:])


def test_lean_and_audiencesync_contenders_deliver_everything(stack, tmp_path):
    csv_path = write_maids_csv(tmp_path / "m.csv", 25_000)
    lean_audience, our_audience = stack.new_audience(), stack.new_audience()
    lean = run_lean(csv_path, lean_audience, stack.graph_url, inflight=8)
    ours = run_audiencesync(csv_path, our_audience, stack.env)
    assert lean.ids_sent == ours.ids_sent == 25_000 and lean.calls == 3
    assert stack.members(lean_audience) == stack.members(our_audience)
    assert ours.extra["report"]["status"] == "completed"
    assert ours.extra["producer_peak_rss_mb"] > 0


def test_cpu_meter_sees_the_work_a_process_tree_does():
    import os
    import subprocess
    import sys

    from bench.measure import CpuMeter

    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with CpuMeter({"me": os.getpid(), "idle": child.pid}) as cpu:
            subprocess.run([sys.executable, "-c", busy], check=True)  # reaped: counted as ours
        assert cpu.used_s["me"] >= 0.25 and cpu.used_s["idle"] < 0.1
    finally:
        child.kill()
        child.wait()


def test_profile_summary_reads_collapsed_stacks(tmp_path):
    from bench.profile import RATE_HZ, summary

    head = 'process 1:"python";thread 2;main (audiencesync/cli.py:1)'
    stacks = tmp_path / "worker.txt"
    stacks.write_text(f"{head};prepare (tasks/prepare.py:9) 150\n{head};get (redis/c.py:5) 50\n")
    lines = summary(stacks, chunks=10)
    held_s = 200 / RATE_HZ
    assert lines[0] == f"worker: {held_s:.1f} s holding the GIL, {held_s * 100:.1f} ms per chunk"
    assert "tasks 75%" in lines[1] and "redis 25%" in lines[1]
    assert any("75.0%  prepare (tasks/prepare.py:9)" in line for line in lines)


def test_table_shows_both_audiencesync_rows_with_their_own_figures():
    from bench.show import LEARNED_ACCOUNT, NEW_ACCOUNT, table

    def ours(name: str, wall_s: float, rss_mb: float) -> dict:
        extra = {
            "producer_peak_rss_mb": 100.0,
            "first_call_s": wall_s / 8,
            "last_answer_s": wall_s - 0.1,
            "peak_rss_mb": {"worker critical": rss_mb},
            "redis_peak_used_memory_mb": 20.0,
            "cpu_ms_per_chunk": {"producer": 5.0},
            "redis_commands_per_chunk": {"evalsha": 3.0},
        }
        return {"name": name, "wall_s": wall_s, "ids_per_s": 1e6 / wall_s, "extra": extra}

    lean = {"name": "lean asyncio uploader", "wall_s": 2.0, "ids_per_s": 5e5, "extra": {}}
    rows = [lean, ours(NEW_ACCOUNT, 8.0, 222), ours(LEARNED_ACCOUNT, 4.0, 227)]
    lines = table({"ids": 1_000_000, "outcomes": rows})
    new_row = next(ln for ln in lines if ln.strip().startswith(NEW_ACCOUNT) and "0.25" in ln)
    learned_row = next(
        ln for ln in lines if ln.strip().startswith(LEARNED_ACCOUNT) and "0.50" in ln
    )
    assert "125,000" in new_row and "250,000" in learned_row
    assert sum("worker critical 222 MB" in ln for ln in lines) == 1
    assert sum("worker critical 227 MB" in ln for ln in lines) == 1
    assert sum("first call at 1.00 s, last answer at 7.90 s" in ln for ln in lines) == 1


def test_trace_timeline_counts_calls_deferrals_and_what_blocked_per_second():
    from bench.throttle_trace import Trace

    trace = Trace("redis://localhost:1/0", "act_1", lease_ttl_s=10)  # never connects here
    trace.started_s = 100.0
    trace.sends = {b"a": 100.5, b"b": 101.2, b"c": 101.9}
    trace.retries = [101.1, 101.3, 101.4]
    trace.states = [(100.4, 5.0, 1, b"slots"), (101.5, 10.0, 2, b"")]
    assert trace.timeline() == [
        {"s": 0, "calls": 1, "usage": 5.0, "limit": 1, "deferrals": 0, "blocked": "slots"},
        {"s": 1, "calls": 2, "usage": 10.0, "limit": 2, "deferrals": 3, "blocked": ""},
    ]


def test_throttle_summary_gives_medians_ranges_and_summed_counts():
    from bench.throttle_show import summary, tables

    runs = [
        {"duration_s": d, "throttled_calls": t, "soft_episodes": 0, "inflight_limit": 1}
        for d, t in [(6.0, 0), (5.5, 2), (7.5, 1)]
    ]
    row = summary(runs)
    assert row["median"] == {"duration_s": 6.0, "inflight_limit": 1}
    assert row["range"]["duration_s"] == [5.5, 7.5]
    assert row["total"] == {"throttled_calls": 3, "soft_episodes": 0}
    [head, line] = tables({"latency_grows_with_load": {"detector": row}})
    assert head.split()[:2] == ["B.", "contender"]
    assert line.split() == ["detector", "6.00", "(5.50-7.50)", "0", "1"]
