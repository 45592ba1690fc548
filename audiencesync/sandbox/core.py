"""The sandbox's state and the pieces every route shares: requests, responses, auth, lookups.

app.py (Graph routes) and uploads.py (the upload edges) both build on this module and not on
each other, so the two have no import loop.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from audiencesync.sandbox import faults, rules, state
from audiencesync.sandbox.config import SandboxConfig
from audiencesync.sandbox.limits import Limits

FIRST_AUDIENCE_ID = 23_850_000_000_000_001  # looks like Meta's ids


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: bytes
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    received_s: float = 0.0  # monotonic, before the latency sleep: call records show overlaps


@dataclass
class Response:
    status: int
    body: bytes | Iterable[bytes]  # an iterable is streamed (large member lists)
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, value: Any) -> Response:
    return Response(status, orjson.dumps(value))


@dataclass
class Call:
    account: str | None = None  # the ad account the usage headers report on


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.Lock()  # guards audiences, stats and the fault RNG; held briefly
        self.limiter = Limits(config)
        self.reset()

    def reconfigure(self, config: SandboxConfig) -> None:
        with self.lock:
            self.config = config
        self.limiter.configure(config)

    def reset(self) -> None:
        seed = self.config.seed
        with self.lock:
            self.audiences: dict[str, state.Audience] = {}
            self.stats = state.Stats()
            self._ids = itertools.count(FIRST_AUDIENCE_ID)
            self.fault_rng = random.Random(seed)
            self._latency_rng = random.Random(None if seed is None else seed + 1)
        self.limiter.reset()

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Counts the Graph calls being served: latency_per_inflight_ms makes load slow them."""
        with self.lock:
            stats = self.stats  # a reset meanwhile must not see this call leave
            stats.inflight += 1
            stats.max_inflight = max(stats.max_inflight, stats.inflight)
        try:
            yield
        finally:
            with self.lock:
                stats.inflight -= 1

    def latency_s(self) -> float:
        """Called inside in_flight(): the other calls in flight each add latency_per_inflight_ms."""
        config = self.config
        with self.lock:
            extra_ms = self._latency_rng.uniform(0, config.jitter_ms) if config.jitter_ms else 0.0
            others = max(self.stats.inflight - 1, 0)
        return (config.latency_ms + extra_ms + config.latency_per_inflight_ms * others) / 1000

    def new_audience_id(self) -> str:
        with self.lock:
            while (audience_id := str(next(self._ids))) in self.audiences:
                pass  # taken by an audience pre-created through /_sandbox/audiences
            return audience_id

    def auth(self, req: Request, params: Mapping[str, Any]) -> None:
        rules.check_auth(
            params,
            req.headers.get("authorization", ""),
            self.config.token,
            self.config.app_secret,
            time.time(),
        )

    def find(self, audience_id: str) -> state.Audience | None:
        """The audience as Meta holds it now: a replace session past its window has ended."""
        with self.lock:
            audience = self.audiences.get(audience_id)
            if audience is not None:
                state.expire_replace(audience, time.monotonic(), self.config.replace_window_s)
            return audience

    def audience(self, audience_id: str, method: str, call: Call) -> state.Audience:
        audience = self.find(audience_id)
        if audience is None:
            raise faults.no_such_object(audience_id, method)
        call.account = audience.ad_account_id
        return audience

    def admit(self, account: str, *, read: bool = False) -> None:
        """A call of the account's budget (an upload, or a read of an audience): raises Meta's
        throttling error when a rate-limit model refuses it, and counts the refusal."""
        admission = self.limiter.admit(account, time.monotonic(), read=read)
        if admission.admitted:
            return
        with self.lock:
            self.stats.throttled += 1
            self.stats.calls_in_penalty += admission.in_penalty
            self.stats.throttled_by[str(admission.by)] += 1
        raise admission.fault()
