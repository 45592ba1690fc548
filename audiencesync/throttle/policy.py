"""The throttle's arithmetic, pure: token bucket, Meta's budget from its usage figures, cool-downs,
and latency (the destination's pace, and strain under our load).

policy.lua does exactly the same sums inside Redis (spliced into gate.lua, atomically for the
whole fleet; its functions carry the same names); tests/unit/test_throttle_lua.py checks that the
two agree step by step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EXIT_SHARE = 2 / 3  # soft throttling ends below this share of the strain threshold (no flapping)
BASELINE_PERCENTILE = 0.1  # the baseline latency (the pace): a low percentile of the window
SLOT_POLL_S = 0.05  # no slot or budget free: ask again when a call settles, or this soon
BOOK_SPAN_S = 1.0  # appointments for callers told to come back span at most this
REGAIN_UNIT_S = 60.0  # Meta's estimated_time_to_regain_access counts whole minutes
WALL_PCT = 100.0  # Meta refuses calls once a usage figure reaches this
FIRST_ANSWER_S = 0.25  # before any answer, inflight_start calls wait this long for one (pace_limit)
CALM_INTERVALS = 16  # after a probe of the load limit caused strain: calm this long ...
CALM_MAX_INTERVALS = 120  # ... doubling per strained probe up to this
NORMAL, RAISED, STRAINED = 0, 1, 2  # latency levels; RAISED lies between exit and entry


@dataclass(frozen=True)
class Params:
    """The tunables come from the settings (throttle_<name>; settings.py says what each means)."""

    rate_per_s: float
    adapt_interval_s: float
    usage_target_pct: float  # Meta's usage figure the calls in flight may take it to
    cooldown_base_s: float  # the cool-down's backoff; doubles per refused probe
    cooldown_max_s: float
    inflight_start: int
    inflight_floor: int
    inflight_ceiling: int
    latency_factor: float  # interval average >= this x baseline: soft throttling; 0 = off
    latency_window: int = 200  # latencies kept (fleet-wide) for the baseline
    latency_min_samples: int = 3  # no verdict before the window holds this many
    interval_min_samples: int = 3  # nor from an interval with fewer calls


# --- the token bucket -------------------------------------------------------------------------
# A bucket of one token (no bursts), kept as the time its next token is free (GCRA's form): a
# caller may take a token up to max_wait_s ahead.
def token_wait_s(next_free_s: float, now_s: float) -> float:
    return max(0.0, next_free_s - now_s)


def take_token(next_free_s: float, now_s: float, rate_per_s: float) -> float:
    """The bucket's next free time once a caller has taken the next token."""
    return max(next_free_s, now_s) + 1.0 / rate_per_s


def appointment_s(booked_until_s: float, earliest_s: float) -> float:
    """When a caller the bucket cannot serve within max_wait_s should ask again.

    Appointments go out 1/rate apart (booked_until_s), so the waiting callers come back spread
    out, not as a herd; an appointment is no reservation, so the book restarts at earliest_s
    once it is BOOK_SPAN_S ahead, or it would drift away from the bucket and leave it idle."""
    if earliest_s <= booked_until_s <= earliest_s + BOOK_SPAN_S:
        return booked_until_s
    return earliest_s


# --- Meta's budget: usage figures and cool-downs ---------------------------------------------
def budget_room(usage_pct: float, per_call_pct: float, inflight: int, p: Params) -> bool:
    """Room in Meta's budget for one more call: the latest usage figure, plus one call's share
    for each call in flight (not yet counted in that figure) and this one, stays within the
    usage target. Before a rise of the figure tells one call's share, the figure spread over
    the calls in flight stands for it: too much for a deep budget (its figure is near 0, so
    no matter), and it stops a shallow one (the lab's 10 calls a second: 90 % after 9 calls)
    from being overrun by calls sent while its share is learned."""
    if per_call_pct <= 0:
        per_call_pct = usage_pct / max(1, inflight)
    return usage_pct + per_call_pct * (inflight + 1) <= p.usage_target_pct


def per_call_pct(known_pct: float, rise_pct: float) -> float:
    """One call's share of the budget: the smallest rise of Meta's usage figure from one answer
    to the next (figures are whole percent: a budget deeper than 100 calls rises by 1)."""
    if rise_pct <= 0:
        return known_pct
    return rise_pct if known_pct <= 0 else min(known_pct, rise_pct)


def at_wall(usage_pct: float, per_call_pct: float, p: Params) -> bool:
    """Meta's figure leaves no room for one more call: the next would be refused. Where the
    margin above the usage target holds a call (a budget of 20 calls or more), the target is
    the wall: the margin is kept for the probes that find the window free again (each counts
    in it), not spent by calls fetching a fresher figure."""
    wall_pct = WALL_PCT
    if 0 < per_call_pct <= WALL_PCT - p.usage_target_pct:
        wall_pct = p.usage_target_pct
    return usage_pct + per_call_pct > wall_pct or usage_pct >= wall_pct


