"""bench.throttle's budget scenarios: audiencesync against Meta's deep budgets, scaled down.

C. A rolling window of 120 upload calls per 30 s per account, refused calls counted (Meta's
   custom_audience budget is calls per rolling hour; scaled so a run takes about 30 s).
D. A score of 300 points decaying over 20 s, 3 points a write, a 4 s block when exceeded: a burst
   of 100 writes, then 5 writes/s (Meta's standard tier, 9,000 points / 300 s with a 60 s block,
   divided by 15 in time and by 30 in depth).
Both at 150-250 ms a call, 2M IDs (200 calls of 10,000), the default deployment (one worker per
queue), on an account new to the gate and on a known one. Each run is printed beside the best
schedule the model allows (bench/schedule.py: spend the budget at full speed, 64 calls in flight,
then the refill rate), measured from the upload command's start and over the calling span (the
first call's arrival to the last answer, the same span the best schedule covers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import httpx

from audiencesync.cli import devstack
from audiencesync.settings import MAX_CHUNK_IDS
from bench.schedule import Score, Window, best_schedule_s

LATENCY_KNOBS = ("--latency-ms", "150", "--jitter-ms", "100")
MEAN_LATENCY_S = 0.2
LEAN_INFLIGHT = 64
BUDGET_IDS = 2_000_000
BUDGETS: dict[str, tuple[tuple[str, ...], Window | Score]] = {
    "window": (("--budget-calls", "120", "--budget-window-s", "30"), Window(120, 30.0)),
    "score": (
        ("--score-max", "300", "--score-decay-s", "20", "--write-points", "3", "--block-s", "4"),
        Score(max_points=300, decay_s=20, write_points=3),
    ),
}


def best_for(ids: int, model: Window | Score) -> float:
    calls = math.ceil(ids / MAX_CHUNK_IDS)
    return round(best_schedule_s(calls, model, LEAN_INFLIGHT / MEAN_LATENCY_S, MEAN_LATENCY_S), 2)


Fresh = Callable[[devstack.PrivateStack, bool], str]  # a new audience (forget the account?)


def budget_run(stack: devstack.PrivateStack, csv: Path, best_s: float, audience: str) -> dict:
    report = stack.upload(csv, audience)
    stats = httpx.get(f"{stack.graph_url}/_sandbox/stats", timeout=60).json()
    calls = httpx.get(f"{stack.graph_url}/_sandbox/audiences/{audience}/calls", timeout=60).json()
    calling_s = max(c["answered_s"] for c in calls) - min(c["received_s"] for c in calls)
    by_model = stats.get("throttled_by", {})
    blocks = by_model.get("score", 0) + by_model.get("bucket", 0) - stats["calls_in_penalty"]
    return {
        "status": report["status"],
        "duration_s": report["duration_s"],
        "calling_s": round(calling_s, 2),
        "best_schedule_s": best_s,
        "duration_over_best": round(report["duration_s"] / best_s, 3),
        "calling_over_best": round(calling_s / best_s, 3),
        "requests": report["requests"],
        "throttled_calls": stats["throttled"],
        "calls_in_penalty": stats["calls_in_penalty"],
        "blocks": blocks,
    }


def run_budgets(
    work: Path,
    csv: Path,
    names: list[str],
    repeat: int,
    fresh: Fresh,
    warm_up: Callable[[devstack.PrivateStack], None],
) -> dict:
    """Each budget's stack, warmed; `fresh` resets the sandbox (a fresh budget too)."""
    results: dict[str, dict[str, list[dict]]] = {}
    for name in names:
        knobs, model = BUDGETS[name]
        best_s = best_for(BUDGET_IDS, model)
        with devstack.private_stack(work / name, *LATENCY_KNOBS, *knobs) as stack:
            warm_up(stack)
            runs: dict[str, list[dict]] = {}
            for _ in range(repeat):
                for contender, forget in [("new_account", True), ("known_account", False)]:
                    runs.setdefault(contender, []).append(
                        budget_run(stack, csv, best_s, fresh(stack, forget))
                    )
        results[name] = runs
    return results


def budget_tables(results: dict) -> list[str]:
    lines = []
    for name, runs in results.items():
        lines.append(
            f"{name}: {'contender':<16}{'duration s':>11}{'calling s':>10}{'best s':>8}"
            f"{'x best':>8}{'refused':>9}{'in block':>9}{'blocks':>7}"
        )
        for contender, rows in runs.items():
            for r in rows:
                lines.append(
                    f"{'':<{len(name) + 2}}{contender:<16}{r['duration_s']:>11.1f}"
                    f"{r['calling_s']:>10.1f}{r['best_schedule_s']:>8.1f}"
                    f"{r['duration_over_best']:>8.2f}{r['throttled_calls']:>9}"
                    f"{r['calls_in_penalty']:>9}{r['blocks']:>7}"
                )
    return lines
