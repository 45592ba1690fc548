"""Per-ad-account rate limit (sliding one-second window + penalty) and the usage headers."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

WINDOW_S = 1.0


@dataclass(frozen=True)
class Admission:
    admitted: bool
    in_penalty: bool  # refused because an earlier refusal's penalty is still running


class RateLimiter:
    """Counts admitted upload calls per account; refused calls neither count nor apply."""

    def __init__(self, rate_per_s: float | None, penalty_s: float) -> None:
        self.rate_per_s = rate_per_s
        self.penalty_s = penalty_s
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._penalty_until_s: dict[str, float] = {}

    def configure(self, rate_per_s: float | None, penalty_s: float) -> None:
        with self._lock:
            self.rate_per_s, self.penalty_s = rate_per_s, penalty_s

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._penalty_until_s.clear()

    def admit(self, account: str, now_s: float) -> Admission:
        if self.rate_per_s is None:
            return Admission(admitted=True, in_penalty=False)
        with self._lock:
            if now_s < self._penalty_until_s.get(account, 0.0):
                return Admission(admitted=False, in_penalty=True)
            window = self._window(account, now_s)
            if len(window) + 1 > self.rate_per_s:
                self._penalty_until_s[account] = now_s + self.penalty_s
                return Admission(admitted=False, in_penalty=False)
            window.append(now_s)
            return Admission(admitted=True, in_penalty=False)

    def _window(self, account: str, now_s: float) -> deque[float]:
        window = self._windows.setdefault(account, deque())
        while window and window[0] <= now_s - WINDOW_S:
            window.popleft()
        return window

    def _usage_pct(self, account: str, now_s: float) -> int:
        if self.rate_per_s is None:
            return 0
        if now_s < self._penalty_until_s.get(account, 0.0):
            return 100  # at the wall until the penalty ends
        return min(100, math.floor(len(self._window(account, now_s)) / self.rate_per_s * 100))

    def business_usage(self, account: str | None, now_s: float) -> dict[str, Any]:
        """The X-Business-Use-Case-Usage value: {} when the call names no known account."""
        if account is None:
            return {}
        with self._lock:
            pct = self._usage_pct(account, now_s)
            remaining_s = max(0.0, self._penalty_until_s.get(account, 0.0) - now_s)
        entry = {
            "type": "custom_audience",
            "call_count": pct,
            "total_cputime": pct,
            "total_time": pct,
            "estimated_time_to_regain_access": math.ceil(remaining_s / 60),
            "ads_api_access_tier": "standard_access",
        }
        return {account: [entry]}

    def app_usage(self, now_s: float) -> dict[str, int]:
        """The X-App-Usage value: the busiest account's share (the sandbox has one app)."""
        with self._lock:
            pct = max((self._usage_pct(a, now_s) for a in list(self._windows)), default=0)
        return {"call_count": pct, "total_cputime": pct, "total_time": pct}