def found_on_time(wall_probe_s: float, cool_until_s: float, now_s: float, pace_s: float,
                  p: Params) -> bool:  # fmt: skip
    """Room found by a probe sent as the cool-down ended (callers were waiting), so the wall
    ended between the last probe and now: a length to learn. Not by a call made long after
    (the next run, an hour later), which tells nothing of when the wall ended. Late by up to
    the cool-down again (a deferral's jitter), an adapt interval and a round trip."""
    slack_s = (cool_until_s - wall_probe_s) + p.adapt_interval_s + stale_s(pace_s, p)
    return now_s - cool_until_s <= slack_s


def stale_s(pace_s: float, p: Params) -> float:
    """How old a usage figure may be before a call goes to fetch a new one (usage decays): two
    round trips at the destination's pace, an adapt interval before the pace is known."""
    return 2 * pace_s if pace_s > 0 else p.adapt_interval_s


def cooldown_s(regain_s: float, strikes: int, p: Params, base_s: float = 0.0) -> float:
    """A backoff from base_s (cooldown_base_s if 0) doubling with each strike, kept within
    Meta's estimate when it gives one.

    Meta counts estimated_time_to_regain_access in whole minutes, rounded up: an estimate of N
    minutes means the wall lasts more than N-1 of them, and at most N. So the account waits the
    N-1 minutes for certain, and within the last one probes with the backoff (a refused probe
    brings a fresh estimate) instead of idling a whole minute for a wall of a few seconds."""
    wait_s = (base_s or p.cooldown_base_s) * 2.0 ** (strikes - 1)
    if regain_s > 0:
        wait_s = min(max(wait_s, regain_s - REGAIN_UNIT_S), regain_s)
    return min(wait_s, p.cooldown_max_s)


# --- latency: the pace, and strain under our load ---------------------------------------------
def baseline_s(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[math.floor((len(ordered) - 1) * BASELINE_PERCENTILE)]


def pace_limit(rate_per_s: float, pace_s: float, oldest_age_s: float, p: Params) -> int:
    """Little's law: the calls in flight the rate needs at the destination's pace (its baseline
    latency). Before any answer the pace is unknown, but at least the age of the oldest call
    in flight: the limit grows with it at the rate, from inflight_start, once the oldest has
    waited FIRST_ANSWER_S. A nearby destination answers sooner, and its first answer shows a
    budget too shallow for what a blind start sends (the lab's 10 calls a second) before it is
    overrun; at Meta's 1-2 s a call the wait costs a quarter second once."""
    if pace_s > 0:
        return max(p.inflight_floor, math.ceil(rate_per_s * pace_s))
    return max(p.inflight_start, math.ceil(rate_per_s * (oldest_age_s - FIRST_ANSWER_S)))


def paired(admitted_s: float, paired_at_s: float, p: Params) -> bool:
    """A call let go no earlier than the first call that went alongside another: that call (no
    other goes until it answers). Within half a token, as a lease's time in Redis is rounded."""
    return paired_at_s > 0 and admitted_s > 0 and admitted_s >= paired_at_s - 0.5 / p.rate_per_s


def latency_level(
    samples: list[float], interval_avg_s: float, interval_calls: int, p: Params
) -> int | None:
    """How hard the destination strains under our load; None when there is too little evidence.

    STRAINED (the interval's average at latency_factor x baseline or more) starts soft
    throttling and cuts the load limit; soft throttling ends below EXIT_SHARE of that."""
    if p.latency_factor <= 0:
        return NORMAL
    if interval_calls < p.interval_min_samples or len(samples) < p.latency_min_samples:
        return None
    threshold_s = p.latency_factor * baseline_s(samples)
    if interval_avg_s >= threshold_s:
        return STRAINED
    return RAISED if interval_avg_s >= EXIT_SHARE * threshold_s else NORMAL


def next_limit(
    limit: int,
    level: int | None,
    calm_intervals: int,
    calm_needed: int,
    blocked: bool,
    paced_share: float,
    p: Params,
) -> int:
    """Strained: cut to the calls in flight that serve as many calls a second at the pace
    (Little's law: limit x paced_share, the pace over the interval's average latency, at most
    1 / latency_factor), where a destination that queues our calls answers at its pace again.
    Grow (a probe) when callers found every slot taken and latency has been normal for
    calm_needed intervals in a row: double while no probe has strained (calm_needed 1), else
    by one."""
    if level == STRAINED:
        return max(p.inflight_floor, math.floor(limit * paced_share))
    if blocked and level == NORMAL and calm_intervals >= calm_needed:
        return min(p.inflight_ceiling, limit + (limit if calm_needed == 1 else 1))
    return limit


def next_calm_needed(calm_needed: int, level: int | None) -> int:
    """The verdict on a probe: strain backs probing off (double the calm needed, at least
    CALM_INTERVALS); a probe that held halves it (a step from 1 to 2 doubles the load)."""
    if level == STRAINED:
        return min(CALM_MAX_INTERVALS, max(CALM_INTERVALS, 2 * calm_needed))
    if level == NORMAL:
        return max(1, calm_needed // 2)
    return calm_needed
