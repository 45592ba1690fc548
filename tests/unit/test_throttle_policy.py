"""The throttle's pure arithmetic (policy.py) and its state machine (machine.py)."""

from __future__ import annotations

import dataclasses

import pytest

from audiencesync.settings import Settings
from audiencesync.throttle import machine, policy
from audiencesync.throttle.gate import params_from

TTL_S = 70.0  # a lease's time to live
P = params_from(Settings(throttle_usage_target_pct=88))
# start 5/s, floor 0.5, ceiling 100, +2/s, x0.5, target 88 (the sums below), cut 95


def test_bucket_hands_out_turns_one_token_apart_and_never_moves_them():
    s = machine.new_state(100.0, P)
    waits = [machine.acquire(s, 0, 100.0, 0.5, P, lease_ttl_s=TTL_S) for _ in range(3)]
    assert [(d.go, round(d.wait_s, 9)) for d in waits] == [(True, 0.0), (True, 0.2), (True, 0.4)]
    s.rate_per_s = 10.0  # a rise of rate must not pull later callers before the turns given out
    assert machine.acquire(s, 0, 100.0, 1.0, P, lease_ttl_s=TTL_S).wait_s == pytest.approx(0.6)
    assert policy.token_wait_s(99.0, 100.0) == 0.0  # an idle bucket holds one token, no more
    assert policy.take_token(99.0, 100.0, 4.0) == 100.25


def test_callers_beyond_the_wait_get_appointments_one_turn_apart():
    s = machine.new_state(0.0, P)
    for _ in range(3):
        assert machine.acquire(s, 0, 0.0, 0.5, P, lease_ttl_s=TTL_S).go  # turns at 0, 0.2, 0.4
    later = [machine.acquire(s, 0, 0.0, 0.5, P, lease_ttl_s=TTL_S) for _ in range(3)]
    assert [d.reason for d in later] == ["rate"] * 3
    # The next turn is at 0.6, within max_wait from 0.1: come back then, and 0.2 s apart.
    assert [round(d.wait_s, 9) for d in later] == [0.1, 0.3, 0.5]


def test_usage_factor_cuts_mildly_at_the_cut_and_strongly_at_the_wall():
    assert policy.usage_factor(94.9, P) == 1.0
    assert policy.usage_factor(95, P) == pytest.approx(0.9)
    assert policy.usage_factor(97.5, P) == pytest.approx(0.7)
    assert policy.usage_factor(100, P) == policy.usage_factor(130, P) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("rate", "usage", "last", "calls_per_s", "blocked", "ceiling", "expected"),
    [
        (5.0, 0.0, 0.0, 5.0, True, 0.0, 10.0),  # no usage figure, no throttle yet: slow start
        (5.0, 0.0, 0.0, 5.0, True, 8.0, 7.0),  # after a throttle error: the additive step
        (5.0, 0.0, 0.0, 5.0, False, 0.0, 5.0),  # callers never waited for the bucket
        (5.0, 30.0, 50.0, 5.0, True, 0.0, 6.9),  # usage lags: the newest; halfway to 8.8/s
        (5.0, 40.0, 40.0, 5.0, True, 9.0, 7.0),  # far below, after a throttle: the step
        (4.0, 60.0, 60.0, 4.0, True, 9.0, 4.0 * 88 / 60),  # ... or to the target rate
        (8.0, 80.0, 70.0, 8.0, True, 0.0, 8.4),  # near the target: halfway to the rate 8.8
        (8.0, 80.0, 80.0, 8.0, True, 9.0, 8.4),  # under the learned ceiling's 95 % (8.55) ...
        (8.0, 70.0, 70.0, 8.0, True, 8.2, 8.02),  # ... beyond it: a probe of 1 % of the step
        (10.0, 89.0, 89.0, 10.0, True, 0.0, 10.0 * (1 + 88 / 89) / 2),  # above target: ease
        (10.0, 40.0, 40.0, 5.0, True, 0.0, 10.5),  # 40 % at 5/s is 80 % at 10/s: halfway
        (10.0, 44.0, 44.0, 5.0, True, 0.0, 10.0),  # ... 88 %: none (but no cut on a projection)
        (9.0, 97.5, 97.5, 9.0, False, 0.0, 9.0 * 0.7),  # at the wall: cut hard, waiting or not
        (0.6, 99.0, 99.0, 0.6, True, 0.0, 0.5),  # never below the floor
        (99.5, 1.0, 1.0, 99.5, True, 0.0, 100.0),  # nor above the ceiling
    ],
)
def test_next_rate(rate, usage, last, calls_per_s, blocked, ceiling, expected):
    got = policy.next_rate(rate, usage, last, calls_per_s, blocked, ceiling, P)
    assert got == pytest.approx(expected)


