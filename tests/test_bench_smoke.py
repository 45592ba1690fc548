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
