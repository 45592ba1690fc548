"""One ad account's throttle state and its two transitions, pure: acquire (may I send?) and
settle (how did it go?). gate.lua is the same machine over a Redis hash, run atomically.

A call goes when the account is not cooling down, the calls in flight are under the limit
(the pace's need, policy.pace_limit, capped by the load limit latency strain taught), Meta's
budget has room for it (policy.budget_room) and the token bucket gives a turn.
An adapt interval gathers evidence (calls, usage, latency, whether callers were held back) and,
once it is adapt_interval_s old, the next settle turns it into a new rate and load limit.
A throttle error acts at once: the rate is cut and no call is sent before the cool-down ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from audiencesync.throttle import policy
from audiencesync.throttle.policy import Params

OK, THROTTLED, OTHER = "ok", "throttled", "other"  # how a call ended (OTHER: no signal)
THROTTLE_STARTED, THROTTLE_ENDED = "throttle_started", "throttle_ended"
SOFT_STARTED, SOFT_ENDED = "soft_started", "soft_ended"


@dataclass
class State:
    rate_per_s: float
    next_free_s: float  # the token bucket: when its next token is free (policy.take_token)
    limit: int  # the load limit: in-flight calls latency strain allows (ceiling: none learned)
    interval_at_s: float
    cool_until_s: float = 0.0
    strikes: int = 0  # throttle errors since the last success, each after a cool-down
    throttled_since_s: float = 0.0  # 0: not throttled
    soft: int = 0  # 1 while latency says the destination is straining
    calm_intervals: int = 0  # intervals in a row with normal latency
    calm_needed: int = 1  # ... before the limit may grow (policy.next_calm_needed)
    probing: int = 0  # 1 from a rise of the limit until the next latency verdict
    ceiling_per_s: float = 0.0  # the rate the last throttle error drew (0: none seen)
    pace_s: float = 0.0  # the destination's pace: the baseline latency (0: none known)
    usage_last: float = 0.0  # Meta's usage figure on the latest successful call ...
    usage_at_s: float = 0.0  # ... which came at this time
    per_call_pct: float = 0.0  # one call's share of Meta's budget (policy.per_call_pct)
    booked_until_s: float = 0.0  # the next appointment for a caller told to come back
    calls: int = 0  # this interval: successful calls, their usage and latency sums
    usage_sum: float = 0.0
    latency_sum_s: float = 0.0
    latency_calls: int = 0
    rate_blocked: int = 0  # this interval: a caller had to wait for a token
    slots_blocked: int = 0  # this interval: a caller found every in-flight slot taken
    inflight_max: int = 0  # this interval: the most calls in flight a caller saw or made


@dataclass(frozen=True)
class Decision:
    go: bool
    wait_s: float  # go: sleep this long first (a borrowed token); else: ask again after this
    reason: str  # "go", "cooldown", "inflight", "budget" or "rate"


def new_state(now_s: float, p: Params) -> State:
    return State(
        rate_per_s=p.rate_start_per_s,
        next_free_s=now_s,
        limit=p.inflight_ceiling,
        interval_at_s=now_s,
    )


def fit(s: State, p: Params) -> None:
    """The settings may have changed since the state was saved."""
    s.rate_per_s = policy.clamp_rate(s.rate_per_s, p)
    s.limit = min(p.inflight_ceiling, max(p.inflight_floor, s.limit))


def inflight_limit(s: State, oldest_age_s: float, p: Params) -> int:
    need = policy.pace_limit(s.rate_per_s, s.pace_s, oldest_age_s, p)
    return max(p.inflight_floor, min(s.limit, p.inflight_ceiling, need))


def acquire(
    s: State, inflight: int, oldest_age_s: float, now_s: float, max_wait_s: float, p: Params
) -> Decision:
    """inflight: leases held now, the oldest sent oldest_age_s ago (0: none)."""
    fit(s, p)
    s.inflight_max = max(s.inflight_max, inflight)
    if now_s < s.cool_until_s:
        return Decision(False, s.cool_until_s - now_s, "cooldown")
    if inflight >= inflight_limit(s, oldest_age_s, p):
        s.slots_blocked = 1
        return Decision(False, policy.SLOT_POLL_S, "inflight")
    # A figure older than an interval, with no call in flight to refresh it, may be stale
    # (usage decays): then one call goes to fetch a new one.
    fresh = inflight > 0 or now_s - s.usage_at_s < p.adapt_interval_s
    if fresh and not policy.budget_room(s.usage_last, s.per_call_pct, inflight, p):
        return Decision(False, policy.SLOT_POLL_S, "budget")
    wait_s = policy.token_wait_s(s.next_free_s, now_s)
    if wait_s > 0:
        s.rate_blocked = 1
    if wait_s > max_wait_s:
        appointment_s = policy.appointment_s(s.booked_until_s, now_s + wait_s - max_wait_s)
        s.booked_until_s = appointment_s + 1.0 / s.rate_per_s
        return Decision(False, appointment_s - now_s, "rate")
    s.next_free_s = policy.take_token(s.next_free_s, now_s, s.rate_per_s)
    s.inflight_max = max(s.inflight_max, inflight + 1)
    return Decision(True, wait_s, "go")


def settle(
    s: State,
    samples: list[float],
    outcome: str,
    latency_s: float | None,
    usage_pct: float,
    regain_s: float,
    now_s: float,
    p: Params,
) -> tuple[list[str], float]:
    """-> (events, how long the throttling that just ended lasted (0 if none ended)).

    samples: the fleet's latest latencies, newest first (updated in place)."""
    fit(s, p)
    events: list[str] = []
    episode_s = 0.0
    if outcome == THROTTLED:
        if now_s >= s.cool_until_s:  # a new refusal, not a late answer to one being waited out
            s.strikes += 1
            s.ceiling_per_s = s.rate_per_s
            s.rate_per_s = policy.throttled_rate(s.rate_per_s, p)
            if not s.throttled_since_s:
                s.throttled_since_s = now_s
                events.append(THROTTLE_STARTED)
        s.cool_until_s = max(s.cool_until_s, now_s + policy.cooldown_s(regain_s, s.strikes, p))
        _start_interval(s, now_s)  # evidence from before the refusal no longer counts
        return events, episode_s
    if outcome == OK:
        if s.throttled_since_s:
            events.append(THROTTLE_ENDED)
            episode_s = now_s - s.throttled_since_s
            s.throttled_since_s, s.strikes = 0.0, 0
        s.calls += 1
        s.usage_sum += usage_pct
        s.per_call_pct = policy.per_call_pct(s.per_call_pct, usage_pct, s.usage_last)
        s.usage_last, s.usage_at_s = usage_pct, now_s
        s.ceiling_per_s = policy.near_miss_ceiling(s.ceiling_per_s, s.rate_per_s, usage_pct, p)
        if latency_s is not None:
            samples.insert(0, latency_s)
            del samples[p.latency_window :]
            s.pace_s = policy.baseline_s(samples)
            s.latency_sum_s += latency_s
            s.latency_calls += 1
    if now_s - s.interval_at_s >= p.adapt_interval_s:
        events += _close_interval(s, samples, now_s, p)
    return events, episode_s


