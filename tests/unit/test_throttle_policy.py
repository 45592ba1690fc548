"""The throttle's pure arithmetic (policy.py) and its state machine (machine.py)."""

from __future__ import annotations

import dataclasses

import pytest

from audiencesync.settings import Settings
from audiencesync.throttle import machine, policy
from audiencesync.throttle.gate import params_from

P = params_from(Settings(throttle_rate_per_s=5, throttle_inflight_start=1))
# 5 calls/s, target 95 %, cool-down 2 s doubling, in flight: start 1, floor 1, ceiling 128


def test_bucket_hands_out_turns_one_token_apart_and_never_moves_them():
    s = machine.new_state(100.0, P)
    waits = [machine.acquire(s, 0, 0.0, 100.0, 0.5, P) for _ in range(3)]
    assert [(d.go, round(d.wait_s, 9)) for d in waits] == [(True, 0.0), (True, 0.2), (True, 0.4)]
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


def test_cool_down_keeps_within_metas_estimate_in_whole_minutes():
    assert policy.cooldown_s(0.0, 1, P) == 2.0 and policy.cooldown_s(0.0, 3, P) == 8.0
    assert policy.cooldown_s(60.0, 1, P) == 2.0  # "1 minute": under a minute, probe soon
    assert policy.cooldown_s(180.0, 1, P) == 120.0  # "3 minutes": 2 for certain
    assert policy.cooldown_s(60.0, 7, P) == 60.0  # never beyond the estimate
    assert policy.cooldown_s(0.0, 20, P) == P.cooldown_max_s


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


def test_in_flight_limit_is_cut_to_what_the_pace_serves_when_strained_and_grows_after_calm():
    strained, raised, normal = policy.STRAINED, policy.RAISED, policy.NORMAL
    # 11 in flight answering in 0.55 s at a 0.1 s pace: 20 calls/s, which 2 serve at the pace
    assert policy.next_limit(11, strained, 0, 1, True, 0.1 / 0.55, P) == 2
    assert policy.next_limit(8, strained, 0, 1, True, 1 / 3, P) == 2
    assert policy.next_limit(2, strained, 0, 1, False, 0.1 / 0.4, P) == 1  # the floor
    share = 1.0  # not strained: the share plays no part
    assert policy.next_limit(8, normal, 3, 3, True, share, P) == 9
    assert policy.next_limit(8, normal, 1, 1, True, share, P) == 16  # no strain yet: double
    assert policy.next_limit(8, normal, 2, 3, True, share, P) == 8  # not calm for long enough
    assert policy.next_limit(8, None, 9, 1, True, share, P) == 8  # no evidence this interval
    assert policy.next_limit(8, raised, 9, 1, True, share, P) == 8
    assert policy.next_limit(8, normal, 3, 3, False, share, P) == 8  # nobody waited for a slot
    assert policy.next_limit(128, normal, 3, 3, True, share, P) == 128  # the ceiling
    assert policy.next_limit(80, normal, 1, 1, True, share, P) == 128


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
    assert events == [machine.THROTTLE_STARTED]
    decision = machine.acquire(s, 0, 0.0, 200.0, 0.5, P)
    assert (decision.go, decision.reason, decision.wait_s) == (False, "cooldown", 50.0)
    # A late refusal of a call sent before the cool-down started is the same episode.
    assert machine.settle(s, samples, machine.THROTTLED, None, 100, 300.0, 11.0, P)[0] == []
    assert (s.strikes, s.cool_until_s) == (1, 251.0)
    # Nor does a success of a call sent before it end the episode: the account still waits.
    assert machine.settle(s, samples, machine.OK, 0.1, 10, 0.0, 12.0, P)[0] == []
    assert s.throttled_since_s == 10.0 and s.cool_until_s == 251.0
    assert machine.acquire(s, 0, 0.0, 251.0, 0.5, P).go
    events, episode_s = machine.settle(s, samples, machine.OK, 0.1, 10, 0.0, 251.5, P)
    assert events == [machine.THROTTLE_ENDED] and episode_s == 241.5 and s.strikes == 0


