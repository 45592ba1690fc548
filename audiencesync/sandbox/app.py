"""The sandbox as a function from request to response: Graph routes and their order of checks.

No sockets here (server.py does HTTP; uploads.py holds the upload edges). Every Graph answer,
error or not, carries the usage headers of the ad account the call concerns.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from audiencesync.sandbox import faults, rules, state, uploads
from audiencesync.sandbox.config import SandboxConfig
from audiencesync.sandbox.faults import GraphFault
from audiencesync.sandbox.limits import RateLimiter

_VERSION = re.compile(r"v\d+(\.\d+)?")
_UPLOAD_ROUTES = {
    ("POST", "users"): state.ADD,
    ("DELETE", "users"): state.REMOVE,
    ("POST", "usersreplace"): state.REPLACE,
}
FILE_SOURCES = {"USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"}
AUDIENCE_FIELDS = {
    "id", "name", "account_id", "subtype", "approximate_count_lower_bound",
    "approximate_count_upper_bound", "operation_status",
}  # fmt: skip
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


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.Lock()  # guards audiences, stats and the fault RNG; held briefly
        self.limiter = RateLimiter(config.rate_per_s, config.penalty_s)
        self.reset()

    def reconfigure(self, config: SandboxConfig) -> None:
        with self.lock:
            self.config = config
        self.limiter.configure(config.rate_per_s, config.penalty_s)

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
        extra_ms = self._latency_rng.uniform(0, config.jitter_ms) if config.jitter_ms else 0.0
        with self.lock:
            others = max(self.stats.inflight - 1, 0)
        return (config.latency_ms + extra_ms + config.latency_per_inflight_ms * others) / 1000

    def new_audience_id(self) -> str:
        with self.lock:
            while (audience_id := str(next(self._ids))) in self.audiences:
                pass  # taken by an audience pre-created through /_sandbox/audiences
            return audience_id

    def graph(self, req: Request) -> Response:
        call = Call()
        with self.lock:
            self.stats.calls += 1
        try:
            status, body = 200, self._route(req, call)
        except GraphFault as fault:
            status, body = fault.http_status, fault.body()
            with self.lock:
                self.stats.errors_by_code[fault.code] += 1
        now_s = time.monotonic()
        usage = self.limiter.business_usage(call.account, now_s)
        headers = {
            "X-Business-Use-Case-Usage": orjson.dumps(usage).decode(),
            "X-App-Usage": orjson.dumps(self.limiter.app_usage(now_s)).decode(),
        }
        return Response(status, orjson.dumps(body), headers=headers)

    def _route(self, req: Request, call: Call) -> dict[str, Any]:
        parts = req.path.strip("/").split("/")
        if len(parts) < 2 or not _VERSION.fullmatch(parts[0]):
            raise faults.unknown_path(req.path)
        params = rules.parse_params(req.query, req.body, req.headers.get("content-type", ""))
        node, edge = parts[1], "/".join(parts[2:])
        if req.method == "POST" and edge == "customaudiences" and node.startswith("act_"):
            return self._create(req, params, node.removeprefix("act_"), call)
        if (req.method, edge) in _UPLOAD_ROUTES:
            op = _UPLOAD_ROUTES[(req.method, edge)]
            return uploads.upload(self, req, params, node, edge, op, call)
        if req.method == "GET" and not edge:
            return self._read(req, params, node, call)
        raise faults.unknown_path(req.path)

    def auth(self, req: Request, params: Mapping[str, Any]) -> None:
        rules.check_auth(
            params,
            req.headers.get("authorization", ""),
            self.config.token,
            self.config.app_secret,
            time.time(),
        )

    def audience(self, audience_id: str, method: str, call: Call) -> state.Audience:
        with self.lock:
            audience = self.audiences.get(audience_id)
        if audience is None:
            raise faults.no_such_object(audience_id, method)
        call.account = audience.ad_account_id
        return audience

    def _create(
        self, req: Request, params: Mapping[str, Any], account: str, call: Call
    ) -> dict[str, Any]:
        call.account = account or None
        self.auth(req, params)
        name, subtype = params.get("name"), params.get("subtype")
        if not isinstance(name, str) or not name.strip():
            raise faults.bad_param("param name is required")
        if subtype != "CUSTOM":
            raise faults.bad_param("param subtype must be CUSTOM for a customer-file audience")
        if params.get("customer_file_source") not in FILE_SOURCES:
            choices = ", ".join(sorted(FILE_SOURCES))
            raise faults.bad_param(f"param customer_file_source must be one of {choices}")
        audience_id = self.new_audience_id()
        with self.lock:
            self.audiences[audience_id] = state.Audience(audience_id, account, name)
        return {"id": audience_id}

    def _read(
        self, req: Request, params: Mapping[str, Any], audience_id: str, call: Call
    ) -> dict[str, Any]:
        self.auth(req, params)
        audience = self.audience(audience_id, req.method, call)
        fields = [f.strip() for f in str(params.get("fields") or "id").split(",") if f.strip()]
        for name in fields:
            if name not in AUDIENCE_FIELDS:
                raise faults.bad_param(
                    f"Tried accessing nonexisting field ({name}) on node type (CustomAudience)"
                )
        with self.lock:
            size = len(audience.members)
        values: dict[str, Any] = {
            "name": audience.name,
            "account_id": audience.ad_account_id,
            "subtype": "CUSTOM",
            "approximate_count_lower_bound": size,
            "approximate_count_upper_bound": size,
            "operation_status": {"code": 200, "description": "Normal"},
        }
        return {**{name: values[name] for name in fields if name != "id"}, "id": audience.id}
