"""One ad account's throttle state and its two transitions, pure: acquire (may I send?) and
settle (how did it go?). gate.lua is the same machine over a Redis hash, run atomically.

An adapt interval gathers evidence (calls, usage, latency, whether callers were held back) and,
once it is adapt_interval_s old, the next settle turns it into a new rate and in-flight limit.
Until the account's first strain or ceiling, slow start grows the rate per calm call and the
in-flight limit per round trip.
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
    limit: int  # in-flight calls allowed at once, fleet-wide
    interval_at_s: float
    cool_until_s: float = 0.0
    strikes: int = 0  # throttle errors since the last success, each after a cool-down
    throttled_since_s: float = 0.0  # 0: not throttled
    soft: int = 0  # 1 while latency says the destination is straining
    calm_intervals: int = 0  # intervals in a row with normal latency
    calm_needed: int = 1  # ... before the limit may grow (policy.next_calm_needed)
    probing: int = 0  # 1 from a rise of the limit until the next latency verdict
    ceiling_per_s: float = 0.0  # the rate the last throttle error drew (0: none seen)
    strained: int = 0  # 1 once latency strained; slow start lasts until this or a ceiling
    round_lease_s: float = 0.0  # slow start's round: the lease (its expiry) that filled it ...
    round_limit: int = 0  # ... at this limit; 0 when no round is open
    strain_lease_s: float = 0.0  # a round's call that strained (its lease), until confirmed
    usage_last: float = 0.0  # Meta's usage figure on the latest successful call
    booked_until_s: float = 0.0  # the next appointment for a caller told to come back
    calls: int = 0  # this interval: successful calls, their usage and latency sums
    usage_sum: float = 0.0
    latency_sum_s: float = 0.0
    latency_calls: int = 0
    rate_blocked: int = 0  # this interval: a caller had to wait for a token
    slots_blocked: int = 0  # this interval: a caller found every in-flight slot taken


@dataclass(frozen=True)
class Decision:
    go: bool
    wait_s: float  # go: sleep this long first (a borrowed token); else: ask again after this
    reason: str  # "go", "cooldown", "inflight" or "rate"


def new_state(now_s: float, p: Params) -> State:
    return State(
        rate_per_s=p.rate_start_per_s,
        next_free_s=now_s,
        limit=p.inflight_start,
        interval_at_s=now_s,
    )


def fit(s: State, p: Params) -> None:
    """The settings may have changed since the state was saved."""
    s.rate_per_s = policy.clamp_rate(s.rate_per_s, p)
    s.limit = min(p.inflight_ceiling, max(p.inflight_floor, s.limit))


def acquire(
    s: State, inflight: int, now_s: float, max_wait_s: float, p: Params, *, lease_ttl_s: float
) -> Decision:
    """inflight: leases held now. A lease granted expires at now_s + wait_s + lease_ttl_s."""
    fit(s, p)
    if now_s < s.cool_until_s:
        return Decision(False, s.cool_until_s - now_s, "cooldown")
    if inflight >= s.limit:
        s.slots_blocked = 1
        return Decision(False, policy.SLOT_POLL_S, "inflight")
    wait_s = policy.token_wait_s(s.next_free_s, now_s)
    if wait_s > 0:
        s.rate_blocked = 1
    if wait_s > max_wait_s:
        appointment_s = policy.appointment_s(s.booked_until_s, now_s + wait_s - max_wait_s)
        s.booked_until_s = appointment_s + 1.0 / s.rate_per_s
        return Decision(False, appointment_s - now_s, "rate")
    s.next_free_s = policy.take_token(s.next_free_s, now_s, s.rate_per_s)
    if inflight + 1 >= s.limit and s.round_lease_s <= now_s:  # none open, or its lease died
        s.round_lease_s, s.round_limit = now_s + wait_s + lease_ttl_s, s.limit
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
    lease_s: float = 0.0,
) -> tuple[list[str], float]:
    """-> (events, how long the throttling that just ended lasted (0 if none ended)).

    samples: the fleet's latest latencies, newest first (updated in place); lease_s: the
    settled lease's expiry (0: unknown), which tells slow start's round call."""
    fit(s, p)
    events: list[str] = []
    episode_s = 0.0
    round_call = bool(lease_s) and lease_s == s.round_lease_s
    if round_call:
        s.round_lease_s = 0.0
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
        s.usage_last = usage_pct
        s.ceiling_per_s = policy.near_miss_ceiling(s.ceiling_per_s, s.rate_per_s, usage_pct, p)
        if latency_s is not None:
            samples.insert(0, latency_s)
            del samples[p.latency_window :]
            s.latency_sum_s += latency_s
            s.latency_calls += 1
            events += _slow_start(s, samples, latency_s, lease_s, round_call, p)
    if now_s - s.interval_at_s >= p.adapt_interval_s:
        events += _close_interval(s, samples, now_s, p)
    return events, episode_s


def _slow_start(
    s: State, samples: list[float], latency_s: float, lease_s: float, round_call: bool, p: Params
) -> list[str]:
    """Before the account's first strain or ceiling, each calm call grows the rate, and each
    calm round (policy.slow_start_limit) doubles the in-flight limit, so a new account ramps
    per round trip, not per interval. A strained round goes back to the limit it came from at
    once; a call sent after it, straining too, confirms the strain and ends slow start (soft
    throttling, probes from now on); calm, it says the strain was noise."""
    if s.strained or s.ceiling_per_s:
        return []
    level = policy.call_level(samples, latency_s, p)
    if level == policy.NORMAL:
        s.rate_per_s = policy.slow_start_rate(
            s.rate_per_s, latency_s, bool(s.rate_blocked), s.usage_sum, p
        )
    if level is None or level == policy.RAISED:
        return []
    if s.strain_lease_s and lease_s > s.strain_lease_s:
        s.strain_lease_s = 0.0
        if level == policy.STRAINED:
            s.strained, s.probing = 1, 0
            s.calm_needed = policy.next_calm_needed(s.calm_needed, level)
            events = [] if s.soft else [SOFT_STARTED]
            s.soft = 1
            return events
    if not round_call:
        return []
    if level == policy.NORMAL:
        limit = policy.slow_start_limit(s.limit, s.round_limit, p)
        s.probing = max(s.probing, int(limit > s.limit))  # the interval's verdict judges it
        s.limit = limit
    else:
        s.limit = policy.next_limit(s.round_limit, level, 0, 0, False, p)
        s.strain_lease_s = lease_s
    return []


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
    soft = bool(s.soft)  # without evidence (None) nothing changes
    if level is not None:
        soft = level == policy.STRAINED or (soft and level == policy.RAISED)
    if soft != bool(s.soft):
        events.append(SOFT_STARTED if soft else SOFT_ENDED)
        s.soft = int(soft)
    if level is not None:
        s.calm_intervals = s.calm_intervals + 1 if level == policy.NORMAL else 0
    slow_start = not (s.strained or s.ceiling_per_s)  # the limit grew per call: a probe
    s.strained = max(s.strained, int(level == policy.STRAINED))
    if (s.probing or slow_start) and level is not None:
        s.calm_needed, s.probing = policy.next_calm_needed(s.calm_needed, level), 0
    blocked = bool(s.slots_blocked) and not slow_start
    limit = policy.next_limit(s.limit, level, s.calm_intervals, s.calm_needed, blocked, p)
    s.probing = max(s.probing, int(limit > s.limit))
    s.limit = limit
    _start_interval(s, now_s)
    return events


def _start_interval(s: State, now_s: float) -> None:
    s.interval_at_s = now_s
    s.calls = s.latency_calls = s.rate_blocked = s.slots_blocked = 0
    s.usage_sum = s.latency_sum_s = 0.0
