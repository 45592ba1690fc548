"""bench.throttle's pace scenario: a destination whose pace changes is not throttling.

E. The sandbox answers in 5 ms; an upload teaches the gate that pace. Then it answers in
   300-400 ms (no limit, no usage): the same account's next run ("after a change of pace")
   against a run on an account new to the gate at that pace. Nothing pins the first at a crawl:
   the two should take about as long (1M IDs, the default settings).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from audiencesync.cli import devstack

FAST_KNOBS = ("--latency-ms", "5")
SLOW = {"latency_ms": 300, "jitter_ms": 100}
FAST = {"latency_ms": 5, "jitter_ms": 0}

Fresh = Callable[[devstack.PrivateStack, bool], str]  # a new audience (forget the account?)


def _pace(stack: devstack.PrivateStack, knobs: dict) -> None:
    httpx.post(f"{stack.graph_url}/_sandbox/config", json=knobs, timeout=60).raise_for_status()


def _run(stack: devstack.PrivateStack, csv: Path, audience: str) -> dict:
    report = stack.upload(csv, audience)
    assert report["status"] == "completed", report["message"]
    throttle = report["throttle"]
    return {
        "duration_s": report["duration_s"],
        "requests_per_s": throttle["requests_per_s"],
        "soft_episodes": throttle["soft_episodes"],
        "pace_ms": throttle["pace_ms"],
        "inflight_limit": throttle["inflight_limit"],
    }


def run_pace(work: Path, csv: Path, repeat: int, fresh: Fresh, warm_up: Callable) -> dict:
    runs: dict[str, list[dict]] = {}
    with devstack.private_stack(work / "pace", *FAST_KNOBS) as stack:
        warm_up(stack)
        for _ in range(repeat):
            _pace(stack, FAST)
            runs.setdefault("at_5_ms", []).append(_run(stack, csv, fresh(stack, True)))
            _pace(stack, SLOW)
            runs.setdefault("after_a_change_of_pace", []).append(
                _run(stack, csv, fresh(stack, False))
            )
            runs.setdefault("new_account_at_300_ms", []).append(
                _run(stack, csv, fresh(stack, True))
            )
    return runs


def pace_tables(runs: dict) -> list[str]:
    lines = [f"pace: {'contender':<26}{'duration s':>11}{'calls/s':>9}{'soft':>6}{'pace ms':>9}"]
    for contender, rows in runs.items():
        for r in rows:
            lines.append(
                f"      {contender:<26}{r['duration_s']:>11.1f}{r['requests_per_s']:>9.1f}"
                f"{r['soft_episodes']:>6}{r['pace_ms']:>9.0f}"
            )
    return lines
