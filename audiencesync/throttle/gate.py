"""The throttle gate: every Graph upload asks it before sending and tells it how the call went.

The state lives in Redis, one set of keys per ad account, shared by every worker on every host
(gate.lua runs each step atomically, on Redis's clock):

    as:throttle:{account}           hash: the machine's State (machine.py): rate, bucket,
                                    cool-down deadline, pace, budget, load limit, the interval
    as:throttle:{account}:latency   list: the fleet's latest call latencies (s), newest first
    as:throttle:{account}:leases    sorted set: calls in flight, scored by lease expiry, so a
                                    killed worker's slot frees itself when its lease runs out

Each key expires after state_ttl_s without traffic. {account} is `act_<ad account id>`, or
`aud_<audience id>` for a run that knows no ad account.

A caller with no slot or budget free asks again when a call of this process settles (a thread
of the same worker: at once), or after policy.SLOT_POLL_S (another worker's call, a lapsed lease,
the limit grown with time).
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files

import orjson
import redis

from audiencesync.errors import Deferred
from audiencesync.recovery.heartbeat import process_tag
from audiencesync.settings import Settings
from audiencesync.throttle.machine import OTHER, Decision
from audiencesync.throttle.policy import Params

_HERE = files("audiencesync.throttle")
_SPLICE = "-- policy.lua (gate.py splices it in here)\n"
# One script (one round trip, atomic): policy.lua's functions spliced into gate.lua.
LUA = (_HERE / "gate.lua").read_text().replace(_SPLICE, (_HERE / "policy.lua").read_text(), 1)
LEASE_MARGIN_S = 5.0  # beyond the HTTP timeout, before a silent lease counts as dead


def account_key(ad_account_id: str, audience_id: str) -> str:
    """The throttle's key: the ad account, else the audience's own id."""
    account = ad_account_id.removeprefix("act_")
    return f"act_{account}" if account else f"aud_{audience_id}"


# Params an operator tunes, as settings named throttle_<param>; the rest are constants.
TUNABLE = (
    "rate_per_s", "adapt_interval_s", "usage_target_pct", "cooldown_base_s",
    "cooldown_max_s", "inflight_start", "inflight_floor", "inflight_ceiling", "latency_factor",
)  # fmt: skip


def params_from(settings: Settings) -> Params:
    return Params(**{name: getattr(settings, f"throttle_{name}") for name in TUNABLE})


@dataclass(frozen=True)
class Settled:
    cool_wait_s: float  # > 0: the account is cooling down for this long
    episode_s: float  # a throttling episode ended with this call, after this long
    inflight_limit: int
    events: list[str]


@dataclass(frozen=True)
class Snapshot:
    inflight_limit: int
    cool_wait_s: float
    soft: bool
    inflight: int
    pace_s: float  # the destination's baseline latency (0: none known)
    usage_pct: float  # Meta's latest usage figure
    per_call_pct: float  # one call's share of the budget (0: not known yet)

    @property
    def budget_calls(self) -> int:
        """The budget, in calls per Meta's window, as its usage figures show it (0: unknown)."""
        return round(100 / self.per_call_pct) if self.per_call_pct else 0


