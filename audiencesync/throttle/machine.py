"""One ad account's throttle state and its two transitions, pure: acquire (may I send?) and
settle (how did it go?). gate.lua is the same machine over a Redis hash, run atomically.

A call goes when the account is not cooling down, the calls in flight are under the limit
(the pace's need, policy.pace_limit, capped by the load limit latency strain taught), Meta's
budget has room for it (policy.budget_room) and the token bucket gives a turn.
A refusal, or an answer that leaves the budget at the wall, cools the whole account down; then
one call probes.
An adapt interval gathers latency evidence; once it is adapt_interval_s old, the next settle
turns it into a verdict on the load limit (or on the pace, when one call at a time strains).
The first answer after a pause checks the pace too: the destination may have changed meanwhile.
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
    next_free_s: float  # the token bucket: when its next token is free (policy.take_token)
    limit: int  # the load limit: in-flight calls latency strain allows (ceiling: none learned)
    interval_at_s: float
    cool_until_s: float = 0.0
    strikes: int = 0  # refusals since the last success, each after a cool-down
    walls: int = 0  # answers at the wall in a row (policy.at_wall), each after a cool-down
    wall_since_s: float = 0.0  # the answer that found the wall, this time (0: not at it)
    wall_s: float = 0.0  # from then to room again, last time (0: none seen)
    wall_probe_s: float = 0.0  # the last answer (or refusal) that found the wall still there
    throttled_since_s: float = 0.0  # 0: not throttled
    soft: int = 0  # 1 while latency says the destination is straining
    calm_intervals: int = 0  # intervals in a row with normal latency
    calm_needed: int = 1  # ... before the limit may grow (policy.next_calm_needed)
    probing: int = 0  # 1 from a rise of the limit until the next latency verdict
    pace_s: float = 0.0  # the destination's pace: the baseline latency (0: none known)
    answer_at_s: float = 0.0  # the last answer (any outcome)
    resumed_at_s: float = 0.0  # the first call after a pause went (0: none, or answered since)
    usage_last: float = 0.0  # Meta's usage figure: the highest this interval ...
    usage_at_s: float = 0.0  # ... set at this time
    per_call_pct: float = 0.0  # one call's share of Meta's budget (0: not known yet)
    booked_until_s: float = 0.0  # the next appointment for a caller told to come back
    latency_sum_s: float = 0.0  # this interval: latencies of successful calls, and their count
    latency_calls: int = 0
    slots_blocked: int = 0  # this interval: a caller found every in-flight slot taken
    inflight_max: int = 0  # this interval: the most calls in flight a caller saw or made
    load_judged: int = 0  # 1 once the first pair's answer said what our load does to the pace
    paired_at_s: float = 0.0  # till then: when a call first went alongside another (0: none)


@dataclass(frozen=True)
class Decision:
    go: bool
    wait_s: float  # go: sleep this long first (a borrowed token); else: ask again after this
    reason: str  # "go", "cooldown", "inflight", "budget" or "rate"


def new_state(now_s: float, p: Params) -> State:
    return State(next_free_s=now_s, limit=p.inflight_ceiling, interval_at_s=now_s)


def inflight_limit(s: State, oldest_age_s: float, p: Params) -> int:
    need = policy.pace_limit(p.rate_per_s, s.pace_s, oldest_age_s, p)
    if s.resumed_at_s:  # after a pause the pace is in doubt until an answer: a new account's start
        need = max(need, policy.pace_limit(p.rate_per_s, 0.0, oldest_age_s, p))
    if s.paired_at_s and not s.load_judged and s.pace_s > 0 and p.latency_factor > 0:
        need = p.inflight_floor  # the pace is known, not yet what our load does to it (rule 6)
    return max(p.inflight_floor, min(s.limit, p.inflight_ceiling, need))


def acquire(
    s: State,
    inflight: int,
    oldest_age_s: float,
    now_s: float,
    max_wait_s: float,
    p: Params,
    past_load_limit: bool = False,
) -> Decision:
    """inflight: leases held now, the oldest sent oldest_age_s ago (0: none); past_load_limit:
    a session's close, one entry whose delay could cost Meta's window, is not held back by the
    in-flight limit (Meta's budget, a cool-down and the rate still hold it)."""
    s.inflight_max = max(s.inflight_max, inflight)
    if now_s < s.cool_until_s:
        return Decision(False, s.cool_until_s - now_s, "cooldown")
    if inflight >= inflight_limit(s, oldest_age_s, p) and not past_load_limit:
        s.slots_blocked = 1
        return Decision(False, policy.SLOT_POLL_S, "inflight")
    # A figure with no call in flight to refresh it goes stale (usage decays): then one call
    # goes to fetch a new one (at the wall, only once the cool-down it drew has ended).
    fresh = inflight > 0 or (not s.walls and now_s - s.usage_at_s < policy.stale_s(s.pace_s, p))
    if fresh and not policy.budget_room(s.usage_last, s.per_call_pct, inflight, p):
        return Decision(False, policy.SLOT_POLL_S, "budget")
    wait_s = policy.token_wait_s(s.next_free_s, now_s)
    if wait_s > max_wait_s:
        appointment_s = policy.appointment_s(s.booked_until_s, now_s + wait_s - max_wait_s)
        s.booked_until_s = appointment_s + 1.0 / p.rate_per_s
        return Decision(False, appointment_s - now_s, "rate")
    s.next_free_s = policy.take_token(s.next_free_s, now_s, p.rate_per_s)
    s.inflight_max = max(s.inflight_max, inflight + 1)
    if inflight == 0 and now_s - s.answer_at_s >= policy.stale_s(s.pace_s, p):
        s.resumed_at_s = now_s + wait_s  # after a pause (the next run): an answer checks the pace
    if inflight > 0 and not s.load_judged and not s.paired_at_s:
        s.paired_at_s = now_s + wait_s
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
    admitted_s: float = 0.0,
) -> tuple[list[str], float]:
    """-> (events, how long the throttling that just ended lasted (0 if none ended)).

    samples: the fleet's latest latencies, newest first (updated in place); admitted_s: when
    acquire let this call go (0: not known, its lease lapsed)."""
    events: list[str] = []
    episode_s = 0.0
    s.answer_at_s = now_s
    if outcome == THROTTLED:
        if s.walls:
            s.wall_probe_s = now_s
        # A new refusal, not a late answer to one being waited out (a wall's wait is no refusal's)
        if now_s >= s.cool_until_s or not s.throttled_since_s:
            s.strikes += 1
            if not s.throttled_since_s:
                s.throttled_since_s = now_s
                events.append(THROTTLE_STARTED)
        s.cool_until_s = max(s.cool_until_s, now_s + policy.cooldown_s(regain_s, s.strikes, p))
        return events, episode_s
    if outcome == OK:
        if s.throttled_since_s and now_s >= s.cool_until_s:  # not a call sent before it
            events.append(THROTTLE_ENDED)
            episode_s = now_s - s.throttled_since_s
            s.throttled_since_s, s.strikes = 0.0, 0
        _note_usage(s, usage_pct, now_s, p)
        if latency_s is not None:
            slow = latency_s >= p.latency_factor * s.pace_s > 0  # at the pace known so far
            if s.resumed_at_s and slow:
                _new_pace(s, samples, p)  # during the pause: this answer is its first sample
                # Every call in flight went after the pause's first, alongside this one (the
                # first to answer, not always the first sent): the next answer judges load.
                s.paired_at_s = s.resumed_at_s
            elif s.pace_s > 0 and not s.load_judged and policy.paired(admitted_s, s.paired_at_s, p):
                s.load_judged = 1  # the pair's answer (rule 6)
                if slow:
                    events += _strained_start(s, p)
            s.resumed_at_s = 0.0
            samples.insert(0, latency_s)
            del samples[p.latency_window :]
            s.pace_s = policy.baseline_s(samples)
            s.latency_sum_s += latency_s
            s.latency_calls += 1
        if not policy.at_wall(usage_pct, s.per_call_pct, p):
            if s.walls:  # room again: the wall ended between the last probe that found it
                # and now (learned only when a probe found it, not the next run an hour later;
                # nor from a state saved before wall_since_s was kept)
                on_time = policy.found_on_time(s.wall_probe_s, s.cool_until_s, now_s, s.pace_s, p)
                if s.wall_since_s and on_time:
                    s.wall_s = (s.wall_probe_s + now_s) / 2 - s.wall_since_s
                s.walls, s.wall_since_s, s.wall_probe_s = 0, 0.0, 0.0
        elif now_s >= s.cool_until_s:  # admitted, but the next would not be: wait, then probe
            # The next probe is due a doubled gap after this one was due, not after its answer:
            # round trips do not stretch the schedule. A probe sent late restarts it from now.
            from_s = now_s
            if s.walls and policy.found_on_time(s.wall_probe_s, s.cool_until_s, now_s, s.pace_s, p):
                from_s = s.cool_until_s
            s.walls, s.wall_probe_s = s.walls + 1, now_s
            base_s = p.adapt_interval_s
            if s.walls == 1:  # as long as the last wall lasted
                s.wall_since_s, base_s = now_s, max(base_s, s.wall_s)
            s.cool_until_s = from_s + policy.cooldown_s(regain_s, s.walls, p, base_s)
    if now_s - s.interval_at_s >= p.adapt_interval_s:
        events += _close_interval(s, samples, now_s, p)
    return events, episode_s