def test_a_refusal_while_the_account_waits_at_its_wall_is_an_episode_of_its_own():
    """A call sent before the answer that found the wall, refused: counted and cooled down as
    a refusal (the wall's wait is no refusal's), so the report shows the episode."""
    s, samples = machine.new_state(0.0, P), []
    machine.settle(s, samples, machine.OK, 0.1, 100, 0.0, 10.0, P)  # at the wall: wait 1 s
    assert s.walls == 1 and s.cool_until_s == 11.0 and not s.throttled_since_s
    events, _ = machine.settle(s, samples, machine.THROTTLED, None, 100, 0.0, 10.1, P)
    assert events == [machine.THROTTLE_STARTED] and s.strikes == 1
    assert s.cool_until_s == pytest.approx(12.1)  # cooldown_base_s, from the refusal


def test_without_an_estimate_each_refused_probe_doubles_the_cool_down():
    s, samples = machine.new_state(0.0, P), []
    for strike, cool_s in [(1, 2.0), (2, 4.0), (3, 8.0)]:
        now = s.cool_until_s
        assert machine.acquire(s, 0, 0.0, now, 0.5, P).go  # the probe after each
        machine.settle(s, samples, machine.THROTTLED, None, 0, 0.0, now, P)
        assert (s.strikes, s.cool_until_s - now) == (strike, cool_s)


def test_soft_throttling_cuts_the_load_limit_and_ends_when_latency_recovers():
    p = dataclasses.replace(P, latency_min_samples=5, rate_per_s=100)
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

    assert (
        interval(0.1, 12) == [] and s.limit == p.inflight_ceiling
    )  # too few latencies for a verdict yet
    assert interval(0.1, 12) == [] and s.limit == p.inflight_ceiling  # calm: no load limit to grow
    # Cut from the 12 in flight to what serves as many calls a second at the pace: 12 x 0.1/0.4
    assert interval(0.4, 12) == [machine.SOFT_STARTED] and s.limit == 3
    assert interval(0.25, 3) == [] and s.soft and s.limit == 3  # between 2x and 3x: hold
    assert interval(0.5, 3) == [] and s.limit == 1  # strained again: 3 x 0.1/0.5, the floor
    assert interval(0.1, 1) == [machine.SOFT_ENDED] and s.limit == 2  # calm and waiting: probe
    assert interval(0.5, 2) == [machine.SOFT_STARTED] and s.limit == 1  # the probe strained ...
    assert s.calm_needed == policy.CALM_INTERVALS  # ... so probing backs off
    for i in range(policy.CALM_INTERVALS - 1):
        assert interval(0.1, 1) in ([], [machine.SOFT_ENDED]) and s.limit == 1, (i, s)
    assert interval(0.1, 1) == [] and s.limit == 2  # calm for long enough: by one


def paced(latency_s: float) -> tuple[machine.State, list[float], float, policy.Params]:
    """An account at 100 calls/s whose ten answers so far each took latency_s, load judged
    harmless (rule 6): (state, the latencies, the time now, the params)."""
    p = dataclasses.replace(P, rate_per_s=100)
    s, samples, now = machine.new_state(0.0, p), [], 0.0
    s.load_judged = 1
    for _ in range(10):
        now += latency_s
        machine.settle(s, samples, machine.OK, latency_s, 0, 0.0, now, p)
    return s, samples, now, p


