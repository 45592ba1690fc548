"""The throttle's arithmetic, pure: token bucket, AIMD, usage headers and the budget they
show, cool-downs, latency (the destination's pace and strain under our load).

policy.lua does exactly the same sums inside Redis (spliced into gate.lua, atomically for the
whole fleet; its functions carry the same names); tests/test_throttle_lua.py checks that the two
agree step by step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CUT_MILD = 0.9  # rate factor when usage reaches usage_cut_pct ...
CUT_STRONG = 0.5  # ... falling linearly to this at 100 %
EXIT_SHARE = 2 / 3  # soft throttling ends below this share of the threshold (no flapping)
BASELINE_PERCENTILE = 0.1  # the baseline latency: a low percentile of the window
SLOT_POLL_S = 0.05  # no in-flight slot free: ask again this soon (a call ends any moment)
BOOK_SPAN_S = 1.0  # appointments for callers told to come back span at most this
REGAIN_UNIT_S = 60.0  # Meta's estimated_time_to_regain_access counts whole minutes
SLOW_START_SHARE = 0.75  # below this share of the usage target the rate may double
CEILING_SHARE = 0.95  # a learned ceiling (the rate refused last): settle this far under it ...
PROBE_SHARE = 0.01  # ... and above that probe by this share of the additive step
CALM_INTERVALS = 16  # after a probe of the in-flight limit caused strain: calm this long ...
CALM_MAX_INTERVALS = 120  # ... doubling per strained probe up to this
NORMAL, RAISED, STRAINED = 0, 1, 2  # latency levels; RAISED lies between exit and entry


@dataclass(frozen=True)
class Params:
    """The tunables come from the settings (throttle_<name>; settings.py says what each means)."""

    rate_start_per_s: float
    rate_floor_per_s: float
    rate_ceiling_per_s: float
    rate_increase_per_s: float  # added once per adapt interval while the bucket holds callers
    decrease_factor: float  # AIMD's multiplicative decrease: rate (80003), in-flight (latency)
    adapt_interval_s: float
    usage_target_pct: float  # Meta's usage figure the rate is steered to
    usage_cut_pct: float  # from here the rate is cut hard (usage_factor)
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
# A bucket of one token (no bursts: a burst is how a per-second window gets overrun), kept as
# the time its next token is free (GCRA's form): a caller may take a token up to max_wait_s
# ahead, and a later change of rate never moves the turns already handed out.
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


# --- AIMD and the usage headers ---------------------------------------------------------------
def usage_factor(usage_pct: float, p: Params) -> float:
    """1 below usage_cut_pct; then CUT_MILD falling linearly to CUT_STRONG at 100 %."""
    if usage_pct < p.usage_cut_pct:
        return 1.0
    share = (usage_pct - p.usage_cut_pct) / (100.0 - p.usage_cut_pct)
    return max(CUT_STRONG, CUT_MILD - (CUT_MILD - CUT_STRONG) * share)


def clamp_rate(rate_per_s: float, p: Params) -> float:
    return min(p.rate_ceiling_per_s, max(p.rate_floor_per_s, rate_per_s))


def next_rate(
    rate_per_s: float,
    usage_pct: float,
    last_pct: float,
    calls_per_s: float,
    blocked: bool,
    ceiling_per_s: float,
    p: Params,
) -> float:
    """One adapt interval's verdict from Meta's usage figures (the interval's average and the
    newest), and the learned ceiling (the rate the last throttle error drew; 0: none yet).

    At usage_cut_pct or above, cut hard; above usage_target_pct, ease down halfway to the rate
    that would give the target. Below it, grow only while the bucket held callers back, towards
    the target rate: usage lags our calls (Meta counts over a window), so it is projected to the
    current rate from the newest figure or the average, whichever is higher. Far below the
    target, slow start doubles the rate until the first throttle error, then the additive step
    does; both stop at the target rate, and slow start goes at most halfway there (usage comes
    in whole calls: early on, one call more or less in Meta's window moves the projection by a
    fifth). Near the target, the additive step goes at most halfway. Under
    a learned ceiling settle at CEILING_SHARE of it; beyond that, probe by PROBE_SHARE of the
    step."""
    if usage_pct >= p.usage_cut_pct:
        return clamp_rate(rate_per_s * usage_factor(usage_pct, p), p)
    if usage_pct > p.usage_target_pct:
        return clamp_rate((rate_per_s + rate_per_s * p.usage_target_pct / usage_pct) / 2, p)
    if not blocked:
        return rate_per_s
    seen_pct = max(usage_pct, last_pct)
    projected_pct = seen_pct * rate_per_s / calls_per_s if calls_per_s > 0 else seen_pct
    room_per_s = (
        rate_per_s * (p.usage_target_pct / projected_pct - 1) if projected_pct else math.inf
    )
    if projected_pct >= SLOW_START_SHARE * p.usage_target_pct:
        step_per_s = min(p.rate_increase_per_s, room_per_s / 2)  # near the target: careful
    elif ceiling_per_s:
        step_per_s = min(p.rate_increase_per_s, room_per_s)  # after a throttle error
    else:
        step_per_s = min(rate_per_s, room_per_s / 2)  # slow start
    grown_per_s = rate_per_s + max(0.0, step_per_s)
    if ceiling_per_s:
        probe_per_s = rate_per_s + p.rate_increase_per_s * PROBE_SHARE
        grown_per_s = min(grown_per_s, max(CEILING_SHARE * ceiling_per_s, probe_per_s))
    return clamp_rate(grown_per_s, p)


def near_miss_ceiling(
    ceiling_per_s: float, rate_per_s: float, usage_pct: float, p: Params
) -> float:
    """A call that finds usage at usage_cut_pct is a near miss: the rate it went at is a
    ceiling too, unless it is well under the one known (usage stays high after a refusal)."""
    if usage_pct < p.usage_cut_pct or rate_per_s <= CEILING_SHARE * ceiling_per_s:
        return ceiling_per_s
    return rate_per_s if not ceiling_per_s else min(ceiling_per_s, rate_per_s)


def throttled_rate(rate_per_s: float, p: Params) -> float:
    return clamp_rate(rate_per_s * p.decrease_factor, p)


def cooldown_s(regain_s: float, strikes: int, p: Params) -> float:
    """A backoff doubling with each strike, kept within Meta's estimate when it gives one.

    Meta counts estimated_time_to_regain_access in whole minutes, rounded up: an estimate of N
    minutes means the wall lasts more than N-1 of them, and at most N. So the account waits the
    N-1 minutes for certain, and within the last one probes with the backoff (a refused probe
    brings a fresh estimate) instead of idling a whole minute for a wall of a few seconds."""
    wait_s = p.cooldown_base_s * 2.0 ** (strikes - 1)
    if regain_s > 0:
        wait_s = min(max(wait_s, regain_s - REGAIN_UNIT_S), regain_s)
    return min(wait_s, p.cooldown_max_s)


# --- latency: soft throttling and the in-flight limit ----------------------------------------
def baseline_s(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[math.floor((len(ordered) - 1) * BASELINE_PERCENTILE)]


def latency_level(
    samples: list[float], interval_avg_s: float, interval_calls: int, p: Params
) -> int | None:
    """How hard the destination strains under our load; None when there is too little evidence.

    STRAINED (the interval's average at latency_factor x baseline or more) starts soft
    throttling and cuts the in-flight limit; soft throttling ends below EXIT_SHARE of that."""
    if p.latency_factor <= 0:
        return NORMAL
    if interval_calls < p.interval_min_samples or len(samples) < p.latency_min_samples:
        return None
    threshold_s = p.latency_factor * baseline_s(samples)
    if interval_avg_s >= threshold_s:
        return STRAINED
    return RAISED if interval_avg_s >= EXIT_SHARE * threshold_s else NORMAL


def next_limit(
    limit: int, level: int | None, calm_intervals: int, calm_needed: int, blocked: bool, p: Params
) -> int:
    """Cut by decrease_factor when strained; grow (a probe) when callers found every slot
    taken and latency has been normal for calm_needed intervals in a row: double while no
    probe has strained (calm_needed 1: slow start), else by one."""
    if level == STRAINED:
        return max(p.inflight_floor, math.floor(limit * p.decrease_factor))
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


# --- the in-flight limit: the destination's pace and the budget's room ----------------------
def pace_limit(rate_per_s: float, pace_s: float, oldest_age_s: float, p: Params) -> int:
    """Little's law: the calls in flight the rate needs at the destination's pace (its baseline
    latency). Before any answer the pace is unknown, but at least the age of the oldest call
    in flight: the limit grows with it from inflight_start, at the rate."""
    if pace_s > 0:
        return max(p.inflight_floor, math.ceil(rate_per_s * pace_s))
    return max(p.inflight_start, math.ceil(rate_per_s * oldest_age_s))


def budget_room(usage_pct: float, per_call_pct: float, inflight: int, p: Params) -> bool:
    """Room in Meta's budget for one more call: the latest usage figure, plus one call's share
    for each call in flight (not yet counted in that figure) and this one, stays within the
    usage target."""
    return usage_pct + per_call_pct * (inflight + 1) <= p.usage_target_pct


def per_call_pct(known_pct: float, usage_pct: float, last_pct: float) -> float:
    """One call's share of the budget: the largest rise of Meta's usage figure between two
    answers in a row (an answer's figure counts it and the calls before it; whole percent, so
    a deep budget shows a rise of 1 at most)."""
    return max(known_pct, usage_pct - last_pct)