def _new_pace(s: State, samples: list[float], p: Params) -> None:
    """The destination's pace changed: the baseline is measured afresh, and what our load did
    at the old pace (the load limit, the first pair's verdict) goes: a pair judges it again."""
    samples.clear()
    s.pace_s, s.limit = 0.0, p.inflight_ceiling
    s.calm_intervals, s.calm_needed, s.probing = 0, 1, 0
    s.load_judged, s.paired_at_s = 0, 0.0


def _strained_start(s: State, p: Params) -> list[str]:
    """The first pair strained: one call at a time, as after a probe that strained."""
    s.limit, s.calm_intervals, s.probing = p.inflight_floor, 0, 0
    s.calm_needed = policy.next_calm_needed(s.calm_needed, policy.STRAINED)
    if s.soft:
        return []
    s.soft = 1
    return [SOFT_STARTED]


def _note_usage(s: State, usage_pct: float, now_s: float, p: Params) -> None:
    """Answers come back out of order: within an interval the highest figure is the newest."""
    if usage_pct >= s.usage_last or now_s - s.usage_at_s >= p.adapt_interval_s:
        s.per_call_pct = policy.per_call_pct(s.per_call_pct, usage_pct - s.usage_last)
        s.usage_last, s.usage_at_s = usage_pct, now_s


def _close_interval(s: State, samples: list[float], now_s: float, p: Params) -> list[str]:
    events: list[str] = []
    average_s = s.latency_sum_s / s.latency_calls if s.latency_calls else 0.0
    level = policy.latency_level(samples, average_s, s.latency_calls, p)
    if level == policy.STRAINED and 0 < s.inflight_max <= p.inflight_floor:
        _new_pace(s, samples, p)  # strained with one call at a time: not our load
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
    limit = s.limit
    if level == policy.STRAINED:  # cut from the calls that were in flight, whatever allowed them
        limit = min(s.limit, max(s.inflight_max, p.inflight_floor))
    if level == policy.STRAINED or s.limit < p.inflight_ceiling:  # no load limit: none to grow
        paced_share = s.pace_s / average_s if average_s > 0 else 1.0
        limit = policy.next_limit(
            limit, level, s.calm_intervals, s.calm_needed, bool(s.slots_blocked), paced_share, p
        )
        s.probing = max(s.probing, int(limit > s.limit))
        s.limit = limit
    s.interval_at_s = now_s
    s.latency_calls = s.slots_blocked = s.inflight_max = 0
    s.latency_sum_s = 0.0
    return events
