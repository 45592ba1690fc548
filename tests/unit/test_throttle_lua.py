"""gate.lua and the pure machine agree, step by step, on random traffic (real redis-server)."""

from __future__ import annotations

import dataclasses
import random

import pytest
import redis

from audiencesync.settings import Settings
from audiencesync.throttle import machine, policy
from audiencesync.throttle.gate import Gate, params_from

LEASE_TTL_S = 3.0
GAPS_S = (0.0, 0.01, 0.02, 0.05, 0.05, 0.1, 0.3, 1.5)  # between steps: pauses among them


class Model:
    """The pure machine plus the two things Redis keeps beside it: latencies and leases."""

    def __init__(self, p):
        self.p = p
        self.state: machine.State | None = None
        self.samples: list[float] = []
        self.leases: dict[str, float] = {}

    def _state(self, now_s: float) -> machine.State:
        if self.state is None:
            self.state = machine.new_state(now_s, self.p)
        return self.state

    def acquire(
        self, lease: str, now_s: float, max_wait_s: float, past_load_limit: bool
    ) -> machine.Decision:
        s = self._state(now_s)
        self.leases = {k: v for k, v in self.leases.items() if v > now_s}
        oldest_age_s = now_s - (min(self.leases.values()) - LEASE_TTL_S) if self.leases else 0.0
        inflight = len(self.leases)
        decision = machine.acquire(
            s, inflight, oldest_age_s, now_s, max_wait_s, self.p, past_load_limit
        )
        if decision.go:
            self.leases[lease] = now_s + decision.wait_s + LEASE_TTL_S
        return decision

    def settle(self, lease, outcome, latency_s, usage_pct, regain_s, now_s):
        s = self._state(now_s)
        expiry_s = self.leases.pop(lease, None)
        admitted_s = expiry_s - LEASE_TTL_S if expiry_s is not None else 0.0
        signal = (outcome, latency_s, usage_pct, regain_s)
        return machine.settle(s, self.samples, *signal, now_s, self.p, admitted_s)


