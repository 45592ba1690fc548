"""When to try a failed upload again, and after how long: an immutable policy of pure functions."""

from __future__ import annotations

import random
from dataclasses import dataclass

from audiencesync.errors import (
    AudienceSyncError,
    RetryableGraphError,
    ThrottledError,
)
from audiencesync.settings import Settings

DEFER_JITTER = 0.1  # share of a gate's wait added at random, so a fleet does not return at once
DEFER_JITTER_MIN_S = 0.05
DEFER_JITTER_MAX_S = 0.25  # ... but all within this: the gate lets them through one by one


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 1.0  # first backoff ceiling
    cap_s: float = 300.0  # no single wait is longer (waited out in hops: workers/leased.py)
    max_attempts: int = 10  # calls in all, the first included
    budget_s: float = 1800.0  # give up once this long has passed since the first call

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            settings.retry_base_s,
            settings.retry_cap_s,
            settings.retry_max_attempts,
            settings.retry_budget_s,
        )

    def should_retry(self, error: AudienceSyncError, *, attempt: int, elapsed_s: float) -> bool:
        """attempt counts the calls made so far (1 after the first call failed)."""
        if not isinstance(error, RetryableGraphError):
            return False
        return attempt < self.max_attempts and elapsed_s < self.budget_s

    def delay_s(self, error: AudienceSyncError, *, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with "equal" jitter (half the ceiling, plus up to half at random):
        the retries of a chunk span a known least time (an outage they outlast), which full
        jitter does not promise; never sooner than Meta's own regain estimate."""
        ceiling_s = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        delay = rng.uniform(ceiling_s / 2, ceiling_s)
        if isinstance(error, ThrottledError) and error.retry_after_s:
            # Waiting less than Meta asked only earns another refusal; jitter spreads the herd.
            delay = min(self.cap_s, error.retry_after_s + rng.uniform(0.0, self.base_s))
        return delay

    def defer_s(self, wait_s: float, *, rng: random.Random) -> float:
        """Countdown for a call the throttle gate holds back (not a failed attempt): its wait
        plus a little jitter, capped at cap_s like every countdown (a longer cool-down is
        waited out in several turns)."""
        jitter_s = rng.uniform(
            0.0, min(DEFER_JITTER * wait_s + DEFER_JITTER_MIN_S, DEFER_JITTER_MAX_S)
        )
        return min(self.cap_s, wait_s + jitter_s)
