"""The Graph API client: builds requests, sends them over pooled connections, classifies answers.

Bodies are JSON (Graph accepts them): the payload bytes come ready-made from `prepare`, so an upload
never re-encodes 10,000 IDs. The access token travels in the body, never in a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field

import httpx
import orjson

from audiencesync.errors import GraphError, TransientError
from audiencesync.graph.classify import Usage, classify_error, parse_usage
from audiencesync.settings import Settings

# Edges of an audience, by sync mode.
EDGE_BY_MODE = {
    "add": ("POST", "users"),
    "remove": ("DELETE", "users"),  # payload in the body: in a URL it breaks above ~1-2k IDs
    "replace": ("POST", "usersreplace"),
}


def build_payload(entries: list[str]) -> bytes:
    """An upload's payload, built once by `prepare` and sent as it is (and re-sent on retries)."""
    return orjson.dumps({"schema": "MOBILE_ADVERTISER_ID", "data": entries})


@dataclass(frozen=True)
class UploadResult:
    num_received: int
    num_invalid_entries: int
    invalid_samples: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0


class GraphClient:
    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None):
        self._base_url = settings.graph_base_url
        self._token = settings.access_token.get_secret_value()
        self._app_secret = settings.app_secret.get_secret_value() if settings.app_secret else None
        pool = settings.critical_concurrency + 4
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(settings.http_timeout_s, connect=settings.http_connect_timeout_s),
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            headers={"Content-Type": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def _proof(self) -> dict[str, str]:
        """appsecret_proof of `token|time` (valid 5 minutes), when the app has a secret."""
        if not self._app_secret:
            return {}
        now = str(int(time.time()))
        msg = f"{self._token}|{now}".encode()
        proof = hmac.new(self._app_secret.encode(), msg, hashlib.sha256).hexdigest()
        return {"appsecret_proof": proof, "appsecret_time": now}

    def _auth_fields(self) -> bytes:
        fields = {"access_token": self._token, **self._proof()}
        return orjson.dumps(fields)[1:-1]  # the members, to splice into a larger object

    def _send(self, method: str, path: str, **kwargs) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        try:
            response = self._http.request(method, f"{self._base_url}/{path}", **kwargs)
        except httpx.TransportError as exc:
            # Connect errors never reached Meta; read errors may have been applied. Both retry:
            # adding the same IDs again is harmless (an audience is a set).
            reached = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            what = "no answer from" if reached else "cannot connect to"
            raise TransientError(f"{what} {self._base_url} ({type(exc).__name__})") from None
        return response, time.perf_counter() - started

    def _call(self, method: str, path: str, members: bytes) -> tuple[dict, Usage, float]:
        body = b"{" + members + b"," + self._auth_fields() + b"}"
        return self._answer(*self._send(method, path, content=body))

    def _answer(self, response: httpx.Response, latency_s: float) -> tuple[dict, Usage, float]:
        usage = parse_usage(response.headers)
        if response.status_code != 200:
            raise classify_error(response.status_code, response.content, usage)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise TransientError(
                "Graph API answered 200 with a body that is not JSON", http_status=200
            ) from None
        return data, usage, latency_s

    def upload(
        self, audience_id: str, payload_json: bytes, session: dict | None, *, mode: str = "add"
    ) -> UploadResult:
        """Send one batch (payload_json is the ready `{"schema":..,"data":[..]}` object); a
        /users call may go without a session (an add after a replace's cutover does)."""
        method, edge = EDGE_BY_MODE[mode]
        members = b'"payload":' + payload_json
        if session is not None:
            members += b',"session":' + orjson.dumps(session)
        data, usage, latency_s = self._call(method, f"{audience_id}/{edge}", members)
        samples = data.get("invalid_entry_samples") or []
        if isinstance(samples, dict):
            samples = list(samples)
        return UploadResult(
            num_received=int(data.get("num_received", 0)),
            num_invalid_entries=int(data.get("num_invalid_entries", 0)),
            invalid_samples=[str(s) for s in samples[:3]],
            usage=usage,
            latency_s=latency_s,
        )

    def get_audience(self, audience_id: str) -> dict:
        """Size and state of an audience; the cheapest call that proves token and audience."""
        fields = "approximate_count_lower_bound,approximate_count_upper_bound,operation_status"
        sent = self._send(
            "GET",
            audience_id,
            params={"fields": fields, **self._proof()},
            headers={"Authorization": f"Bearer {self._token}"},  # a token never goes in a URL
        )
        return self._answer(*sent)[0]

    def create_audience(self, ad_account_id: str, name: str) -> str:
        members = orjson.dumps(
            {"name": name, "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"}
        )[1:-1]
        data, _, _ = self._call("POST", f"act_{ad_account_id}/customaudiences", members)
        if "id" not in data:
            raise GraphError("audience creation answered without an id")
        return str(data["id"])
