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
