"""Meta-style error answers: one exception type, built by the named constructors below.

Bodies follow Graph's shape: {"error": {"message", "type", "code", "error_subcode",
"is_transient", "fbtrace_id"}}; like Meta, error_subcode is left out when there is none.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

_TRACE_ALPHABET = string.ascii_letters + string.digits
_DOCS = "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"


class GraphFault(Exception):
    """An error answer; raising it anywhere in request handling ends the call with it."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        subcode: int | None = None,
        http_status: int = 400,
        type_: str = "OAuthException",
        is_transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.http_status = http_status
        self.type = type_
        self.is_transient = is_transient

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["is_transient"] = self.is_transient
        error["fbtrace_id"] = "".join(secrets.choice(_TRACE_ALPHABET) for _ in range(11))
        return {"error": error}


def bad_token() -> GraphFault:
    return GraphFault("Invalid OAuth access token - Cannot parse access token", code=190)


def proof_missing() -> GraphFault:
    return GraphFault(
        "API calls from the server require an appsecret_proof argument",
        code=100,
        type_="GraphMethodException",
    )


def proof_invalid(why: str = "") -> GraphFault:
    message = "Invalid appsecret_proof provided in the API argument" + (f" ({why})" if why else "")
    return GraphFault(message, code=100, type_="GraphMethodException")


def no_such_object(object_id: str, method: str) -> GraphFault:
    return GraphFault(
        f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, "
        f"cannot be loaded due to missing permissions, or does not support this operation. {_DOCS}",
        code=100,
        subcode=33,
        type_="GraphMethodException",
    )


def bad_param(message: str) -> GraphFault:
    return GraphFault(f"(#100) {message}", code=100)


def oversized() -> GraphFault:
    # Meta gives no hint that the call was too big; neither does the sandbox.
    return GraphFault("An unknown error occurred", code=1, subcode=99, http_status=500)


def schema_mismatch(audience_kind: str, call_kind: str) -> GraphFault:
    return GraphFault(
        f"(#2650) Schema mismatch: this audience was built with a {audience_kind}-key schema "
        f"and cannot take a {call_kind}-key schema",
        code=2650,
    )


def replace_session(message: str, subcode: int | None = None) -> GraphFault:
    return GraphFault(f"(#2650) {message}", code=2650, subcode=subcode)


def refused_batch(batch_seq: int) -> GraphFault:
    """The injected permanent failure (SandboxConfig.fail_batch_seq): retrying cannot help."""
    return bad_param(f"batch_seq {batch_seq} refused: the sandbox's fail_batch_seq knob is set")


def throttled() -> GraphFault:
    return GraphFault(
        "(#80003) There have been too many calls to this ad-account. Wait a bit and try again. "
        "For more info, please refer to "
        "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
        code=80003,
        subcode=2446079,
        is_transient=True,
    )


def score_throttled() -> GraphFault:
    """The score model's refusal: 613/1487742, the code a public report saw on an audience
    upload (graph-api-facts.md); 17/2446079 is the same limit on other Marketing API calls."""
    return GraphFault(
        "(#613) There have been too many calls from this ad-account. Wait a bit and try again.",
        code=613,
        subcode=1487742,
        is_transient=True,
    )


def transient() -> GraphFault:
    return GraphFault(
        "An unexpected error has occurred. Please retry your request later.",
        code=2,
        http_status=500,
        is_transient=True,
    )


def unknown_path(path: str) -> GraphFault:
    return GraphFault(
        f"(#803) Some of the aliases you requested do not exist: {path}", code=803, http_status=404
    )
