"""The client's requests, seen through httpx's transport seam (no network)."""

import hashlib
import hmac

import httpx
import orjson
import pytest

from audiencesync.errors import ThrottledError, TokenError, TransientError
from audiencesync.graph import GraphClient
from audiencesync.settings import Settings

SETTINGS = Settings(graph_url="https://graph.test", access_token="tok-123", app_secret="shh")


def client_seeing(handler) -> GraphClient:
    return GraphClient(SETTINGS, transport=httpx.MockTransport(handler))


def test_upload_body_carries_payload_session_and_proof_never_the_token_in_the_url():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"], seen["body"] = str(request.url), orjson.loads(request.content)
        return httpx.Response(200, json={"num_received": 2, "num_invalid_entries": 0})

    payload = orjson.dumps({"schema": "MOBILE_ADVERTISER_ID", "data": ["a", "b"]})
    result = client_seeing(handler).upload(
        "42", payload, {"session_id": 7, "batch_seq": 1, "last_batch_flag": False}
    )
    assert result.num_received == 2
    assert seen["url"] == "https://graph.test/v26.0/42/users"
    assert "tok-123" not in seen["url"]
    body = seen["body"]
    assert body["payload"]["data"] == ["a", "b"] and body["session"]["session_id"] == 7
    expected = hmac.new(
        b"shh", f"tok-123|{body['appsecret_time']}".encode(), hashlib.sha256
    ).hexdigest()
    assert body["access_token"] == "tok-123" and body["appsecret_proof"] == expected


def test_errors_are_classified_with_the_usage_headers():
    def handler(request):
        return httpx.Response(
            400,
            json={"error": {"code": 80003, "message": "too many calls"}},
            headers={
                "x-business-use-case-usage": orjson.dumps(
                    {"1": [{"call_count": 100, "estimated_time_to_regain_access": 2}]}
                ).decode()
            },
        )

    with pytest.raises(ThrottledError) as info:
        client_seeing(handler).upload("42", b"{}", {})
    assert info.value.retry_after_s == 120


def test_token_error():
    def handler(request):
        return httpx.Response(400, json={"error": {"code": 190, "message": "bad token"}})

    with pytest.raises(TokenError, match="bad token"):
        client_seeing(handler).upload("42", b"{}", {})


def test_connection_failure_is_transient_and_names_no_secret():
    def handler(request):
        raise httpx.ConnectError("refused")

    with pytest.raises(TransientError, match="cannot connect") as info:
        client_seeing(handler).upload("42", b"{}", {})
    assert "tok-123" not in str(info.value)
