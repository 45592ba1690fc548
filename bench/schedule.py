"""The best schedule a budget model allows: the yardstick bench.throttle prints beside each run;
and the least a new account's run pays to learn that load slows the destination.

Spend what the budget holds at full speed, then go at its refill rate, never into a refusal.
Pure: the call times are computed, not measured. `full_speed_per_s` is how fast calls could go
if the budget were endless (calls in flight / latency); the last call's latency ends the run.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """At most `calls` per rolling `window_s` (Meta's custom_audience budget)."""

    calls: int
    window_s: float


@dataclass(frozen=True)
class Score:
    """`max_points` decaying over `decay_s`, `write_points` per call (Meta's score model)."""

    max_points: float
    decay_s: float
    write_points: float


def call_times_s(calls: int, model: Window | Score, full_speed_per_s: float) -> list[float]:
    """When each call starts in the best schedule (the first at 0)."""
    if calls <= 0:
        return []
    spacing_s = 0.0 if math.isinf(full_speed_per_s) else 1 / full_speed_per_s
    times: list[float] = []
    if isinstance(model, Window):
        recent: deque[float] = deque()  # the last `calls` starts
        for k in range(calls):
            t = max(k * spacing_s, times[-1] if times else 0.0)
            if len(recent) == model.calls:
                t = max(t, recent.popleft() + model.window_s)  # the oldest has aged out
            recent.append(t)
            times.append(t)
        return times
    decay_per_s = model.max_points / model.decay_s
    points, last_s = 0.0, 0.0
    for k in range(calls):
        t = max(k * spacing_s, last_s)
        points = max(0.0, points - decay_per_s * (t - last_s))
        over = points + model.write_points - model.max_points
        if over > 0:  # wait until enough has decayed for this write
            t += over / decay_per_s
            points -= over
        points += model.write_points
        last_s = t
        times.append(t)
    return times


def best_schedule_s(
    calls: int, model: Window | Score, full_speed_per_s: float, latency_s: float
) -> float:
    """The shortest time `calls` calls can take within the model: the last start + latency."""
    times = call_times_s(calls, model, full_speed_per_s)
    return (times[-1] + latency_s) if times else 0.0


def pair_cost_s(latency_s: float, per_inflight_s: float) -> float:
    """What learning that load hurts costs at least, against a limit of 1 known beforehand.

    A destination answering in latency_s plus per_inflight_s for each other call in flight:
    a detector must have two calls in flight once. The second is answered after latency_s +
    per_inflight_s instead of 2 x latency_s behind the first, and the next call waits for it.
    """
    return max(per_inflight_s - latency_s, 0.0)
