"""The sandbox as a function from request to response: Graph routes and their order of checks.

No sockets here (server.py does HTTP; uploads.py holds the upload edges; core.py the state).
Every Graph answer, error or not, carries the usage headers of the ad account the call concerns
(once that account has made enough calls).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from audiencesync.sandbox import faults, rules, state, uploads
from audiencesync.sandbox.core import Call, Request, Response, SandboxState
from audiencesync.sandbox.faults import GraphFault

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


class Sandbox(SandboxState):
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
        if call.account is not None:
            self.limiter.count_call(call.account)
        headers = {"X-App-Usage": orjson.dumps(self.limiter.app_usage(now_s)).decode()}
        usage = self.limiter.business_usage(call.account, now_s)
        if usage is not None:
            headers["X-Business-Use-Case-Usage"] = orjson.dumps(usage).decode()
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
        self.admit(audience.ad_account_id, read=True)  # a call of the account's budget too
        fields = [f.strip() for f in str(params.get("fields") or "id").split(",") if f.strip()]
        for name in fields:
            if name not in AUDIENCE_FIELDS:
                raise faults.bad_param(
                    f"Tried accessing nonexisting field ({name}) on node type (CustomAudience)"
                )
        with self.lock:
            size, status = audience.size(), _operation_status(audience)
        values: dict[str, Any] = {
            "name": audience.name,
            "account_id": audience.ad_account_id,
            "subtype": "CUSTOM",
            "approximate_count_lower_bound": size,
            "approximate_count_upper_bound": size,
            "operation_status": status,
        }
        return {**{name: values[name] for name in fields if name != "id"}, "id": audience.id}


def _operation_status(audience: state.Audience) -> dict[str, Any]:
    """Meta's descriptions; the codes other than 200 are the sandbox's own (not documented)."""
    if audience.open_replace_id is not None:
        return {"code": 300, "description": "Replace in progress"}
    if audience.replace_error:
        return {"code": 400, "description": "Replace error: the session timed out incomplete"}
    return {"code": 200, "description": "Normal"}