class Gate:
    def __init__(
        self,
        client: redis.Redis,
        params: Params,
        *,
        max_wait_s: float = 0.5,
        lease_ttl_s: float = 70.0,
        state_ttl_s: int = 604_800,
    ) -> None:
        self.r = client
        self.max_wait_s = max_wait_s
        self.lease_ttl_s = lease_ttl_s
        self.state_ttl_s = state_ttl_s
        self._params = orjson.dumps(dataclasses.asdict(params))
        self._script = client.register_script(LUA)
        self._settled: dict[str, threading.Condition] = {}  # per account: wakes one waiter
        self._settled_lock = threading.Lock()

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> Gate:
        return cls(
            client,
            params_from(settings),
            max_wait_s=settings.throttle_max_wait_s,
            lease_ttl_s=settings.http_timeout_s + settings.throttle_max_wait_s + LEASE_MARGIN_S,
            state_ttl_s=settings.throttle_state_ttl_s,
        )

    @staticmethod
    def keys(account: str) -> list[str]:
        base = f"as:throttle:{account}"
        return [base, f"{base}:latency", f"{base}:leases"]

    def _run(self, op: str, account: str, lease: str, now_s: float | None, *extra) -> list[str]:
        now = "" if now_s is None else repr(now_s)
        args = [op, now, self._params, lease, self.state_ttl_s, *extra]
        return [v.decode() for v in self._script(keys=self.keys(account), args=args)]

    def acquire(
        self,
        account: str,
        lease: str,
        *,
        max_wait_s: float,
        now_s: float | None = None,
        past_load_limit: bool = False,
    ) -> Decision:
        go, wait_s, reason = self._run(
            "acquire", account, lease, now_s, repr(max_wait_s), repr(self.lease_ttl_s),
            "1" if past_load_limit else "0",
        )  # fmt: skip
        return Decision(go == "1", float(wait_s), reason)

    def settle(
        self,
        account: str,
        lease: str,
        outcome: str,
        *,
        latency_s: float | None = None,
        usage_pct: float = 0.0,
        regain_s: float = 0.0,
        now_s: float | None = None,
    ) -> Settled:
        latency = "" if latency_s is None else repr(latency_s)
        signal = (outcome, latency, repr(usage_pct), repr(regain_s), repr(self.lease_ttl_s))
        answer = self._run("settle", account, lease, now_s, *signal)
        with (settled := self._condition(account)):
            settled.notify()  # its slot is free: one caller waiting in this process asks now
        cool, episode, limit, *events = answer
        return Settled(float(cool), float(episode), int(float(limit)), events)

    def snapshot(self, account: str, now_s: float | None = None) -> Snapshot:
        limit, cool, soft, inflight, pace, usage, per_call = map(
            float, self._run("peek", account, "", now_s)
        )
        return Snapshot(int(limit), cool, soft == 1, int(inflight), pace, usage, per_call)

    def forget_process(self, tag: str) -> int:
        """Free the in-flight slots of a process known to be dead (its chunk leases ran out:
        audiencesync/recovery/) now, not when their lease runs out after an HTTP timeout."""
        freed = 0
        for key in self.r.scan_iter("as:throttle:*:leases"):
            for member, _ in self.r.zscan_iter(key, match=f"{tag}*"):
                freed += int(self.r.zrem(key, member))
        return freed

    def reset(self, account: str) -> None:
        self.r.delete(*self.keys(account))

    def _condition(self, account: str) -> threading.Condition:
        with self._settled_lock:
            return self._settled.setdefault(account, threading.Condition())

    def wait_for_settle(self, account: str, timeout_s: float) -> None:
        """Until a call of the account settles in this process, or timeout_s."""
        with (settled := self._condition(account)):
            settled.wait(timeout_s)

    def enter(
        self,
        account: str,
        *,
        sleep: Callable[[float], None] | None = None,
        past_load_limit: bool = False,
    ) -> tuple[str, float]:
        """A lease to send one call now, after waiting at most max_wait_s in this thread, and
        how long of that wait was for Meta's budget (past_load_limit: machine.acquire). `sleep`
        replaces every wait (tests); by default a turn at the rate is slept for, and a slot or
        budget is waited for until a call settles (wait_for_settle).

        Raises Deferred when the wait would be longer: the caller re-enqueues itself.
        """
        budget_s, budget_wait_s = self.max_wait_s, 0.0
        while True:
            lease = f"{process_tag()}{secrets.token_hex(8)}"  # freed early if it dies
            decision = self.acquire(
                account, lease, max_wait_s=budget_s, past_load_limit=past_load_limit
            )
            if decision.go:
                if decision.wait_s > 0:
                    (sleep or time.sleep)(decision.wait_s)
                    # A throttle answer may have come in meanwhile: then this call waits too.
                    cool_s = self.snapshot(account).cool_wait_s
                    if cool_s > 0:
                        self.settle(account, lease, OTHER)
                        raise Deferred(cool_s, "cooldown")
                return lease, budget_wait_s
            if decision.reason not in ("inflight", "budget") or decision.wait_s > budget_s:
                raise Deferred(decision.wait_s, decision.reason, budget_wait_s)
            if sleep is None:  # a slot or budget frees when a call ends: ask again then
                began_s = time.monotonic()
                self.wait_for_settle(account, decision.wait_s)
                waited_s = time.monotonic() - began_s
            else:
                sleep(decision.wait_s)
                waited_s = decision.wait_s
            budget_s -= waited_s
            if decision.reason == "budget":
                budget_wait_s += waited_s
