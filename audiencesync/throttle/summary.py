"""The run report's `throttle` section and its one human line (pure).

Episodes and cool-down seconds are counted by the worker that saw an episode start or end
(guard.py), so an episode that spans two runs of one account is counted in the run that saw it.
"""

from __future__ import annotations

from audiencesync.throttle.gate import Snapshot


def live_section(account: str, meta: dict[str, str], now: Snapshot) -> dict:
    """What `status` shows of a running run: its episodes so far and the account's state now."""
    return {
        "account": account,
        "episodes": int(float(meta.get("throttle_events", 0))),
        "cooldown_s": round(float(meta.get("throttle_cooldown_s", 0)), 3),
        "soft_episodes": int(float(meta.get("soft_throttle_events", 0))),
        "rate_per_s": round(now.rate_per_s, 3),
        "inflight_limit": now.inflight_limit,
        "cooling_down_s": round(now.cool_wait_s, 3),
    }


def throttle_section(
    account: str, meta: dict[str, str], results: list[dict], report: dict, now: Snapshot
) -> dict:
    """The report's section: the run's episodes and deferrals, its request rate, and the
    account's adapted rate and in-flight limit when the run ended."""
    section = live_section(account, meta, now)
    del section["cooling_down_s"]
    return {
        **section,
        "deferrals": sum(r.get("deferrals", 0) for r in results),
        "deferred_s": round(sum(r.get("deferred_s", 0.0) for r in results), 3),
        "requests_per_s": round(report["requests"] / max(report["duration_s"], 1e-9), 3),
    }


def throttle_line(section: dict) -> str:
    return (
        f"  throttle on {section['account']}: {section['episodes']} episode(s), cooled down "
        f"{section['cooldown_s']:.1f}s, {section['soft_episodes']} soft, "
        f"{section['deferrals']:,} deferrals\n"
        f"  {section['requests_per_s']:.2f} requests/s; adapted rate "
        f"{section['rate_per_s']:.2f}/s, in-flight limit {section['inflight_limit']}"
    )


def live_line(section: dict) -> str:
    cooling = (
        f", cooling down {section['cooling_down_s']:.1f}s" if section["cooling_down_s"] else ""
    )
    return (
        f"throttle on {section['account']}: rate {section['rate_per_s']:.2f}/s, in-flight limit "
        f"{section['inflight_limit']}{cooling}; {section['episodes']} episode(s) so far "
        f"(cooled down {section['cooldown_s']:.1f}s), {section['soft_episodes']} soft"
    )
