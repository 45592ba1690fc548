"""The throttle's latency rules, pure (policy.py, machine.py): the destination's pace and its
changes, strain under our load and the load limit, the first pair, the session's close."""

from __future__ import annotations

import dataclasses

import pytest
from throttle_helpers import P

from audiencesync.throttle import machine, policy


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
    assert machine.acquire(s, 0, 0.0, now, 0.5, p).go and s.resumed_at_s
    machine.settle(s, samples, machine.OK, 0.3, 0, 0.0, now + 0.3, p, admitted_s=now)
    assert samples == [0.3] and not s.resumed_at_s and s.limit == p.inflight_ceiling
    # A call sent after the pause's first (alongside it, had the old limit allowed) is the
    # pair: its answer judges load at the new pace.
    assert not s.load_judged and machine.inflight_limit(s, 0.0, p) == 1
    assert machine.acquire(s, 0, 0.0, now + 0.3, 0.5, p).go
    machine.settle(s, samples, machine.OK, 0.3, 0, 0.0, now + 0.6, p, admitted_s=now + 0.3)
    assert s.load_judged and machine.inflight_limit(s, 0.0, p) == 30  # 100/s x 300 ms


def test_after_a_pause_the_call_that_answers_after_the_new_pace_judges_load_whichever_it_is():
    """The old pace (20 ms) lets two calls go at once after the pause; the second sent answers
    first (latencies vary) and shows the new pace. The first sent went alongside it: its answer
    judges load, not the answer of one more call sent after (a run after a change of pace took
    a round trip longer than a first run, 1 run in 3)."""
    s, samples, now, p = paced(0.02)
    assert machine.inflight_limit(s, 0.0, p) == 2  # 100/s x 20 ms
    now += 60.0
    assert machine.acquire(s, 0, 0.0, now, 0.5, p).go and s.resumed_at_s == now
    assert machine.acquire(s, 1, 0.0, now + 0.01, 0.5, p).go
    machine.settle(s, samples, machine.OK, 0.3, 0, 0.0, now + 0.31, p, admitted_s=now + 0.01)
    assert not s.load_judged and machine.inflight_limit(s, 0.0, p) == 1  # a verdict is due
    machine.settle(s, samples, machine.OK, 0.35, 0, 0.0, now + 0.35, p, admitted_s=now)
    assert s.load_judged and machine.inflight_limit(s, 0.0, p) == 30  # 100/s x 300 ms


def test_after_a_pause_the_first_calls_start_as_on_a_new_account_until_an_answer():
    """The pace known (5 ms: one call in flight at 100/s) may be gone after a pause: until an
    answer tells, calls start as on a new account (inflight_start, then growing with the oldest
    call's age), so two go at once and make the pair in the first round trip (one call, then
    one more, took a round trip longer than a new account's run)."""
    s, samples, now, p = paced(0.005)
    p = dataclasses.replace(p, inflight_start=2)
    assert machine.inflight_limit(s, 0.0, p) == 1
    now += 60.0
    assert machine.acquire(s, 0, 0.0, now, 0.5, p).go
    assert machine.acquire(s, 1, 0.0, now + 0.01, 0.5, p).go  # inflight_start
    assert machine.inflight_limit(s, 0.5, p) == 25  # 100/s x (0.5 - FIRST_ANSWER_S)
    machine.settle(s, samples, machine.OK, 0.3, 0, 0.0, now + 0.3, p, admitted_s=now)
    assert machine.inflight_limit(s, 0.0, p) == 1  # the pace is known again: a verdict is due
    machine.settle(s, samples, machine.OK, 0.3, 0, 0.0, now + 0.31, p, admitted_s=now + 0.01)
    assert s.load_judged and machine.inflight_limit(s, 0.0, p) == 30


def test_a_slow_answer_mid_run_or_a_pause_at_the_same_pace_changes_nothing():
    s, samples, now, p = paced(0.1)
    s.limit = 4
    assert machine.acquire(s, 2, 0.1, now, 0.5, p).go and not s.resumed_at_s  # calls in flight
    now += 0.5
    machine.settle(s, samples, machine.OK, 0.5, 0, 0.0, now, p)  # one slow answer: an outlier
    assert len(samples) == 11 and s.pace_s == 0.1 and s.limit == 4
    now += 60.0
    assert machine.acquire(s, 0, 0.0, now, 0.5, p).go and s.resumed_at_s  # after a pause ...
    now += 0.2
    machine.settle(s, samples, machine.OK, 0.2, 0, 0.0, now, p)  # ... at the same pace
    assert len(samples) == 12 and s.pace_s == 0.1 and s.limit == 4 and not s.resumed_at_s


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
    assert machine.acquire(s, 0, 0.0, 3600.0, 0.5, p).go and s.resumed_at_s
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
    assert machine.acquire(s, 0, 0.0, 10.05, 0.5, fast).go and s.resumed_at_s
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