def test_latency_that_rises_at_one_call_in_flight_is_the_destinations_pace():
    """After a pace of 5 ms, 300 ms calls strain one at a time: not our load, so the baseline
    follows and no load limit stays (the account is not pinned at a crawl)."""
    s, samples, now, p = paced(0.005)
    assert machine.inflight_limit(s, 0.0, p) == 1  # 100/s x 5 ms
    events: list[str] = []
    for _ in range(5):  # one call at a time, as the pace's limit allows
        assert machine.acquire(s, 0, 0.0, now, 0.5, p).go
        now += 0.3
        events += machine.settle(s, samples, machine.OK, 0.3, 0, 0.0, now, p)[0]
    assert events == [] and not s.soft and s.limit == p.inflight_ceiling
    assert samples == [0.3] and s.pace_s == 0.3  # the old pace is gone; the new one counts
    assert machine.inflight_limit(s, 0.0, p) == 30  # 100/s x 300 ms


def test_a_run_after_a_pause_at_a_slower_pace_goes_at_that_pace_from_its_first_answer():
    """After uploads at 5 ms, the next run's calls take 300 ms: the first answer after the
    pause, at three times the pace or more, has the pace measured afresh, so the run goes at
    the new pace from then on, as a first run would. What load did at the old pace goes with
    it: a load limit learned there (once from a pair misread on a busy machine, which pinned
    the next run at one call in flight) is dropped, and a pair judges load again."""
    s, samples, now, p = paced(0.005)
    s.limit = 1  # a load limit learned at the old pace
    assert machine.inflight_limit(s, 0.0, p) == 1  # 100/s x 5 ms
    now += 60.0  # the next run
    assert machine.acquire(s, 0, 0.0, now, 0.5, p).go and s.resumed
    machine.settle(s, samples, machine.OK, 0.3, 0, 0.0, now + 0.3, p, admitted_s=now)
    assert samples == [0.3] and not s.resumed and s.limit == p.inflight_ceiling
    # A call sent after the pause's first (alongside it, had the old limit allowed) is the
    # pair: its answer judges load at the new pace.
    assert not s.load_judged and machine.inflight_limit(s, 0.0, p) == 1
    assert machine.acquire(s, 0, 0.0, now + 0.3, 0.5, p).go
    machine.settle(s, samples, machine.OK, 0.3, 0, 0.0, now + 0.6, p, admitted_s=now + 0.3)
    assert s.load_judged and machine.inflight_limit(s, 0.0, p) == 30  # 100/s x 300 ms


def test_a_slow_answer_mid_run_or_a_pause_at_the_same_pace_changes_nothing():
    s, samples, now, p = paced(0.1)
    s.limit = 4
    assert machine.acquire(s, 2, 0.1, now, 0.5, p).go and not s.resumed  # calls in flight
    now += 0.5
    machine.settle(s, samples, machine.OK, 0.5, 0, 0.0, now, p)  # one slow answer: an outlier
    assert len(samples) == 11 and s.pace_s == 0.1 and s.limit == 4
    now += 60.0
    assert machine.acquire(s, 0, 0.0, now, 0.5, p).go and s.resumed  # after a pause ...
    now += 0.2
    machine.settle(s, samples, machine.OK, 0.2, 0, 0.0, now, p)  # ... at the same pace
    assert len(samples) == 12 and s.pace_s == 0.1 and s.limit == 4 and not s.resumed


def test_an_answer_at_the_wall_cools_the_account_down_then_one_call_probes():
    """An adapt interval first, doubling while the wall stays; a figure with room again ends
    it. Answers of calls sent before the cool-down draw no new one."""
    s, samples = machine.new_state(0.0, P), []
    for usage in (10, 80, 90):  # 10 % a call
        machine.settle(s, samples, machine.OK, 0.2, usage, 0.0, 4.0, P)
    machine.settle(s, samples, machine.OK, 0.2, 100, 60.0, 5.0, P)
    assert (s.walls, s.cool_until_s) == (1, 6.0)  # "1 minute" from Meta: the backoff within
    machine.settle(s, samples, machine.OK, 0.2, 100, 60.0, 5.1, P)  # sent before: same wall
    assert machine.acquire(s, 0, 0.0, 5.9, 0.5, P).reason == "cooldown"
    assert machine.acquire(s, 0, 0.0, 6.0, 0.5, P).go  # then one call probes
    machine.settle(s, samples, machine.OK, 0.2, 100, 60.0, 6.2, P)
    assert (s.walls, s.cool_until_s) == (2, 8.0)  # 2 s after the probe was due, not answered
    machine.settle(s, samples, machine.OK, 0.2, 80, 0.0, 8.4, P)
    assert s.walls == 0 and machine.acquire(s, 0, 0.0, 8.5, 0.5, P).go
    # From the answer that found the wall (5.0) to room again, which came between the last
    # probe that found the wall (6.2) and now (8.4): how long the wall lasted ...
    assert s.wall_s == pytest.approx(2.3) and s.wall_since_s == 0
    machine.settle(s, samples, machine.OK, 0.2, 10, 0.0, 20.0, P)  # spending again
    machine.settle(s, samples, machine.OK, 0.2, 100, 0.0, 21.0, P)
    assert s.cool_until_s == pytest.approx(23.3)  # ... so the next one is waited out as long


