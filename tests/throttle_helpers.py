"""Params for the throttle's pure unit tests (tests/unit/test_throttle_policy.py and
test_throttle_latency.py)."""

from __future__ import annotations

from audiencesync.settings import Settings
from audiencesync.throttle.gate import params_from

P = params_from(Settings(throttle_rate_per_s=5, throttle_inflight_start=1))
# 5 calls/s, target 95 %, cool-down 2 s doubling, in flight: start 1, floor 1, ceiling 128
