"""The gate's Python face and the guard around one call, against a real redis-server."""

from __future__ import annotations

import dataclasses
import logging
import random
import secrets
import threading
import time

import pytest
import redis

from audiencesync.cli import devstack
from audiencesync.errors import Deferred, ThrottledError, TransientError
from audiencesync.graph import RetryPolicy, UploadResult, Usage
from audiencesync.settings import Settings
from audiencesync.store.runs import RunStore
from audiencesync.throttle import machine
from audiencesync.throttle.gate import Gate, account_key, params_from
from audiencesync.throttle.guard import Guard


@pytest.fixture
def r(redis_url):
    return redis.Redis.from_url(redis_url)


def new_gate(r, lease_ttl_s: float = 70.0, **params) -> tuple[Gate, str]:
    p = dataclasses.replace(params_from(Settings()), **params)
    return Gate(r, p, lease_ttl_s=lease_ttl_s), f"t_{secrets.token_hex(4)}"


def test_enter_sleeps_a_short_wait_and_defers_a_long_one(r):
    gate, account = new_gate(r, rate_per_s=4.0, inflight_start=8)
    slept: list[float] = []
    gate.enter(account, sleep=slept.append)
    gate.enter(account, sleep=slept.append)  # the next token is 0.25 s away: sleep, then go
    gate.enter(account, sleep=slept.append)
    with pytest.raises(Deferred) as deferred:  # 0.75 s away: more than max_wait_s
        gate.enter(account, sleep=slept.append)
    assert deferred.value.reason == "rate" and 0.2 < deferred.value.wait_s < 0.3
    assert slept == pytest.approx([0.25, 0.5], abs=0.02)


def test_a_throttle_answer_meanwhile_defers_a_caller_who_slept_for_its_turn(r):
    gate, account = new_gate(r, rate_per_s=4.0, inflight_start=2)
    gate.enter(account)
    refused, _ = gate.enter(account)  # a call that will come back refused

    def meanwhile(wait_s: float) -> None:
        gate.settle(account, refused, machine.THROTTLED, regain_s=0.0)

    with pytest.raises(Deferred) as deferred:
        gate.enter(account, sleep=meanwhile)
    assert deferred.value.reason == "cooldown" and deferred.value.wait_s > 1.5
    assert gate.snapshot(account).inflight == 1  # its lease went back


def test_a_killed_workers_slot_comes_back_when_its_lease_expires(r):
    gate, account = new_gate(r, lease_ttl_s=0.3, inflight_start=1, inflight_ceiling=1)
    gate.enter(account)  # ... and never settled: the worker died
    with pytest.raises(Deferred) as deferred:
        gate.enter(account, sleep=lambda s: None)
    assert deferred.value.reason == "inflight"
    lease, _ = gate.enter(account, sleep=time.sleep)  # waits out the lease
    assert lease and gate.snapshot(account).inflight == 1


def test_guard_reports_an_episode_once_logs_it_and_counts_it_for_the_run(r, caplog):
    store = RunStore(r)
    run_id = f"run-{secrets.token_hex(3)}"
    store.create_run(run_id, {"audience_id": "42", "started_at": 0})
    gate, account = new_gate(r, rate_per_s=100, cooldown_base_s=0.2)
    guard = Guard(gate, store, run_id, account)
    caplog.set_level(logging.INFO, logger="audiencesync.throttle")

    def refused():
        raise ThrottledError("too many calls", code=80003)

    with pytest.raises(ThrottledError):
        guard.send(guard.enter(), refused)
    assert guard.cool_wait_s == pytest.approx(0.2, abs=0.05)
    with pytest.raises(Deferred):
        guard.enter()
    with pytest.raises(TransientError):  # any other failure just frees the lease
        guard.send(enter_once_cooled(guard), _fails)
    sent = UploadResult(10, 0, usage=Usage(max_pct=12.0), latency_s=0.1)
    assert guard.send(guard.enter(), lambda: sent) is sent
    meta = store.meta(run_id)
    assert float(meta["throttle_events"]) == 1 and float(meta["throttle_cooldown_s"]) >= 0.2
    lines = [rec.getMessage() for rec in caplog.records]
    assert sum(f"run={run_id} throttling started on {account}" in m for m in lines) == 1
    assert sum(f"run={run_id} throttling ended on {account}" in m for m in lines) == 1
    assert gate.snapshot(account).inflight == 0