def test_the_probes_keep_their_schedule_unless_one_goes_late():
    """Probes due 1, 3, 7 and 15 s after the wall was found, however long each answer takes
    (0.4 s here); one sent long after it was due (the next run) starts the gaps again."""
    s, samples = machine.new_state(0.0, P), []
    for usage in (10, 80, 90):
        machine.settle(s, samples, machine.OK, 0.4, usage, 0.0, 4.0, P)
    machine.settle(s, samples, machine.OK, 0.4, 100, 0.0, 5.0, P)
    due = [s.cool_until_s]
    for _ in range(3):
        assert machine.acquire(s, 0, 0.0, s.cool_until_s, 0.5, P).go
        machine.settle(s, samples, machine.OK, 0.4, 100, 0.0, s.cool_until_s + 0.4, P)
        due.append(s.cool_until_s)
    assert [d - 5.0 for d in due] == [1.0, 3.0, 7.0, 15.0] and s.walls == 4
    assert machine.acquire(s, 0, 0.0, 3600.0, 0.5, P).go  # an hour later, still at the wall
    machine.settle(s, samples, machine.OK, 0.4, 100, 0.0, 3600.4, P)
    assert s.cool_until_s == pytest.approx(3600.4 + 16.0)


def test_the_usage_target_is_the_wall_when_its_margin_holds_a_call():
    """A deep budget (1 % a call): calls stop at the target, and the 5 % above it is kept for
    the probes that find the window free again. A shallow one (10 % a call) cannot spare a
    call: its wall stays at Meta's 100 %."""
    assert not policy.at_wall(94, 1, P) and policy.at_wall(95, 1, P)
    assert not policy.at_wall(90, 10, P) and policy.at_wall(91, 10, P)
    assert not policy.at_wall(95, 0, P)  # one call's share not known yet: Meta's wall
    assert policy.at_wall(100, 0, P)


def test_budget_room_from_metas_usage_figure_and_one_calls_share():
    p = dataclasses.replace(P, rate_per_s=100, inflight_start=64)
    s, samples = machine.new_state(0.0, p), []
    # No header on the first calls, then 40 % after 4 calls: a budget of 10 calls
    for usage_pct in (0, 0, 0, 40, 60, 50, 70):  # 60 and 50 came back out of order
        machine.settle(s, samples, machine.OK, None, usage_pct, 0.0, 0.1, p)
    assert s.per_call_pct == 10 and s.usage_last == 70
    assert machine.acquire(s, 1, 0.05, 0.1, 0.5, p).go  # 70 + 2 x 10 = 90 <= 95
    assert machine.acquire(s, 2, 0.05, 0.1, 0.5, p).reason == "budget"  # 100
    # With nothing in flight, a figure older than an interval may be stale: one call goes.
    assert machine.acquire(s, 0, 0.0, 1.2, 0.5, p).go
    assert policy.per_call_pct(1.0, -5.0) == 1.0  # a fall (usage decays) teaches nothing
    assert policy.per_call_pct(0.0, 3.0) == 3.0 and policy.per_call_pct(3.0, 1.0) == 1.0


