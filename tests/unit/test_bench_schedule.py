"""bench.schedule: the best schedule each budget model allows, a pair's cost (pure arithmetic)."""

from __future__ import annotations

import math

import pytest

from bench.schedule import Score, Window, best_schedule_s, call_times_s, pair_cost_s

ENDLESS = math.inf


def test_window_spends_the_budget_at_once_then_waits_for_calls_to_age_out() -> None:
    # The rolling window: 120 calls per 30 s; 200 calls (2M IDs).
    times = call_times_s(200, Window(120, 30.0), ENDLESS)
    assert times[:120] == [0.0] * 120 and times[120:] == [30.0] * 80
    assert best_schedule_s(200, Window(120, 30.0), ENDLESS, latency_s=0.2) == pytest.approx(30.2)
    assert best_schedule_s(120, Window(120, 30.0), ENDLESS, latency_s=0.2) == pytest.approx(0.2)
    assert best_schedule_s(241, Window(120, 30.0), ENDLESS, latency_s=0.0) == pytest.approx(60.0)


def test_window_at_a_finite_full_speed_frees_slots_one_by_one() -> None:
    times = call_times_s(5, Window(2, 10.0), full_speed_per_s=1.0)
    assert times == pytest.approx([0.0, 1.0, 10.0, 11.0, 20.0])
    slow = call_times_s(5, Window(100, 10.0), full_speed_per_s=2.0)  # never binds
    assert slow == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])


def test_score_bursts_what_it_holds_then_goes_at_its_refill_rate() -> None:
    # 300 points over 20 s, 3 a write: a burst of 100 writes, then 5 writes/s.
    model = Score(max_points=300, decay_s=20, write_points=3)
    times = call_times_s(200, model, ENDLESS)
    assert times[:100] == [0.0] * 100
    assert times[100] == pytest.approx(0.2) and times[101] == pytest.approx(0.4)
    assert best_schedule_s(200, model, ENDLESS, latency_s=0.0) == pytest.approx(20.0)
    # Meta's standard tier: 9,000 points / 300 s, 3 a write: 3,000 writes, then 10 writes/s.
    meta = Score(max_points=9_000, decay_s=300, write_points=3)
    assert best_schedule_s(4_000, meta, ENDLESS, latency_s=1.5) == pytest.approx(101.5)


def test_score_that_never_binds_goes_at_full_speed() -> None:
    model = Score(max_points=300, decay_s=20, write_points=3)
    times = call_times_s(400, model, full_speed_per_s=4.0)  # under the 5 writes/s refill
    assert times == pytest.approx([k / 4.0 for k in range(400)])
    assert best_schedule_s(0, model, 4.0, latency_s=1.0) == 0.0


def test_a_pair_costs_what_the_second_call_waits_beyond_queueing_behind_the_first() -> None:
    # Scenario B: 100 ms, plus 300 ms per other call in flight. In series: answers at 0.1 and
    # 0.2 s; as a pair: 0.1 and 0.4 s, and the next call goes 0.2 s later.
    assert pair_cost_s(0.1, 0.3) == pytest.approx(0.2)
    assert pair_cost_s(1.5, 0.0) == 0.0  # load costs nothing: a pair is no loss
    assert pair_cost_s(0.2, 0.1) == 0.0
