"""The run report's `throttle` section and its one human line (pure).

Episodes and cool-down seconds are counted by the worker that saw an episode start or end
(guard.py), so an episode that spans two runs of one account is counted in the run that saw it.
The budget is what Meta's usage figures show: one call's share of it, as calls per Meta's window.
"""

from __future__ import annotations

from audiencesync.store.meta import RunMeta
from audiencesync.throttle.gate import Snapshot


def live_section(account: str, meta: RunMeta, now: Snapshot) -> dict:
    """What `status` shows of a running run: its episodes so far and the account's state now."""
    return {
        "account": account,
        "episodes": int(meta.throttle_events),  # refusals: 0 expected
        "cooldown_s": round(meta.throttle_cooldown_s, 3),
        "soft_episodes": int(meta.soft_throttle_events),
        "budget_calls_per_window": now.budget_calls,  # 0: Meta has not shown it yet
        "usage_pct": now.usage_pct,
        "budget_wait_s": round(meta.budget_wait_s, 3),
        "pace_ms": round(now.pace_s * 1000, 1),
        "inflight_limit": now.inflight_limit,
        "cooling_down_s": round(now.cool_wait_s, 3),
    }


def throttle_section(
    account: str, meta: RunMeta, results: list[dict], report: dict, now: Snapshot
) -> dict:
    """The report's section: the run's episodes, budget waits and deferrals, its request rate,
    and the account's budget, pace and in-flight limit when the run ended."""
    section = live_section(account, meta, now)
    del section["cooling_down_s"]
    return {
        **section,
        "deferrals": sum(r.get("deferrals", 0) for r in results),
        "deferred_s": round(sum(r.get("deferred_s", 0.0) for r in results), 3),
        "requests_per_s": round(report["requests"] / max(report["duration_s"], 1e-9), 3),
    }


def _budget(section: dict) -> str:
    calls = section["budget_calls_per_window"]
    # One call's share is the smallest rise of a whole-percent figure: an upper bound, so the
    # budget is at least this deep (exactly, for budgets under 100 calls).
    known = f"at least {calls:,} calls per window" if calls else "not shown yet"
    return f"budget {known} (usage {section['usage_pct']:.0f}%)"


def throttle_line(section: dict) -> str:
    return (
        f"  throttle on {section['account']}: {section['episodes']} block(s), cooled down "
        f"{section['cooldown_s']:.1f}s, {section['soft_episodes']} soft, "
        f"{section['deferrals']:,} deferrals\n"
        f"  {_budget(section)}; waited {section['budget_wait_s']:.1f} call-s for it; "
        f"{section['requests_per_s']:.2f} requests/s; pace {section['pace_ms']:.0f} ms, "
        f"in-flight limit {section['inflight_limit']}"
    )


def live_line(section: dict) -> str:
    cooling = (
        f", cooling down {section['cooling_down_s']:.1f}s" if section["cooling_down_s"] else ""
    )
    return (
        f"throttle on {section['account']}: {_budget(section)}, pace {section['pace_ms']:.0f} ms, "
        f"in-flight limit {section['inflight_limit']}{cooling}; {section['episodes']} block(s) "
        f"so far (cooled down {section['cooldown_s']:.1f}s), {section['soft_episodes']} soft"
    )