def test_a_score_paced_near_its_target_learns_how_long_its_wall_lasted_not_the_run():
    """A decaying score: the gate spends room as it frees, the figure near the target for many
    seconds, then an answer touches the wall and a probe a second later finds room. What the
    next wall waits is that second, not the run so far (measured from the run's first answer,
    it made the next wall wait 14 s: a run 1.46x the best schedule now and then)."""
    p = dataclasses.replace(P, usage_target_pct=95.0)
    s, samples = machine.new_state(0.0, p), []
    machine.settle(s, samples, machine.OK, 0.2, 2, 0.0, 100.0, p)  # the run's first answer
    machine.settle(s, samples, machine.OK, 0.2, 3, 0.0, 100.1, p)  # one call's share: 1 %
    for t in range(1, 15):  # room frees and is spent, the figure below the wall
        machine.settle(s, samples, machine.OK, 0.2, 90 + t % 4, 0.0, 100.0 + t, p)
    machine.settle(s, samples, machine.OK, 0.2, 95, 0.0, 114.8, p)  # the wall
    assert s.cool_until_s == pytest.approx(115.8)  # an adapt interval: nothing learned yet
    machine.settle(s, samples, machine.OK, 0.2, 90, 0.0, 116.0, p)  # the probe finds room
    assert s.walls == 0 and s.wall_s == pytest.approx(0.6)  # (114.8 + 116.0) / 2 - 114.8
    machine.settle(s, samples, machine.OK, 0.2, 95, 0.0, 117.0, p)  # the next wall
    assert s.cool_until_s == pytest.approx(118.0)  # an interval (more than the 0.6 s learned)


def test_room_found_long_after_the_wall_teaches_nothing():
    """A run ended at the wall; the next comes an hour later and finds room: when the wall
    ended is unknown, so what was learned before stays (it was about to become 30 min)."""
    p = dataclasses.replace(P, usage_target_pct=95.0)
    s, samples = machine.new_state(0.0, p), []
    s.wall_s, s.per_call_pct = 28.0, 1.0
    machine.settle(s, samples, machine.OK, 0.2, 40, 0.0, 100.0, p)
    machine.settle(s, samples, machine.OK, 0.2, 95, 0.0, 102.0, p)  # the wall: wait 28 s
    assert s.walls == 1 and s.cool_until_s == pytest.approx(130.0)
    machine.settle(s, samples, machine.OK, 0.2, 20, 0.0, 3700.0, p)  # the next run's answer
    assert s.walls == 0 and s.wall_s == 28.0
    assert policy.found_on_time(102.0, 130.0, 130.5, 0.2, p)  # the probe sent as it ended
    assert policy.found_on_time(102.0, 130.0, 158.0, 0.2, p)  # late by a deferral's jitter
    assert not policy.found_on_time(102.0, 130.0, 3700.0, 0.2, p)
    # A state saved mid-wall by a version that kept no wall_since_s teaches nothing either.
    s.walls, s.wall_since_s, s.wall_probe_s, s.cool_until_s = 1, 0.0, 4000.0, 4001.0
    machine.settle(s, samples, machine.OK, 0.2, 20, 0.0, 4001.2, p)
    assert s.walls == 0 and s.wall_s == 28.0


def test_before_any_answer_the_first_calls_wait_a_while_for_one_then_the_limit_grows():
    p = dataclasses.replace(P, rate_per_s=100, inflight_start=8, inflight_ceiling=128)
    wait_s = policy.FIRST_ANSWER_S
    # A nearby destination answers within the wait: no more than inflight_start go blind
    # (the lab's bucket of 10 calls a second is read from the first answer, not overrun).
    assert policy.pace_limit(100, 0.0, 0.12, p) == 8
    assert policy.pace_limit(100, 0.0, wait_s, p) == 8
    # A far one (Meta: 1-2 s a call): the pace is at least the oldest call's age.
    assert policy.pace_limit(100, 0.0, wait_s + 0.5, p) == 50
    assert policy.pace_limit(100, 1.5, 0.0, p) == 150  # the pace known: Little's law
    s = machine.new_state(0.0, p)
    assert machine.inflight_limit(s, wait_s + 1.5, p) == 128  # within the ceiling


