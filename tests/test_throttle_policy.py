"""The throttle's pure arithmetic (policy.py) and its state machine (machine.py)."""

from __future__ import annotations

import dataclasses

import pytest

from audiencesync.settings import Settings
from audiencesync.throttle import machine, policy
from audiencesync.throttle.gate import params_from

P = params_from(
    Settings(
        throttle_usage_target_pct=88,
        throttle_rate_start_per_s=5,
        throttle_inflight_start=1,
        throttle_inflight_ceiling=64,
    )
)
# start 5/s, floor 0.5, ceiling 100, +2/s, x0.5, target 88 (the sums below), cut 95


def test_bucket_hands_out_turns_one_token_apart_and_never_moves_them():
    s = machine.new_state(100.0, P)
    waits = [machine.acquire(s, 0, 0.0, 100.0, 0.5, P) for _ in range(3)]
    assert [(d.go, round(d.wait_s, 9)) for d in waits] == [(True, 0.0), (True, 0.2), (True, 0.4)]
    s.rate_per_s = 10.0  # a rise of rate must not pull later callers before the turns given out
    assert machine.acquire(s, 0, 0.0, 100.0, 1.0, P).wait_s == pytest.approx(0.6)
    assert policy.token_wait_s(99.0, 100.0) == 0.0  # an idle bucket holds one token, no more
    assert policy.take_token(99.0, 100.0, 4.0) == 100.25


def test_callers_beyond_the_wait_get_appointments_one_turn_apart():
    s = machine.new_state(0.0, P)
    for _ in range(3):
        assert machine.acquire(s, 0, 0.0, 0.0, 0.5, P).go  # turns at 0, 0.2, 0.4
    later = [machine.acquire(s, 0, 0.0, 0.0, 0.5, P) for _ in range(3)]
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
    decision = machine.acquire(s, 0, 0.0, 200.0, 0.5, P)
    assert (decision.go, decision.reason, decision.wait_s) == (False, "cooldown", 50.0)
    # A late refusal of a call sent before the cool-down started is the same episode.
    assert machine.settle(s, samples, machine.THROTTLED, None, 100, 300.0, 11.0, P)[0] == []
    assert (s.strikes, s.rate_per_s, s.cool_until_s) == (1, 2.5, 251.0)
    assert machine.acquire(s, 0, 0.0, 251.0, 0.5, P).go
    events, episode_s = machine.settle(s, samples, machine.OK, 0.1, 10, 0.0, 251.5, P)
    assert events == [machine.THROTTLE_ENDED] and episode_s == 241.5 and s.strikes == 0


def test_without_an_estimate_each_refused_probe_doubles_the_cool_down():
    s, samples = machine.new_state(0.0, P), []
    for strike, cool_s in [(1, 2.0), (2, 4.0), (3, 8.0)]:
        now = s.cool_until_s
        assert machine.acquire(s, 0, 0.0, now, 0.5, P).go  # the probe after each
        machine.settle(s, samples, machine.THROTTLED, None, 0, 0.0, now, P)
        assert (s.strikes, s.cool_until_s - now) == (strike, cool_s)
    assert s.rate_per_s == P.rate_floor_per_s * 1.25  # 5 -> 2.5 -> 1.25 -> 0.625


def test_soft_throttling_cuts_the_load_limit_and_ends_when_latency_recovers():
    p = dataclasses.replace(P, latency_min_samples=5, rate_start_per_s=100)
    s, samples, now = machine.new_state(0.0, p), [], 0.0

    def interval(latency_s: float, inflight: int) -> list[str]:
        """One adapt interval in which a caller found `inflight` calls in flight."""
        nonlocal now
        machine.acquire(s, inflight, 5.0, now, 0.5, p)
        events: list[str] = []
        for _ in range(4):
            now += 0.3
            events += machine.settle(s, samples, machine.OK, latency_s, 0, 0.0, now, p)[0]
        return events

    assert interval(0.1, 12) == [] and s.limit == 64  # too few latencies for a verdict yet
    assert interval(0.1, 12) == [] and s.limit == 64  # calm: no load limit to grow
    assert interval(0.5, 12) == [machine.SOFT_STARTED] and s.limit == 6  # cut from the 12
    assert interval(0.25, 6) == [] and s.soft and s.limit == 6  # between 2x and 3x: hold
    assert interval(0.5, 6) == [] and s.limit == 3  # strained again: cut again
    assert interval(0.5, 3) == [] and s.limit == 1
    assert interval(0.1, 1) == [machine.SOFT_ENDED] and s.limit == 2  # calm and waiting: probe
    assert interval(0.5, 2) == [machine.SOFT_STARTED] and s.limit == 1  # the probe strained ...
    assert s.calm_needed == policy.CALM_INTERVALS  # ... so probing backs off
    for i in range(policy.CALM_INTERVALS - 1):
        assert interval(0.1, 1) in ([], [machine.SOFT_ENDED]) and s.limit == 1, (i, s)
    assert interval(0.1, 1) == [] and s.limit == 2  # calm for long enough: by one


