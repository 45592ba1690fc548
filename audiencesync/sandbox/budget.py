"""Meta's rate-limit models per ad account, as pure arithmetic over a clock the caller passes.

Each model answers three questions about an account at a time `now_s`: would it admit a call
(`check`; `read`: a read of the audience, else an upload), what the call did to it (`record`:
admitted or refused, and by which model), and what Meta's usage header says (`usage_pct`,
`regain_s`). limits.Limits combines the models in force; no model knows HTTP or faults.

- Bucket: the lab's one-second window of uploads (`rate_per_s`, `penalty_s`): refused calls
  neither count nor apply; a refusal refuses every upload of the account for penalty_s. Reads
  pass untouched (the lab's case, not Meta's).
- RollingWindow: Meta's custom_audience budget: at most `calls` in any rolling `window_s`, reads
  and uploads alike, and refused calls enter the window too ("continuing to make calls will ...
  increase the time before calls will be successful again").
- Score: Meta's Marketing API score: each write adds `write_points`, each read `read_points`, the
  score decays linearly by max_points per decay_s; a call that would take it over max_points is
  refused and blocks the account for block_s. Refused calls add no points and do not extend a
  block: graph-api-facts.md documents counting refused calls for the custom_audience budget only.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol


class Model(Protocol):
    def check(self, account: str, now_s: float, *, read: bool = False) -> bool: ...
    def record(
        self, account: str, now_s: float, *, admitted: bool, refused_here: bool, read: bool = False
    ) -> None: ...
    def usage_pct(self, account: str, now_s: float) -> int: ...
    def regain_s(self, account: str, now_s: float) -> float: ...
    def blocked(self, account: str, now_s: float) -> bool: ...


def pct(used: float, allowed: float) -> int:
    """Meta's usage figures are whole percentages (may pass 100 when refused calls count)."""
    return math.floor(used * 100 / allowed + 1e-9)


class Bucket:
    WINDOW_S = 1.0

    def __init__(self, rate_per_s: float, penalty_s: float) -> None:
        self.rate_per_s, self.penalty_s = rate_per_s, penalty_s
        self._windows: dict[str, deque[float]] = {}
        self._penalty_until_s: dict[str, float] = {}

    def _window(self, account: str, now_s: float) -> deque[float]:
        window = self._windows.setdefault(account, deque())
        while window and window[0] <= now_s - self.WINDOW_S:
            window.popleft()
        return window

    def blocked(self, account: str, now_s: float) -> bool:
        return now_s < self._penalty_until_s.get(account, 0.0)

    def check(self, account: str, now_s: float, *, read: bool = False) -> bool:
        full = len(self._window(account, now_s)) + 1 > self.rate_per_s
        return read or (not self.blocked(account, now_s) and not full)

    def record(
        self, account: str, now_s: float, *, admitted: bool, refused_here: bool, read: bool = False
    ) -> None:
        if read:
            return
        if admitted:
            self._window(account, now_s).append(now_s)
        elif refused_here and not self.blocked(account, now_s):
            self._penalty_until_s[account] = now_s + self.penalty_s

    def usage_pct(self, account: str, now_s: float) -> int:
        if self.blocked(account, now_s):
            return 100  # at the wall until the penalty ends
        return min(100, pct(len(self._window(account, now_s)), self.rate_per_s))

    def regain_s(self, account: str, now_s: float) -> float:
        return max(0.0, self._penalty_until_s.get(account, 0.0) - now_s)


class RollingWindow:
    def __init__(self, calls: int, window_s: float) -> None:
        self.calls, self.window_s = calls, window_s
        self._times: dict[str, deque[float]] = {}

    def _window(self, account: str, now_s: float) -> deque[float]:
        times = self._times.setdefault(account, deque())
        while times and times[0] <= now_s - self.window_s:
            times.popleft()
        return times

    def blocked(self, account: str, now_s: float) -> bool:
        return False  # a full window is not a block: it frees up as calls age out

    def check(self, account: str, now_s: float, *, read: bool = False) -> bool:
        return len(self._window(account, now_s)) < self.calls

    def record(
        self, account: str, now_s: float, *, admitted: bool, refused_here: bool, read: bool = False
    ) -> None:
        self._window(account, now_s).append(now_s)  # refused calls count too, reads alike

    def usage_pct(self, account: str, now_s: float) -> int:
        return pct(len(self._window(account, now_s)), self.calls)

    def regain_s(self, account: str, now_s: float) -> float:
        """Until enough calls age out that the next one is admitted: the (n - calls)-th oldest."""
        times = self._window(account, now_s)
        if len(times) < self.calls:
            return 0.0
        return times[len(times) - self.calls] + self.window_s - now_s


class Score:
    def __init__(
        self,
        max_points: float,
        decay_s: float,
        write_points: float,
        block_s: float,
        read_points: float = 1.0,
    ) -> None:
        self.max_points, self.decay_s = max_points, decay_s
        self.write_points, self.block_s, self.read_points = write_points, block_s, read_points
        self._points: dict[str, tuple[float, float]] = {}  # account -> (points, at_s)
        self._blocked_until_s: dict[str, float] = {}

    def points(self, account: str, now_s: float) -> float:
        points, at_s = self._points.get(account, (0.0, now_s))
        return max(0.0, points - self.max_points / self.decay_s * max(0.0, now_s - at_s))

    def blocked(self, account: str, now_s: float) -> bool:
        return now_s < self._blocked_until_s.get(account, 0.0)

    def _cost(self, read: bool) -> float:
        return self.read_points if read else self.write_points

    def check(self, account: str, now_s: float, *, read: bool = False) -> bool:
        over = self.points(account, now_s) + self._cost(read) > self.max_points + 1e-9
        return not self.blocked(account, now_s) and not over

    def record(
        self, account: str, now_s: float, *, admitted: bool, refused_here: bool, read: bool = False
    ) -> None:
        points = self.points(account, now_s)
        if admitted:
            points += self._cost(read)
        elif refused_here and not self.blocked(account, now_s):
            self._blocked_until_s[account] = now_s + self.block_s
        self._points[account] = (points, now_s)

    def usage_pct(self, account: str, now_s: float) -> int:
        used = pct(self.points(account, now_s), self.max_points)
        return max(used, 100) if self.blocked(account, now_s) else used

    def regain_s(self, account: str, now_s: float) -> float:
        return max(0.0, self._blocked_until_s.get(account, 0.0) - now_s)


def regain_minutes(regain_s: float) -> int:
    """estimated_time_to_regain_access: whole minutes, rounded up, at least 1 when waiting."""
    return max(1, math.ceil(regain_s / 60 - 1e-9)) if regain_s > 0 else 0