def run_both(
    r: redis.Redis, p, seed: int, steps: int, gaps_s=GAPS_S, floor_pct: int = 0, regime=60
) -> dict[str, int]:
    """floor_pct: Meta's usage figures lie at or above it (near the wall, for long); regime:
    steps between latency regimes (1: the first two answers may differ enough to strain)."""
    rng, closes = random.Random(seed), random.Random(-seed)
    gate = Gate(r, p, lease_ttl_s=LEASE_TTL_S)
    account = f"test_{seed}"
    gate.reset(account)
    model = Model(p)
    now_s, held = 1_000.0, []
    seen = {"go": 0, "events": set(), "reasons": set(), "limit": set()}
    for step in range(steps):
        slow = (step // regime) % 2  # latency regimes: the soft-throttle verdict flips both ways
        now_s += rng.choice(gaps_s)
        if not held or rng.random() < 0.55:
            lease = f"l{step}"
            max_wait_s = rng.choice([0.0, 0.5])
            close = closes.random() < 0.05  # a session's close
            held_now = len([v for v in model.leases.values() if v > now_s])
            full = model.state is not None and held_now >= machine.inflight_limit(
                model.state, 0.0, p
            )
            want = model.acquire(lease, now_s, max_wait_s, close)
            got = gate.acquire(
                account, lease, max_wait_s=max_wait_s, now_s=now_s, past_load_limit=close
            )
            assert (got.go, got.reason) == (want.go, want.reason), step
            if close and full and got.go:
                seen["limit"].add("a close past the load limit")
            assert got.wait_s == pytest.approx(want.wait_s, rel=1e-9, abs=1e-9)
            if got.go:
                held.append(lease)
                seen["go"] += 1
            seen["reasons"].add(got.reason)
        else:
            lease = held.pop(rng.randrange(len(held)))
            outcome = rng.choices([machine.OK, machine.THROTTLED, machine.OTHER], [30, 1, 2])[0]
            latency_s = rng.choice([None, rng.uniform(0.05, 0.1) * (1 + slow * rng.uniform(2, 6))])
            # Meta reports no usage at first; then whole percent, rising and falling.
            high_pct = 100 if step % 97 < 20 or floor_pct else 60
            usage_pct = float(rng.randint(floor_pct, high_pct)) if step >= 120 else 0.0
            regain_s = rng.choice([0.0, 0.0, 5.0])
            before = dataclasses.replace(model.state) if model.state else None
            kept = len(model.samples)
            want_events, want_episode = model.settle(
                lease, outcome, latency_s, usage_pct, regain_s, now_s
            )
            got = gate.settle(
                account,
                lease,
                outcome,
                latency_s=latency_s,
                usage_pct=usage_pct,
                regain_s=regain_s,
                now_s=now_s,
            )
            assert got.events == want_events, step
            assert got.episode_s == pytest.approx(want_episode, rel=1e-9, abs=1e-9)
            seen["events"].update(got.events)
            if before and model.state.limit != before.limit:
                seen["limit"].add("cut" if model.state.limit < before.limit else "grown")
            if model.state.walls:
                seen["limit"].add("wall")
            if before and before.walls and model.state.walls > before.walls:  # a probe's wall
                on_time = policy.found_on_time(
                    before.wall_probe_s, before.cool_until_s, now_s, before.pace_s, p
                )
                seen["limit"].add("probe on time" if on_time else "probe late")
            if before and not before.load_judged and model.state.load_judged:
                strained = model.state.limit < before.limit
                seen["limit"].add("load judged: strained" if strained else "load judged: fine")
            if len(model.samples) < kept:  # the latencies went: the pace changed
                after_pause = before is not None and before.resumed_at_s > 0
                seen["limit"].add("pace changed after a pause" if after_pause else "pace changed")
        stored = {k.decode(): float(v) for k, v in r.hgetall(Gate.keys(account)[0]).items()}
        assert stored == pytest.approx(dataclasses.asdict(model.state), rel=1e-12, abs=1e-12), step
        latencies = [float(v) for v in r.lrange(Gate.keys(account)[1], 0, -1)]
        assert latencies == model.samples
    snap = gate.snapshot(account, now_s=now_s)
    assert (snap.pace_s, snap.usage_pct) == (model.state.pace_s, model.state.usage_last)
    assert snap.inflight_limit == machine.inflight_limit(model.state, 0.0, p)
    assert snap.inflight == len([v for v in model.leases.values() if v > now_s])
    return seen


def test_lua_and_python_agree_on_random_traffic(redis_url):
    base = params_from(Settings())
    variants = [
        base,
        dataclasses.replace(
            base,
            latency_min_samples=5,
            inflight_start=2,
            rate_per_s=20,
            adapt_interval_s=2.0,
        ),
        dataclasses.replace(base, rate_per_s=2, adapt_interval_s=0.3),
        dataclasses.replace(base, inflight_ceiling=8, usage_target_pct=60.0),
    ]
    walks = [(variants[seed % len(variants)], 400, GAPS_S, 0, 60) for seed in range(6)]
    # One call at a time with no pauses: a change of pace is seen over an interval.
    one_at_a_time = dataclasses.replace(base, inflight_start=1, inflight_ceiling=1)
    walks.append((one_at_a_time, 600, (0.01, 0.02, 0.05, 0.1), 0, 60))
    # Near the wall with long pauses now and then: a probe sent long after it was due.
    walks.append((base, 400, (*GAPS_S, 10.0), 90, 60))
    # Short walks whose latency regime flips every step: the first pair's answer may strain.
    walks += [(base, 100, GAPS_S, 0, 1)] * 8
    r = redis.Redis.from_url(redis_url)
    seen: dict[str, set] = {"events": set(), "reasons": set(), "limit": set()}
    for seed, (p, steps, gaps_s, floor_pct, regime) in enumerate(walks):
        walk = run_both(r, p, seed, steps, gaps_s, floor_pct, regime)
        assert walk["go"] > steps // 20  # not stuck
        seen["events"] |= walk["events"]
        seen["reasons"] |= walk["reasons"]
        seen["limit"] |= walk["limit"]
    # The walks went through every branch worth comparing.
    assert seen["reasons"] == {"go", "cooldown", "rate", "inflight", "budget"}
    # The load limit at interval verdicts, a cool-down at the wall, probes found it again (sent
    # on time or late), a change of pace (seen in an interval, and by the first answer after a
    # pause), the verdict of a call sent alongside another on what load does to the pace, a
    # session's close let past a full load limit.
    assert seen["limit"] == {
        "a close past the load limit",
        "load judged: strained",
        "load judged: fine",
        "cut",
        "grown",
        "wall",
        "probe on time",
        "probe late",
        "pace changed",
        "pace changed after a pause",
    }
    assert seen["events"] == {
        machine.THROTTLE_STARTED,
        machine.THROTTLE_ENDED,
        machine.SOFT_STARTED,
        machine.SOFT_ENDED,
    }
