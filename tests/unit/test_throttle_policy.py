"""The throttle's pure arithmetic (policy.py) and its state machine (machine.py): the token
bucket, Meta's budget, cool-downs and the wall. Latency (the pace, strain under our load, the
first pair) is in test_throttle_latency.py."""

from __future__ import annotations

import dataclasses

import pytest
from throttle_helpers import P

from audiencesync.throttle import machine, policy


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


def test_before_one_calls_share_is_known_the_figure_spread_over_the_calls_in_flight_counts():
    """The lab's 10 calls a second: the first answer says 90 % with 9 calls in flight, and no
    rise has told one call's share yet. The calls still to send must not go (they went, and
    were refused, before this rule: the e2e bound on calls in the penalty failed)."""
    p = dataclasses.replace(P, usage_target_pct=95.0)
    assert not policy.budget_room(90, 0, 9, p)  # 90 + 10 x 10
    assert policy.budget_room(1, 0, 100, p)  # a deep budget: 1 % with 100 in flight
    assert policy.budget_room(0, 0, 8, p)  # no usage shown yet
    assert policy.budget_room(90, 1, 4, p)  # the share known: 1 % a call
