"""Talking to the sandbox over HTTP in its tests: a thin Graph client, its answers' errors."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

TOKEN = "sandbox-token"
V = "v26.0"
OPTED_OUT = "00000000-0000-0000-0000-000000000000"


def madids(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    hexes = (f"{rng.getrandbits(128):032x}" for _ in range(n))
    return [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in hexes]


class Graph:
    """A thin client speaking to the sandbox the way the real client will (form bodies)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, timeout=30, limits=httpx.Limits(max_connections=64)
        )
        self.auth: dict[str, Any] = {"access_token": TOKEN}

    def create(self, account: str = "1001") -> str:
        body = {"name": "test", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"}
        response = self.http.post(f"/{V}/act_{account}/customaudiences", data=body | self.auth)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def upload(
        self,
        audience_id: str,
        data: list[Any],
        *,
        op: str = "add",
        session: dict[str, Any] | None = None,
        session_id: int = 1,
        seq: int = 1,
        last: bool = False,
        schema: Any = "MOBILE_ADVERTISER_ID",
        **extra: Any,
    ) -> httpx.Response:
        if session is None:
            session = {"session_id": session_id, "batch_seq": seq, "last_batch_flag": last}
        form = {
            "payload": orjson.dumps({"schema": schema, "data": data}).decode(),
            "session": orjson.dumps(session).decode(),
        } | self.auth
        form.update(extra)
        method, edge = {
            "add": ("POST", "users"),
            "remove": ("DELETE", "users"),
            "replace": ("POST", "usersreplace"),
        }[op]
        return self.http.request(method, f"/{V}/{audience_id}/{edge}", data=form)

    def members(self, audience_id: str) -> list[str]:
        response = self.http.get(f"/_sandbox/audiences/{audience_id}/members")
        assert response.status_code == 200
        return response.text.splitlines()

    def stats(self) -> dict[str, Any]:
        return dict(self.http.get("/_sandbox/stats").json())

    def calls(self, audience_id: str) -> list[dict[str, Any]]:
        """The sandbox's records of the audience's upload calls, with its own clock's
        `received_s` (before the latency) and `answered_s`."""
        return list(self.http.get(f"/_sandbox/audiences/{audience_id}/calls").json())

    def usage_pct(self, audience_id: str) -> int:
        """The audience's ad account's usage, from a Graph read: no rate-limit model counts
        reads (only upload calls), so polling this does not change what it reports."""
        response = self.http.get(f"/{V}/{audience_id}", params=self.auth)
        assert response.status_code == 200, response.text
        [(_, [usage])] = orjson.loads(response.headers["X-Business-Use-Case-Usage"]).items()
        return int(usage["call_count"])


def wait_until(condition: Callable[[], bool], timeout_s: float = 10, poll_s: float = 0.02) -> None:
    """Poll `condition` until it holds; fail after `timeout_s` (a bound, not a figure tested)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {condition}"
        time.sleep(poll_s)


def error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"message", "type", "code", "is_transient", "fbtrace_id"} <= set(body["error"])
    return dict(body["error"])
