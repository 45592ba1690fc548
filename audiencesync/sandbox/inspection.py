"""Inspection endpoints under /_sandbox/ for tests, the demo and benchmarks (not Graph; no auth).

GET  /_sandbox/health                   {"ok": true}
GET  /_sandbox/stats                    counters (see state.Stats.to_json)
GET  /_sandbox/audiences/{id}/members   text/plain, one member a line, sorted, streamed
GET  /_sandbox/audiences/{id}/calls     JSON list of call records (the last 100,000)
POST /_sandbox/reset                    forget everything (and re-seed the RNGs)
POST /_sandbox/audiences                {"id"?, "ad_account_id", "name"?, "approximate_count"?}
POST /_sandbox/audiences/{id}           {"approximate_count": n | null}: the size Meta reports
POST /_sandbox/config                   change knobs of a running sandbox: {"latency_ms": 50, ...}
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from typing import Any

import orjson

from audiencesync.sandbox import faults, state
from audiencesync.sandbox.app import Sandbox
from audiencesync.sandbox.core import Request, Response, json_response

PREFIX = "/_sandbox/"
_ID = re.compile(r"[A-Za-z0-9_-]+")  # it must fit in one path segment
MEMBER_LINES_PER_WRITE = 10_000


def handle(sandbox: Sandbox, req: Request) -> Response:
    parts = req.path.removeprefix(PREFIX).strip("/").split("/")
    match (req.method, parts):
        case ("GET", ["health"]):
            return json_response(200, {"ok": True})
        case ("GET", ["stats"]):
            for audience_id in list(sandbox.audiences):
                sandbox.find(audience_id)  # ended replace sessions show in the counts
            usage = sandbox.limiter.usage_by_account(time.monotonic())
            with sandbox.lock:
                stats = sandbox.stats.to_json(sandbox.audiences)
            return json_response(200, {**stats, "usage_pct": usage})
        case ("POST", ["reset"]):
            sandbox.reset()
            return json_response(200, {"ok": True})
        case ("POST", ["audiences"]):
            return _create(sandbox, req.body)
        case ("POST", ["config"]):
            return _configure(sandbox, req.body)
        case ("POST", ["audiences", audience_id]):
            return _resize(sandbox, audience_id, req.body)
        case ("GET", ["audiences", audience_id, "members"]):
            audience = sandbox.find(audience_id)
            with sandbox.lock:
                members = None if audience is None else list(audience.members)
            if members is not None:
                return Response(200, _lines(members), content_type="text/plain; charset=utf-8")
        case ("GET", ["audiences", audience_id, "calls"]):
            with sandbox.lock:
                audience = sandbox.audiences.get(audience_id)
                calls = None if audience is None else list(audience.calls)
            if calls is not None:
                return json_response(200, calls)
    return json_response(404, faults.unknown_path(req.path).body())


RUNTIME_KNOBS = {
    "token", "latency_ms", "jitter_ms", "latency_per_inflight_ms", "rate_per_s", "penalty_s",
    "budget_calls", "budget_window_s", "score_max", "score_decay_s", "write_points", "read_points",
    "block_s", "usage_header_after_calls", "replace_window_s", "transient_rate", "fail_batch_seq",
}  # fmt: skip


def _configure(sandbox: Sandbox, body: bytes) -> Response:
    """Tests change the sandbox's behaviour mid-session without restarting the workers' target."""
    try:
        changes = orjson.loads(body or b"{}")
        unknown = set(changes) - RUNTIME_KNOBS
        if unknown:
            raise ValueError(f"unknown knobs {sorted(unknown)}; known: {sorted(RUNTIME_KNOBS)}")
        sandbox.reconfigure(dataclasses.replace(sandbox.config, **changes))
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        return json_response(400, {"error": {"message": str(exc), "code": 100}})
    return json_response(200, {k: getattr(sandbox.config, k) for k in sorted(RUNTIME_KNOBS)})


def _lines(members: list[str]) -> Iterator[bytes]:
    members.sort()  # outside the lock: a million members take a while
    for start in range(0, len(members), MEMBER_LINES_PER_WRITE):
        piece = members[start : start + MEMBER_LINES_PER_WRITE]
        yield ("\n".join(piece) + "\n").encode()


def _create(sandbox: Sandbox, body: bytes) -> Response:
    try:
        spec: Any = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        spec = None
    account = spec.get("ad_account_id") if isinstance(spec, dict) else None
    if not isinstance(account, str | int) or isinstance(account, bool) or not str(account):
        fault = faults.bad_param('send a JSON object {"id"?, "ad_account_id", "name"?}')
        return json_response(400, fault.body())
    audience_id = str(spec.get("id") or sandbox.new_audience_id())
    if not _ID.fullmatch(audience_id):
        fault = faults.bad_param("an audience id may hold letters, digits, '_' and '-' only")
        return json_response(400, fault.body())
    account = str(account).removeprefix("act_")
    size = spec.get("approximate_count")
    if not _size_ok(size):
        return json_response(400, faults.bad_param(SIZE_HINT).body())
    with sandbox.lock:
        if audience_id in sandbox.audiences:
            fault = faults.bad_param(f"audience {audience_id} already exists")
            return json_response(409, fault.body())
        audience = state.Audience(audience_id, account, str(spec.get("name") or audience_id))
        audience.approximate_count = size
        sandbox.audiences[audience_id] = audience
    return json_response(200, {"id": audience_id, "ad_account_id": account})


SIZE_HINT = "approximate_count must be a whole number >= 0, or null to count the members"


def _size_ok(size: Any) -> bool:
    return size is None or (isinstance(size, int) and not isinstance(size, bool) and size >= 0)


def _resize(sandbox: Sandbox, audience_id: str, body: bytes) -> Response:
    """Give an audience the size Meta would report (e.g. 100M, which no test uploads)."""
    try:
        spec: Any = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        spec = None
    if not isinstance(spec, dict) or set(spec) != {"approximate_count"}:
        return json_response(400, faults.bad_param('send {"approximate_count": n | null}').body())
    if not _size_ok(spec["approximate_count"]):
        return json_response(400, faults.bad_param(SIZE_HINT).body())
    with sandbox.lock:
        audience = sandbox.audiences.get(audience_id)
        if audience is None:
            return json_response(404, faults.no_such_object(audience_id, "post").body())
        audience.approximate_count = spec["approximate_count"]
    return json_response(200, {"id": audience_id, "approximate_count": audience.approximate_count})
