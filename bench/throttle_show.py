"""bench.throttle's figures over repeated runs: the median and range of each, and its tables."""

from __future__ import annotations

import statistics

SUMMED = ("throttled_calls", "calls_in_penalty", "soft_episodes", "requests")


def summary(runs: list[dict]) -> dict:
    """The median of each figure over the runs (the counts summed), and the range of each."""
    numbers = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    medians = {k: statistics.median(r[k] for r in runs) for k in numbers if k not in SUMMED}
    ranges = {k: [min(r[k] for r in runs), max(r[k] for r in runs)] for k in numbers}
    totals = {k: sum(r[k] for r in runs) for k in SUMMED if k in numbers}
    return {"median": medians, "range": ranges, "total": totals, "runs": runs}


def span(row: dict, key: str, fmt: str) -> str:
    low, high = row["range"][key]
    return f"{row['median'][key]:{fmt}} ({low:{fmt}}-{high:{fmt}})"


def tables(results: dict) -> list[str]:
    """Both scenarios' figures, median (range) over the runs, printed beside the JSON."""
    lines = []
    if rows := results.get("rate_limit"):
        lines.append(f"{'A. contender':<30}{'duration s':>20}{'share: whole run':>24}"
                     f"{'while calling':>24}{'refused':>9}{'in penalty':>11}")  # fmt: skip
        for name, row in rows.items():
            lines.append(
                f"{name:<30}{span(row, 'duration_s', '.1f'):>20}"
                f"{span(row, 'share_of_limit_whole_run', '.1%'):>24}"
                f"{span(row, 'share_of_limit_while_calling', '.1%'):>24}"
                f"{row['total']['throttled_calls']:>9}{row['total']['calls_in_penalty']:>11}"
            )
    if rows := results.get("latency_grows_with_load"):
        lines.append(f"{'B. contender':<46}{'duration s':>20}{'soft episodes':>15}"
                     f"{'in-flight limit':>17}")  # fmt: skip
        for name, row in rows.items():
            soft, limit = row["total"].get("soft_episodes", 0), row["range"]["inflight_limit"]
            lines.append(f"{name:<46}{span(row, 'duration_s', '.2f'):>20}{soft:>15}"
                         f"{'-'.join(map(str, sorted(set(limit)))):>17}")  # fmt: skip
    if floor := results.get("load_detector_floor"):
        lines.append(
            f"B. a new account's floor: hand-tuned + one pair ({floor['pair_cost_s']:.2f} s) = "
            f"{floor['floor_s']:.2f} s; the new account took {floor['new_account_over_floor']:.2f}x"
            f" of it ({floor['new_account_over_hand_tuned']:.2f}x of hand-tuned)"
        )
    return lines