def test_time_waiting_for_metas_budget_is_counted_for_the_run(r):
    """A figure of 80 % at 10 % a call leaves room for one call in flight, no more: the caller
    polls, then is deferred, and the run's budget_wait_s says how long it waited."""
    store = RunStore(r)
    run_id = f"run-{secrets.token_hex(3)}"
    store.create_run(run_id, {"audience_id": "42", "started_at": 0})
    gate, account = new_gate(r, inflight_start=8)
    for usage in (10.0, 20.0, 80.0):
        lease, _ = gate.enter(account)
        gate.settle(account, lease, machine.OK, latency_s=0.1, usage_pct=usage)
    gate.enter(account)  # 80 + 10 <= 95: this one goes and stays in flight
    with pytest.raises(Deferred) as deferred:
        Guard(gate, store, run_id, account).enter()
    assert deferred.value.reason == "budget"
    snap = gate.snapshot(account)
    assert (snap.budget_calls, snap.usage_pct) == (10, 80.0)
    assert float(store.meta(run_id)["budget_wait_s"]) >= gate.max_wait_s


def _fails():
    raise TransientError("boom")


def test_account_key_prefers_the_ad_account():
    assert account_key("act_77", "9") == "act_77"
    assert account_key("", "9") == "aud_9"


def test_every_gate_countdown_stays_below_the_visibility_timeout():
    settings = Settings(throttle_cooldown_max_s=86_400)  # a cool-down longer than any countdown
    policy = RetryPolicy(settings.retry_base_s, settings.retry_cap_s)
    rng = random.Random(1)
    for wait_s in [0.0, 0.05, 3.0, 299.0, 3_600.0, 86_400.0]:
        countdown_s = policy.defer_s(wait_s, rng=rng)
        assert min(wait_s, settings.retry_cap_s) <= countdown_s <= settings.retry_cap_s
        assert countdown_s < settings.visibility_timeout_s


def test_settings_refuse_inconsistent_throttle_ranges():
    with pytest.raises(ValueError, match="floor <= start <= ceiling"):
        Settings(throttle_inflight_floor=10)
    with pytest.raises(ValueError, match="less than 100"):
        Settings(throttle_usage_target_pct=100)


def enter_once_cooled(guard: Guard, timeout_s: float = 10.0):
    """The guard's lease as soon as the account's cool-down lets it through."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return guard.enter()
        except Deferred as wait:
            assert time.monotonic() < deadline, f"still cooling down after {timeout_s}s"
            time.sleep(min(wait.wait_s, 0.05))


def test_a_sessions_close_goes_when_every_slot_is_taken(r):
    """A replace's adds hold every in-flight slot: another call waits, then is deferred; the
    session's close goes (late, it could miss Meta's window)."""
    store = RunStore(r)
    gate, account = new_gate(r, inflight_start=1, inflight_ceiling=1)
    guard = Guard(gate, store, "run-close", account)
    gate.enter(account)  # the only slot, held
    with pytest.raises(Deferred) as deferred:
        gate.enter(account, sleep=lambda s: None)
    assert deferred.value.reason == "inflight"
    guard.enter(past_load_limit=True)
    assert gate.snapshot(account).inflight == 2


def test_a_caller_waiting_for_a_slot_is_woken_by_the_settle_that_frees_it(r):
    """A settle in the same process ends the wait at once, far inside its timeout; then the
    waiter takes the freed slot."""
    gate, account = new_gate(r, inflight_start=1, inflight_ceiling=1)
    held, _ = gate.enter(account)
    woken: list[bool] = []
    waiter = threading.Thread(
        target=lambda: woken.append(gate.wait_for_settle(account, 120.0) is None)
    )
    waiter.start()
    devstack.wait_until(lambda: _waiting(gate, account), 10, "the waiter never waited")
    gate.settle(account, held, machine.OK, latency_s=0.1)
    waiter.join(timeout=60)  # without the wake-up it would wait 120 s
    assert woken == [True]
    lease, _ = gate.enter(account)
    assert lease != held and gate.snapshot(account).inflight == 1


def _waiting(gate: Gate, account: str) -> bool:
    condition = gate._condition(account)
    with condition:
        return bool(condition._waiters)  # type: ignore[attr-defined]