def test_a_call_sent_alongside_another_says_at_once_whether_load_slows_the_destination():
    """Scenario B: 100 ms alone, 300 ms more per other call in flight. The second of the two
    blind calls answers at 4x the first: the load limit goes to one at once, a probe that
    strained (the verdict waited for an adapt interval before, while 5-7 calls were answered
    in up to 2 s). Answered on time, Little's law has its way."""
    p = dataclasses.replace(P, rate_per_s=50, inflight_start=2)
    for second_s, limit in ((0.4, 1), (0.12, 5)):
        s, samples = machine.new_state(10.0, p), []
        assert machine.acquire(s, 0, 0.0, 10.0, 0.5, p).go
        assert machine.acquire(s, 1, 0.0, 10.02, 0.5, p).go
        assert machine.acquire(s, 2, 0.04, 10.04, 0.5, p).reason == "inflight"  # 2 go blind
        machine.settle(s, samples, machine.OK, 0.1, 0, 0.0, 10.1, p, admitted_s=10.0)
        # The pace is known, not yet what load does to it: the other call's answer says.
        assert machine.acquire(s, 1, 0.08, 10.1, 0.5, p).reason == "inflight"
        now_s = 10.02 + second_s
        events, _ = machine.settle(s, samples, machine.OK, second_s, 0, 0.0, now_s, p, 10.02)
        assert machine.inflight_limit(s, 0.0, p) == limit  # on time: 50/s x 0.1 s
        strained = limit == 1
        assert events == ([machine.SOFT_STARTED] if strained else [])
        assert s.calm_needed == (policy.CALM_INTERVALS if strained else 1)