def test_a_call_that_finds_usage_at_the_cut_is_a_near_miss_that_teaches_a_ceiling():
    assert policy.near_miss_ceiling(0.0, 8.5, 100.0, P) == 8.5  # none known: this rate
    assert policy.near_miss_ceiling(0.0, 8.5, 94.0, P) == 0.0  # below the cut: no news
    assert policy.near_miss_ceiling(9.0, 8.7, 100.0, P) == 8.7  # near a known one: lower it
    assert policy.near_miss_ceiling(9.0, 4.5, 100.0, P) == 9.0  # usage still high after a cut
    s = machine.new_state(0.0, P)
    machine.settle(s, [], machine.OK, 0.1, 100.0, 0.0, 0.1, P)
    assert s.ceiling_per_s == P.rate_start_per_s and s.usage_last == 100.0


def test_throttle_halves_the_rate_and_cools_down_within_metas_estimate():
    assert policy.throttled_rate(8.0, P) == 4.0 and policy.throttled_rate(0.6, P) == 0.5
    # No estimate: the backoff doubles per strike, up to cooldown_max_s.
    assert [policy.cooldown_s(0.0, n, P) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert policy.cooldown_s(0.0, 30, P) == 900.0
    # "1 minute" (whole minutes, rounded up) is anywhere within the minute: back off within it.
    assert [policy.cooldown_s(60.0, n, P) for n in (1, 2, 6, 7)] == [2.0, 4.0, 60.0, 60.0]
    # "5 minutes": more than 4 for certain, then the backoff within the last one.
    assert policy.cooldown_s(300.0, 1, P) == 240.0
    assert policy.cooldown_s(3600.0, 1, P) == 900.0  # never beyond cooldown_max_s


def test_latency_level_needs_evidence_and_has_a_band_between_entry_and_exit():
    samples = [0.1 + i / 1000 for i in range(100)]  # baseline (10th percentile) 0.109
    assert policy.baseline_s(samples) == pytest.approx(0.109)
    assert policy.latency_level(samples[:2], 1.0, 5, P) is None  # window too short
    assert policy.latency_level(samples, 1.0, 2, P) is None  # interval too thin
    assert policy.latency_level(samples, 0.33, 5, P) == policy.STRAINED  # >= 3 x 0.109
    assert policy.latency_level(samples, 0.30, 5, P) == policy.RAISED  # >= 2 x
    assert policy.latency_level(samples, 0.20, 5, P) == policy.NORMAL
    off = dataclasses.replace(P, latency_factor=0)
    assert policy.latency_level(samples, 9.9, 5, off) == policy.NORMAL


def test_in_flight_limit_is_halved_when_strained_and_grows_after_calm():
    strained, raised, normal = policy.STRAINED, policy.RAISED, policy.NORMAL
    assert policy.next_limit(8, strained, 0, 1, True, P) == 4
    assert policy.next_limit(1, strained, 0, 1, False, P) == 1  # the floor
    assert policy.next_limit(8, normal, 3, 3, True, P) == 9
    assert policy.next_limit(8, normal, 1, 1, True, P) == 16  # no probe strained yet: double
    assert policy.next_limit(8, normal, 2, 3, True, P) == 8  # not calm for long enough
    assert policy.next_limit(8, None, 9, 1, True, P) == 8  # no evidence this interval
    assert policy.next_limit(8, raised, 9, 1, True, P) == 8
    assert policy.next_limit(8, normal, 3, 3, False, P) == 8  # nobody waited for a slot
    assert policy.next_limit(64, normal, 3, 3, True, P) == 64  # the ceiling
    assert policy.next_limit(40, normal, 1, 1, True, P) == 64


def test_a_probe_that_strains_backs_probing_off_and_one_that_holds_eases_it():
    assert policy.next_calm_needed(1, policy.STRAINED) == policy.CALM_INTERVALS
    assert policy.next_calm_needed(policy.CALM_INTERVALS, policy.STRAINED) == 2 * (
        policy.CALM_INTERVALS
    )
    assert policy.next_calm_needed(100, policy.STRAINED) == policy.CALM_MAX_INTERVALS
    assert policy.next_calm_needed(16, policy.NORMAL) == 8
    assert policy.next_calm_needed(1, policy.NORMAL) == 1
    assert policy.next_calm_needed(16, policy.RAISED) == 16


def test_a_throttle_episode_cools_the_account_and_ends_with_the_first_success():
    s, samples = machine.new_state(0.0, P), []
    events, _ = machine.settle(s, samples, machine.THROTTLED, None, 100, 300.0, 10.0, P)
    assert events == [machine.THROTTLE_STARTED] and s.rate_per_s == 2.5
    decision = machine.acquire(s, 0, 200.0, 0.5, P, lease_ttl_s=TTL_S)
    assert (decision.go, decision.reason, decision.wait_s) == (False, "cooldown", 50.0)
    # A late refusal of a call sent before the cool-down started is the same episode.
    assert machine.settle(s, samples, machine.THROTTLED, None, 100, 300.0, 11.0, P)[0] == []
    assert (s.strikes, s.rate_per_s, s.cool_until_s) == (1, 2.5, 251.0)
    assert machine.acquire(s, 0, 251.0, 0.5, P, lease_ttl_s=TTL_S).go
    events, episode_s = machine.settle(s, samples, machine.OK, 0.1, 10, 0.0, 251.5, P)
    assert events == [machine.THROTTLE_ENDED] and episode_s == 241.5 and s.strikes == 0


def test_without_an_estimate_each_refused_probe_doubles_the_cool_down():
    s, samples = machine.new_state(0.0, P), []
    for strike, cool_s in [(1, 2.0), (2, 4.0), (3, 8.0)]:
        now = s.cool_until_s
        assert machine.acquire(s, 0, now, 0.5, P, lease_ttl_s=TTL_S).go  # the probe after each
        machine.settle(s, samples, machine.THROTTLED, None, 0, 0.0, now, P)
        assert (s.strikes, s.cool_until_s - now) == (strike, cool_s)
    assert s.rate_per_s == P.rate_floor_per_s * 1.25  # 5 -> 2.5 -> 1.25 -> 0.625


def test_soft_throttling_cuts_the_in_flight_limit_and_ends_when_latency_recovers():
    p = dataclasses.replace(P, latency_min_samples=5, inflight_start=12)
    s, samples, now = machine.new_state(0.0, p), [], 0.0

    def interval(latency_s: float) -> list[str]:
        """One adapt interval in which callers found every slot taken (no call of slow start's
        rounds: the interval's verdict alone)."""
        nonlocal now
        assert machine.acquire(s, s.limit, now, 0.5, p, lease_ttl_s=TTL_S).reason == "inflight"
        events: list[str] = []
        for _ in range(4):
            now += 0.3
            events += machine.settle(s, samples, machine.OK, latency_s, 0, 0.0, now, p)[0]
        return events

    assert interval(0.1) == [] and s.limit == 12  # too few latencies for a verdict yet
    assert interval(0.1) == [] and s.limit == 12  # slow start grows per round, not interval
    assert interval(0.1) == [] and s.limit == 12
    assert interval(0.5) == [machine.SOFT_STARTED] and s.limit == 6  # this one strained ...
    assert s.calm_needed == policy.CALM_INTERVALS and s.strained  # ... so probing backs off
    assert interval(0.25) == [] and s.soft and s.limit == 6  # between 2x and 3x: hold
    assert interval(0.5) == [] and s.limit == 3  # strained again: cut again
    assert interval(0.5) == [] and s.limit == 1
    assert interval(0.1) == [machine.SOFT_ENDED] and s.limit == 1
    for _ in range(policy.CALM_INTERVALS - 2):
        assert interval(0.1) == [] and s.limit == 1  # calm for a while first
    assert interval(0.1) == [] and s.limit == 2  # now by one (slow start is over)


def test_slow_start_doubles_until_a_throttle_error_then_the_rate_settles_under_its_ceiling():
    s, samples, now = machine.new_state(0.0, P), [], 0.0

    def interval(usage_pct: float) -> float:
        """One adapt interval: callers waited for the bucket, Meta reported usage_pct."""
        nonlocal now
        machine.acquire(s, 0, now, 0.5, P, lease_ttl_s=TTL_S)
        machine.acquire(s, 0, now, 0.5, P, lease_ttl_s=TTL_S)  # the second one waits for its token
        for _ in range(5):
            now += 0.202
            machine.settle(s, samples, machine.OK, None, usage_pct, 0.0, now, P)
        return round(s.rate_per_s, 6)

    assert interval(20.0) == 10.0  # far below the target: double
    events, _ = machine.settle(s, samples, machine.THROTTLED, None, 100, 0.0, now, P)
    assert events == [machine.THROTTLE_STARTED] and (s.ceiling_per_s, s.rate_per_s) == (10, 5)
    now = s.cool_until_s
    # The interval spanning the cool-down saw too few calls to grow on; from then on the
    # additive step, up to 95 % of the rate refused, then probes of 0.02/s.
    assert [interval(20.0) for _ in range(5)] == [5.0, 7.0, 9.0, 9.5, 9.52]
    assert s.ceiling_per_s == 10.0


def test_slow_start_doubles_the_limit_per_round_and_the_rate_per_calm_call():
    assert policy.slow_start_limit(4, 4, P) == 8  # the round ran at 4: calm, so 8
    assert policy.slow_start_limit(8, 4, P) == 8  # the limit grew meanwhile: never cut here
    assert policy.slow_start_limit(40, 40, P) == 64  # the ceiling
    # One call per round trip: 1/latency_s, at most doubling; only while usage says nothing.
    assert policy.slow_start_rate(10.0, 0.25, True, 0.0, P) == 14.0
    assert policy.slow_start_rate(10.0, 0.05, True, 0.0, P) == 20.0
    assert policy.slow_start_rate(10.0, 0.25, False, 0.0, P) == 10.0  # nobody waited
    assert policy.slow_start_rate(10.0, 0.25, True, 3.0, P) == 10.0  # Meta reports usage
    assert policy.slow_start_rate(98.0, 0.25, True, 0.0, P) == 100.0  # the rate's ceiling
    samples = [0.1] * 2
    assert policy.call_level(samples, 0.1, P) is None  # too few latencies for a baseline
    samples.append(0.1)
    assert policy.call_level(samples, 0.19, P) == policy.NORMAL
    assert policy.call_level(samples, 0.2, P) == policy.RAISED
    assert policy.call_level(samples, 0.31, P) == policy.STRAINED


class Rounds:
    """Slow start's rounds: every slot taken at once (the last taker is the round's call),
    then every call ends after latency_s, in the order sent."""

    def __init__(self, p=P, rate_per_s: float = 4.0) -> None:
        self.p, self.now, self.samples = p, 0.0, [0.25] * 5  # a baseline of 0.25 s
        self.s = machine.new_state(0.0, p)
        self.s.rate_per_s = rate_per_s

    def send(self, calls: int, busy: int = 0) -> list[float]:
        """calls sent now, with busy others in flight."""
        leases = []
        for inflight in range(busy, busy + calls):
            d = machine.acquire(self.s, inflight, self.now, 0.5, self.p, lease_ttl_s=TTL_S)
            assert d.go
            leases.append(self.now + d.wait_s + TTL_S)
            self.now += 0.001
        return leases

    def end(self, leases: list[float], latency_s: float, usage_pct: float = 0.0) -> list[str]:
        events = []
        for lease_s in leases:
            self.s.rate_blocked = 1  # callers wait for tokens
            events += machine.settle(
                self.s, self.samples, machine.OK, latency_s, usage_pct, 0.0, self.now, self.p,
                lease_s=lease_s,
            )[0]  # fmt: skip
        self.now += latency_s
        return events

    def trip(self, latency_s: float, usage_pct: float = 0.0) -> list[str]:
        return self.end(self.send(self.s.limit), latency_s, usage_pct)


def test_slow_start_doubles_per_round_goes_back_at_a_strain_and_ends_when_it_is_confirmed():
    rounds = Rounds(dataclasses.replace(P, rate_ceiling_per_s=1000.0, adapt_interval_s=10.0))
    s, limits, rates = rounds.s, [], []
    for _ in range(4):
        rounds.trip(0.25)
        limits.append(s.limit)
        rates.append(s.rate_per_s)
    assert limits == [2, 4, 8, 16]  # doubled per round, not per call
    assert rates == [8.0, 16.0, 32.0, 64.0]  # each calm call adds 4/s (one call per 0.25 s)
    assert rounds.trip(0.9) == [] and s.limit == 8  # the round at 16 strained: back to 8
    assert rounds.trip(0.25) == [] and s.limit == 16  # the calls after it were calm: noise
    assert not s.strained
    assert rounds.trip(0.9) == [] and s.limit == 8
    assert rounds.trip(0.9) == [machine.SOFT_STARTED]  # a call sent after it strained too
    assert s.limit == 8 and s.strained and s.soft and s.calm_needed == policy.CALM_INTERVALS
    rounds.trip(0.25)
    assert s.limit == 8  # slow start is over: probes, interval by interval, from now on


def test_a_call_that_ran_alone_says_nothing_of_the_limit():
    rounds = Rounds()
    s = rounds.s
    s.limit = 2
    rounds.end(rounds.send(1), 0.25)  # calm, but it never had company
    assert s.limit == 2
    first, second = rounds.send(2)  # the second took the last slot: the round's call
    rounds.end([first], 0.25)
    assert s.limit == 2
    rounds.end([second], 0.25)
    assert s.limit == 4
    # A round's call whose worker died (lease expired) gives way to a new round.
    rounds.send(4)
    rounds.now += TTL_S + 1
    [late] = rounds.send(1, busy=3)
    assert s.round_lease_s == late and s.round_limit == 4


def test_interval_verdicts_still_end_slow_start_when_latency_strains():
    rounds = Rounds(dataclasses.replace(P, rate_ceiling_per_s=1000.0))
    s = rounds.s
    for _ in range(4):  # 1 s: one adapt interval
        rounds.trip(0.25)
    rounds.trip(0.25, usage_pct=10.0)
    assert s.limit == 32
    for _ in range(4):  # strained rounds end slow start, or the interval's verdict does
        rounds.trip(0.9)
        if s.strained:
            break
    assert s.limit == 16 and s.strained and s.calm_needed == policy.CALM_INTERVALS


def test_a_throttle_error_ends_slow_start():
    s, samples = machine.new_state(0.0, P), [0.25] * 5
    machine.settle(s, samples, machine.THROTTLED, None, 100, 0.0, 0.0, P)
    now = s.cool_until_s
    assert machine.acquire(s, s.limit, now, 0.5, P, lease_ttl_s=TTL_S).reason == "inflight"
    machine.settle(s, samples, machine.OK, 0.25, 0.0, 0.0, now, P)
    assert s.limit == P.inflight_start and s.rate_per_s == P.rate_start_per_s / 2