def test_latency_that_rises_at_one_call_in_flight_is_the_destinations_pace():
    """After a pace of 5 ms, 300 ms calls strain one at a time: not our load, so the baseline
    follows and no load limit stays (the account is not pinned at a crawl)."""
    p = dataclasses.replace(P, rate_start_per_s=100)
    s, samples, now = machine.new_state(0.0, p), [], 0.0
    for _ in range(10):
        now += 0.005
        machine.settle(s, samples, machine.OK, 0.005, 0, 0.0, now, p)
    assert machine.inflight_limit(s, 0.0, p) == 1  # 100/s x 5 ms
    events: list[str] = []
    for _ in range(5):  # one call at a time, as the pace's limit allows
        assert machine.acquire(s, 0, 0.0, now, 0.5, p).go
        now += 0.3
        events += machine.settle(s, samples, machine.OK, 0.3, 0, 0.0, now, p)[0]
    assert events == [] and not s.soft and s.limit == p.inflight_ceiling
    assert samples == [0.3] and s.pace_s == 0.3  # the old pace is gone; the new one counts
    assert machine.inflight_limit(s, 0.0, p) == 30  # 100/s x 300 ms


def test_the_pace_sets_the_calls_in_flight_and_before_any_answer_the_oldest_calls_age():
    p = dataclasses.replace(P, rate_start_per_s=100, inflight_start=8, inflight_ceiling=128)
    s = machine.new_state(0.0, p)
    assert [machine.acquire(s, n, 0.0, 0.0, 0.5, p).go for n in (7, 8)] == [True, False]
    assert machine.acquire(s, 8, 0.2, 0.0, 0.5, p).reason == "go"  # 100/s x 0.2 s: 20
    assert machine.acquire(s, 20, 0.2, 0.0, 0.5, p).reason == "inflight"
    s.pace_s = 1.6  # Meta's 1.5-1.9 s
    assert machine.inflight_limit(s, 0.0, p) == 128  # 160, at the ceiling
    s.limit = 40  # a load limit latency strain taught
    assert machine.inflight_limit(s, 0.0, p) == 40


def test_budget_room_from_metas_usage_figure_and_one_calls_share():
    p = dataclasses.replace(P, rate_start_per_s=100, inflight_start=64)
    s, samples = machine.new_state(0.0, p), []
    for usage_pct in (0, 10, 20, 30):  # a budget of 10 calls: 10 % a call
        machine.settle(s, samples, machine.OK, None, usage_pct, 0.0, 0.1, p)
    assert s.per_call_pct == 10
    assert machine.acquire(s, 4, 0.05, 0.1, 0.5, p).go  # 30 + 5 x 10 = 80 <= 88
    assert machine.acquire(s, 5, 0.05, 0.1, 0.5, p).reason == "budget"  # 90
    # With nothing in flight, a figure older than an interval may be stale: one call goes.
    assert machine.acquire(s, 0, 0.0, 0.5, 0.5, p).go
    s.usage_last = 85
    assert machine.acquire(s, 0, 0.0, 0.6, 0.5, p).reason == "budget"
    assert machine.acquire(s, 0, 0.0, 1.2, 0.5, p).go
    assert policy.per_call_pct(1.0, 0.0, 5.0) == 1.0  # a fall (usage decays) teaches nothing
