"""Where a throttled run's time goes: the gate's state and every call's send time, sampled.

A thread polls the account's gate keys (gate.py) every POLL_S on Redis's clock: the hash gives
the adapted rate and in-flight limit, the leases sorted set gives each call's send time (a
lease's score is its send time plus the lease's time to live). `bench.throttle --trace` prints
the timeline per second of the run: calls sent, rate and limit at the second's end.
"""

from __future__ import annotations

import threading
from collections import Counter

import redis

from audiencesync.throttle.gate import Gate

POLL_S = 0.01


class Trace:
    def __init__(self, redis_url: str, account: str, lease_ttl_s: float) -> None:
        self.r = redis.Redis.from_url(redis_url)
        self.state_key, _, self.leases_key = Gate.keys(account)
        self.lease_ttl_s = lease_ttl_s
        self.sends: dict[bytes, float] = {}
        self.states: list[tuple[float, float, int]] = []  # (time, rate, limit)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _now(self) -> float:
        seconds, micros = self.r.time()
        return seconds + micros / 1e6

    def __enter__(self) -> Trace:
        self.started_s = self._now()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            now_s = self._now()
            for lease, score in self.r.zrange(self.leases_key, 0, -1, withscores=True):
                self.sends.setdefault(lease, score - self.lease_ttl_s)
            rate, limit = self.r.hmget(self.state_key, "rate_per_s", "limit")
            if rate is not None:
                self.states.append((now_s, float(rate), int(float(limit))))

    def timeline(self) -> list[dict]:
        """Per second since the upload started: calls sent, then rate and limit at its end."""
        per_second = Counter(int(t - self.started_s) for t in self.sends.values())
        rows, state_i, rate, limit = [], 0, 0.0, 0
        for second in range(max(per_second, default=-1) + 1):
            while state_i < len(self.states) and self.states[state_i][0] < (
                self.started_s + second + 1
            ):
                _, rate, limit = self.states[state_i]
                state_i += 1
            rows.append({"s": second, "calls": per_second[second], "rate": round(rate, 2),
                         "limit": limit})  # fmt: skip
        return rows

    def first_send_s(self) -> float:
        return min(self.sends.values(), default=self.started_s) - self.started_s
