"""One Graph call through the gate: wait for a turn, make the call, tell the fleet how it went.

The worker that sees a throttling episode start or end logs it (one line, with the run id) and
adds it to the run's counters, so the report can say how often and how long the run cooled down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import redis

from audiencesync.errors import Deferred, ThrottledError
from audiencesync.graph import UploadResult
from audiencesync.store.runs import RunStore
from audiencesync.throttle import machine
from audiencesync.throttle.gate import Gate, Settled

log = logging.getLogger("audiencesync.throttle")
Sent = TypeVar("Sent", bound=UploadResult)


class Guard:
    def __init__(self, gate: Gate, store: RunStore, run_id: str, account: str) -> None:
        self.gate, self.store, self.run_id, self.account = gate, store, run_id, account
        self.cool_wait_s = 0.0  # after a throttle answer: how long the account cools down

    def enter(self, *, past_load_limit: bool = False) -> str:
        """A lease to send now (raises Deferred: re-enqueue, the account is not ready). Time
        spent waiting for Meta's budget (in this thread, or deferred for it or a cool-down) is
        added to the run's budget_wait_s (summed over calls). past_load_limit: a session's
        close (machine.acquire)."""
        try:
            lease, budget_wait_s = self.gate.enter(self.account, past_load_limit=past_load_limit)
        except Deferred as deferred:
            waited_s = deferred.budget_waited_s
            if deferred.reason in ("budget", "cooldown"):
                waited_s += deferred.wait_s  # re-enqueued for this long
            if waited_s:
                self.store.count(self.run_id, budget_wait_s=waited_s)
            raise
        if budget_wait_s:
            self.store.count(self.run_id, budget_wait_s=budget_wait_s)
        return lease

    def send(self, lease: str, call: Callable[[], Sent], *, sample_latency: bool = True) -> Sent:
        """Make the call; whatever happens, free the lease and feed the outcome to the gate."""
        try:
            sent = call()
        except ThrottledError as exc:
            settled = self.gate.settle(
                self.account, lease, machine.THROTTLED, regain_s=exc.retry_after_s or 0.0
            )
            self.cool_wait_s = settled.cool_wait_s
            self._note(settled)
            raise
        except BaseException:
            self._settle_quietly(lease, machine.OTHER)
            raise
        latency_s = sent.latency_s if sample_latency else None
        self._settle_quietly(lease, machine.OK, latency_s=latency_s, usage_pct=sent.usage.max_pct)
        return sent

    def _settle_quietly(self, lease: str, outcome: str, **signal) -> None:
        # The call is done: a Redis hiccup now must not turn its outcome into a failure.
        try:
            self._note(self.gate.settle(self.account, lease, outcome, **signal))
        except redis.RedisError as exc:
            log.warning("run=%s throttle state not updated (%s); lease expires", self.run_id, exc)

    def _note(self, settled: Settled) -> None:
        run, account = self.run_id, self.account
        for event in settled.events:
            if event == machine.THROTTLE_STARTED:
                self.store.count(run, throttle_events=1)
                log.warning(
                    "run=%s throttling started on %s: cooling down %.1fs",
                    run, account, settled.cool_wait_s,
                )  # fmt: skip
            elif event == machine.THROTTLE_ENDED:
                self.store.count(run, throttle_cooldown_s=settled.episode_s)
                log.info(
                    "run=%s throttling ended on %s after %.1fs",
                    run, account, settled.episode_s,
                )  # fmt: skip
            elif event == machine.SOFT_STARTED:
                self.store.count(run, soft_throttle_events=1)
                log.warning(
                    "run=%s soft throttling started on %s: latency high, in-flight limit %d",
                    run, account, settled.inflight_limit,
                )  # fmt: skip
            elif event == machine.SOFT_ENDED:
                log.info(
                    "run=%s soft throttling ended on %s: in-flight limit %d",
                    run, account, settled.inflight_limit,
                )  # fmt: skip
