"""The sandbox's rate-limit models and usage headers as arithmetic (fake clock, no HTTP)."""

from __future__ import annotations

import pytest

from audiencesync.sandbox.budget import Bucket, RollingWindow, Score, regain_minutes
from audiencesync.sandbox.config import SandboxConfig
from audiencesync.sandbox.limits import Limits


def admit(model: Bucket | RollingWindow | Score, now_s: float, account: str = "a") -> bool:
    """What limits.Limits does with one model in force."""
    ok = model.check(account, now_s)
    model.record(account, now_s, admitted=ok, refused_here=not ok)
    return ok


def test_regain_is_whole_minutes_rounded_up_and_at_least_one() -> None:
    assert [regain_minutes(s) for s in (0.0, 0.2, 59.9, 60.0, 60.1, 3599.0)] == [0, 1, 1, 1, 2, 60]


def test_window_refuses_past_its_calls_and_counts_refused_calls_too() -> None:
    window = RollingWindow(calls=3, window_s=10.0)
    assert [admit(window, t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert window.usage_pct("a", 2.0) == 100
    assert window.regain_s("a", 2.0) == pytest.approx(8.0)  # the call at 0 ages out at 10
    assert not admit(window, 3.0)  # refused, and now in the window
    assert window.usage_pct("a", 3.0) == 133  # whole percent, past 100
    assert window.regain_s("a", 3.0) == pytest.approx(8.0)  # 0 and 1 must age out: at 11
    assert not admit(window, 10.5)  # 0 aged out, but 1, 2 and the refused 3 are still in
    assert admit(window, 10.5, account="b")  # per account
    assert admit(window, 12.5)  # 1 and 2 aged out: the refused 3 and 10.5 remain
    assert not admit(window, 12.9)
    # The refused 10.5 holds the account back: without it, 12.5 would be the one to wait for.
    assert window.regain_s("a", 12.9) == pytest.approx(10.5 + 10.0 - 12.9)
    assert window.usage_pct("a", 12.9) == 133


def test_window_frees_up_when_calls_age_out_and_never_blocks() -> None:
    window = RollingWindow(calls=2, window_s=5.0)
    assert admit(window, 0.0) and admit(window, 0.0) and not admit(window, 1.0)
    assert not window.blocked("a", 1.0)
    assert window.regain_s("a", 1.0) == pytest.approx(4.0)  # both calls at 0 leave at 5 ...
    assert admit(window, 5.0)  # ... leaving only the refused one at 1
    assert window.usage_pct("a", 5.0) == 100 and window.regain_s("a", 5.0) == pytest.approx(1.0)


def test_score_decays_linearly_refuses_over_max_and_blocks() -> None:
    score = Score(max_points=30, decay_s=10, write_points=3, block_s=4)  # 3 points/s decay
    assert all(admit(score, 0.0) for _ in range(10))  # 30 points: full
    assert score.usage_pct("a", 0.0) == 100
    assert score.usage_pct("a", 5.0) == 50  # 15 points decayed
    assert admit(score, 1.0)  # 27 + 3 = 30: allowed
    assert not admit(score, 1.0)  # 33 > 30: refused, blocked until 5
    assert score.blocked("a", 4.9) and score.regain_s("a", 1.0) == pytest.approx(4.0)
    assert not admit(score, 3.0)  # in the block: refused, adds no points, no longer block
    assert score.points("a", 3.0) == pytest.approx(24.0)
    assert score.regain_s("a", 3.0) == pytest.approx(2.0)
    assert score.usage_pct("a", 3.0) == 100  # at the wall while blocked
    assert admit(score, 5.0)  # block over, 18 + 3 points
    assert score.usage_pct("a", 5.0) == 70 and score.regain_s("a", 5.0) == 0.0


def test_limits_combine_models_report_the_highest_and_hide_the_header_at_first() -> None:
    config = SandboxConfig(
        budget_calls=5, budget_window_s=60, score_max=9, write_points=3, score_decay_s=300
    )
    limits = Limits(config)  # the score binds first: 3 writes, then 9 points
    for _ in range(3):
        limits.count_call("a")
        assert limits.business_usage("a", 0.0) is None  # the first 3 calls: no header
    assert [limits.admit("a", 0.0).admitted for _ in range(3)] == [True, True, True]
    refused = limits.admit("a", 0.0)
    assert (refused.admitted, refused.by, refused.in_penalty) == (False, "score", False)
    assert refused.fault().code == 613 and refused.fault().subcode == 1487742
    assert limits.admit("a", 1.0).in_penalty  # blocked: every call refused
    limits.count_call("a")
    limits.admit("a", 1.0)
    entry = limits.business_usage("a", 1.0)["a"][0]  # the window: 6 calls of 5 = 120 %
    assert entry["call_count"] == entry["total_time"] == 120
    assert entry["estimated_time_to_regain_access"] == 1
    assert limits.business_usage(None, 1.0) == {}


def test_window_refusal_is_metas_80003_and_changed_knobs_start_fresh() -> None:
    limits = Limits(SandboxConfig(budget_calls=1, budget_window_s=3600))
    assert limits.admit("a", 0.0).admitted
    refused = limits.admit("a", 1.0)
    assert refused.by == "window" and refused.fault().code == 80003
    assert refused.fault().subcode == 2446079
    limits.configure(SandboxConfig(budget_calls=1, budget_window_s=3600, latency_ms=5))
    assert not limits.admit("a", 2.0).admitted  # same budget: its state is kept
    limits.configure(SandboxConfig(budget_calls=5, budget_window_s=3600))
    assert limits.admit("a", 3.0).admitted  # a new budget starts empty
    limits.configure(SandboxConfig())
    assert all(limits.admit("a", 4.0).admitted for _ in range(100))  # no model in force


def test_a_read_costs_its_points_counts_in_the_window_and_passes_the_labs_bucket() -> None:
    score = Score(max_points=5, decay_s=1000, write_points=3, block_s=4, read_points=1)
    assert admit(score, 0.0) and score.check("a", 0.0, read=True)
    score.record("a", 0.0, admitted=True, refused_here=False, read=True)
    assert score.points("a", 0.0) == pytest.approx(4.0)  # a write (3) and a read (1)
    assert not score.check("a", 0.0) and score.check("a", 0.0, read=True)
    window = RollingWindow(calls=2, window_s=60.0)
    window.record("a", 0.0, admitted=True, refused_here=False, read=True)
    assert admit(window, 0.0) and not window.check("a", 0.0, read=True)
    bucket = Bucket(rate_per_s=1, penalty_s=2.0)
    assert admit(bucket, 0.0) and bucket.check("a", 0.0, read=True)
    bucket.record("a", 0.0, admitted=True, refused_here=False, read=True)
    assert bucket.usage_pct("a", 0.0) == 100  # the upload alone fills it
