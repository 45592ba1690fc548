"""Error classification, usage headers and the retry policy: pure functions."""

import random

import orjson
import pytest

from audiencesync.errors import (
    PermanentGraphError,
    ThrottledError,
    TokenError,
    TransientError,
)
from audiencesync.graph import RetryPolicy, Usage, classify_error, parse_usage
from audiencesync.graph.retry import DEFER_JITTER_MAX_S


def body(code, subcode=None, **extra):
    return orjson.dumps(
        {
            "error": {
                "message": "m",
                "code": code,
                "error_subcode": subcode,
                "fbtrace_id": "T",
                **extra,
            }
        }
    )


@pytest.mark.parametrize(
    ("status", "code", "subcode", "kind"),
    [
        (400, 80003, 2446079, ThrottledError),
        (400, 17, None, ThrottledError),
        (400, 613, None, ThrottledError),
        (400, 100, 1487742, ThrottledError),
        (400, 190, 463, TokenError),
        (400, 102, None, TokenError),
        (500, 1, None, TransientError),
        (500, 2, None, TransientError),
        (400, 368, None, TransientError),
        (503, 999, None, TransientError),
        (400, 100, 33, PermanentGraphError),
        (400, 200, None, PermanentGraphError),
        (400, 2650, 1870147, PermanentGraphError),
    ],
)
def test_classification(status, code, subcode, kind):
    err = classify_error(status, body(code, subcode), Usage())
    assert type(err) is kind
    assert err.code == code and err.subcode == subcode and err.fbtrace_id == "T"


def test_non_json_answers():
    assert isinstance(classify_error(502, b"<html>", Usage()), TransientError)
    assert type(classify_error(404, b"<html>", Usage())) is PermanentGraphError


def test_is_transient_flag_makes_unknown_codes_retryable():
    assert isinstance(classify_error(400, body(9999, is_transient=True), Usage()), TransientError)


def test_throttle_carries_metas_regain_estimate():
    err = classify_error(400, body(80003), Usage(max_pct=100, regain_s=120))
    assert isinstance(err, ThrottledError) and err.retry_after_s == 120


def test_usage_headers():
    headers = {
        "x-business-use-case-usage": orjson.dumps(
            {
                "1001": [
                    {
                        "type": "custom_audience",
                        "call_count": 42,
                        "total_cputime": 7,
                        "total_time": 91,
                        "estimated_time_to_regain_access": 3,
                    }
                ]
            }
        ).decode(),
        "x-app-usage": '{"call_count": 12, "total_cputime": 1, "total_time": 1}',
    }
    assert parse_usage(headers) == Usage(max_pct=91, regain_s=180)
    assert parse_usage({"x-business-use-case-usage": "{broken"}) == Usage()
    assert parse_usage({}) == Usage()


def test_retry_policy_backoff_is_bounded_full_jitter():
    policy = RetryPolicy(base_s=1, cap_s=8, max_attempts=5, budget_s=100)
    rng = random.Random(1)
    err = TransientError("t")
    for attempt in range(1, 10):
        delays = [policy.delay_s(err, attempt=attempt, rng=rng) for _ in range(200)]
        ceiling = min(8, 2 ** (attempt - 1))
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # full jitter spreads over the whole range


def test_retry_policy_honours_regain_and_stops():
    policy = RetryPolicy(base_s=1, cap_s=300, max_attempts=3, budget_s=60)
    throttled = ThrottledError("t", retry_after_s=120)
    assert 120 <= policy.delay_s(throttled, attempt=1, rng=random.Random(0)) <= 121
    assert policy.should_retry(throttled, attempt=2, elapsed_s=10)
    assert not policy.should_retry(throttled, attempt=3, elapsed_s=10)
    assert not policy.should_retry(throttled, attempt=1, elapsed_s=61)
    assert not policy.should_retry(TokenError("t"), attempt=1, elapsed_s=0)
    assert not policy.should_retry(PermanentGraphError("p"), attempt=1, elapsed_s=0)


def test_a_deferral_returns_within_a_quarter_second_of_the_gates_wait():
    """Spread so a fleet does not come back at once, but never by seconds: after a 16 s
    cool-down the waiting calls are all back within DEFER_JITTER_MAX_S, not over 1.6 s."""
    policy, rng = RetryPolicy(), random.Random(3)
    for wait_s in (0.05, 1.0, 16.0, 60.0):
        countdowns = [policy.defer_s(wait_s, rng=rng) for _ in range(500)]
        assert all(wait_s <= c <= wait_s + DEFER_JITTER_MAX_S for c in countdowns)
        assert max(countdowns) - min(countdowns) > 0.5 * min(DEFER_JITTER_MAX_S, 0.1 * wait_s)