def _close_interval(s: State, samples: list[float], now_s: float, p: Params) -> list[str]:
    events: list[str] = []
    if s.calls:
        usage_pct, calls_per_s = s.usage_sum / s.calls, s.calls / (now_s - s.interval_at_s)
        s.rate_per_s = policy.next_rate(
            s.rate_per_s, usage_pct, s.usage_last, calls_per_s, bool(s.rate_blocked),
            s.ceiling_per_s, p,
        )  # fmt: skip
        if s.ceiling_per_s:  # a rate probed past the ceiling unrefused raises it
            s.ceiling_per_s = max(s.ceiling_per_s, s.rate_per_s)
    average_s = s.latency_sum_s / s.latency_calls if s.latency_calls else 0.0
    level = policy.latency_level(samples, average_s, s.latency_calls, p)
    if level == policy.STRAINED and 0 < s.inflight_max <= p.inflight_floor:
        # Strained with one call at a time: not our load, the destination's pace changed. The
        # baseline follows it and the load limit learned at the old pace goes.
        samples.clear()
        s.pace_s, s.limit = 0.0, p.inflight_ceiling
        s.calm_intervals, s.calm_needed, s.probing = 0, 1, 0
        level = policy.NORMAL
    soft = bool(s.soft)  # without evidence (None) nothing changes
    if level is not None:
        soft = level == policy.STRAINED or (soft and level == policy.RAISED)
    if soft != bool(s.soft):
        events.append(SOFT_STARTED if soft else SOFT_ENDED)
        s.soft = int(soft)
    if level is not None:
        s.calm_intervals = s.calm_intervals + 1 if level == policy.NORMAL else 0
    if s.probing and level is not None:
        s.calm_needed, s.probing = policy.next_calm_needed(s.calm_needed, level), 0
    if level == policy.STRAINED:  # cut from the calls that were in flight, whatever allowed them
        limit = min(s.limit, max(s.inflight_max, p.inflight_floor))
    else:
        limit = s.limit
    if level == policy.STRAINED or s.limit < p.inflight_ceiling:  # no load limit: none to grow
        limit = policy.next_limit(
            limit, level, s.calm_intervals, s.calm_needed, bool(s.slots_blocked), p
        )
        s.probing = max(s.probing, int(limit > s.limit))
        s.limit = limit
    _start_interval(s, now_s)
    return events


def _start_interval(s: State, now_s: float) -> None:
    s.interval_at_s = now_s
    s.calls = s.latency_calls = s.rate_blocked = s.slots_blocked = s.inflight_max = 0
    s.usage_sum = s.latency_sum_s = 0.0