def test_the_call_sent_alongside_another_judges_not_the_one_sent_alone_before_it():
    """The first chunk's call went alone (the next chunk was not ready): its answer says nothing
    of load. The next two overlap, and the answer of the one sent alongside the other judges;
    the alone one's does not, though it comes back first and its sending may have been slowed
    in the worker (what the gate let go when counts, not when the answer says it was sent)."""
    p = dataclasses.replace(P, rate_per_s=50, inflight_start=2)
    s, samples = machine.new_state(10.0, p), []
    assert machine.acquire(s, 0, 0.0, 10.0, 0.5, p).go
    machine.settle(s, samples, machine.OK, 0.1, 0, 0.0, 10.1, p, admitted_s=10.0)
    assert machine.acquire(s, 0, 0.0, 10.15, 0.5, p).go  # alone
    assert machine.acquire(s, 1, 0.05, 10.2, 0.5, p).go  # alongside it
    assert machine.inflight_limit(s, 0.0, p) == 1  # its answer is awaited
    events, _ = machine.settle(s, samples, machine.OK, 0.1, 0, 0.0, 10.3, p, admitted_s=10.15)
    assert events == [] and machine.inflight_limit(s, 0.0, p) == 1
    events, _ = machine.settle(s, samples, machine.OK, 0.4, 0, 0.0, 10.605, p, admitted_s=10.2)
    assert events == [machine.SOFT_STARTED] and machine.inflight_limit(s, 0.0, p) == 1
    # A verdict still due after a pause (the pair's answer was an error) and a new pace: the
    # first answer after the pause, alone, is the pace's, not a verdict on our load; a pair
    # judges load at the new pace.
    s, samples = machine.new_state(10.0, p), []
    assert machine.acquire(s, 0, 0.0, 10.0, 0.5, p).go
    assert machine.acquire(s, 1, 0.0, 10.02, 0.5, p).go
    machine.settle(s, samples, machine.OK, 0.1, 0, 0.0, 10.1, p, admitted_s=10.0)
    machine.settle(s, samples, machine.OTHER, None, 0, 0.0, 10.5, p, admitted_s=10.02)
    assert machine.acquire(s, 0, 0.0, 3600.0, 0.5, p).go and s.resumed
    events, _ = machine.settle(s, samples, machine.OK, 0.5, 0, 0.0, 3600.5, p, 3600.0)
    assert events == [] and samples == [0.5] and s.limit == p.inflight_ceiling
    assert not s.load_judged and machine.inflight_limit(s, 0.0, p) == 1  # the next call judges
    # At 5 ms a call, a pause of two paces (10 ms) is any gap: each call alone, at the floor,
    # counts as resumed. Its answer at the pace still gives the verdict (CI: an account stayed
    # at one call in flight for a whole run when it did not).
    fast = dataclasses.replace(p, rate_per_s=1000)
    s, samples = machine.new_state(10.0, fast), []
    assert machine.acquire(s, 0, 0.0, 10.0, 0.5, fast).go
    machine.settle(s, samples, machine.OK, 0.005, 0, 0.0, 10.005, fast, admitted_s=10.0)
    assert machine.acquire(s, 0, 0.0, 10.05, 0.5, fast).go and s.resumed
    assert machine.acquire(s, 1, 0.0, 10.07, 0.5, fast).go  # the pair
    events, _ = machine.settle(s, samples, machine.OK, 0.005, 0, 0.0, 10.075, fast, 10.07)
    assert events == [] and s.load_judged and s.limit == fast.inflight_ceiling
    assert machine.inflight_limit(s, 0.0, fast) == 5  # 1000/s x 5 ms
    off = dataclasses.replace(p, latency_factor=0.0)  # the detector off: no pair awaited
    s, samples = machine.new_state(0.0, off), []
    assert machine.acquire(s, 0, 0.0, 10.0, 0.5, off).go
    assert machine.acquire(s, 1, 0.0, 10.02, 0.5, off).go
    machine.settle(s, samples, machine.OK, 0.1, 0, 0.0, 10.1, off, admitted_s=10.0)
    assert machine.inflight_limit(s, 0.0, off) == 5


def test_a_sessions_close_goes_past_the_load_limit_not_past_the_budget_or_a_cool_down():
    """Strain cut the load limit to 2 while a replace's adds kept every slot taken: the close
    waited for a slot like any call, and came after Meta's window (2 full test runs in 4)."""
    s, _, now, p = paced(0.5)
    s.limit = 2
    assert machine.acquire(s, 2, 0.3, now, 0.5, p).reason == "inflight"
    assert machine.acquire(s, 2, 0.3, now, 0.5, p, past_load_limit=True).go
    s.usage_last, s.per_call_pct = 90.0, 1.0  # 90 + 3 x 1 <= 95: room; 90 + 6 x 1: none
    assert machine.acquire(s, 5, 0.3, now + 0.1, 0.5, p, past_load_limit=True).reason == "budget"
    s.cool_until_s = now + 5
    assert machine.acquire(s, 0, 0.0, now + 1, 0.5, p, past_load_limit=True).reason == "cooldown"


def test_before_one_calls_share_is_known_the_figure_spread_over_the_calls_in_flight_counts():
    """The lab's 10 calls a second: the first answer says 90 % with 9 calls in flight, and no
    rise has told one call's share yet. The calls still to send must not go (they went, and
    were refused, before this rule: the e2e bound on calls in the penalty failed)."""
    p = dataclasses.replace(P, usage_target_pct=95.0)
    assert not policy.budget_room(90, 0, 9, p)  # 90 + 10 x 10
    assert policy.budget_room(1, 0, 100, p)  # a deep budget: 1 % with 100 in flight
    assert policy.budget_room(0, 0, 8, p)  # no usage shown yet
    assert policy.budget_room(90, 1, 4, p)  # the share known: 1 % a call
