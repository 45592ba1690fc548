"""Pure request rules: parameter decoding, auth, payload, session and entry checks (no I/O).

Each check either returns the decoded value or raises the GraphFault Meta would answer with.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import unquote_to_bytes

import orjson

from audiencesync.domain.normalize import all_maids
from audiencesync.sandbox import faults

MAX_ENTRIES = 10_000  # Meta's limit per call
PROOF_WINDOW_S = 300  # an appsecret_proof with appsecret_time is valid this long
SAMPLES_MAX = 3
OPTED_OUT_ID = "00000000-0000-0000-0000-000000000000"
SINGLE_KEY_SCHEMA = "MOBILE_ADVERTISER_ID"
MULTI_KEY_SCHEMA = ["MADID"]

_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{64}"
_is_valid_id = re.compile(_ID).fullmatch
# One C-level scan of all entries joined by newlines: an all-valid call skips the loop.
_all_valid_ids = re.compile(rf"(?:{_ID})(?:\n(?:{_ID}))*").fullmatch


def _unquote_plus(raw: bytes) -> str:
    """Form-decode one field; ~10x faster than urllib's on 400 KB payloads (C-level decode)."""
    raw = raw.replace(b"+", b" ")
    if b"%" not in raw:
        return raw.decode("utf-8", "replace")
    try:
        escaped = raw.replace(b"\\", b"\\\\").replace(b"%", b"\\x")
        return codecs.escape_decode(escaped)[0].decode("utf-8", "replace")
    except ValueError:  # a stray '%' not followed by two hex digits: urllib keeps it as is
        return unquote_to_bytes(raw).decode("utf-8", "replace")


def parse_form(raw: bytes) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in raw.split(b"&"):
        if pair:
            name, _, value = pair.partition(b"=")
            params[_unquote_plus(name)] = _unquote_plus(value)
    return params


def parse_params(query: bytes, body: bytes, content_type: str) -> dict[str, Any]:
    """Query parameters, overridden by the body's (form fields or a JSON object)."""
    params: dict[str, Any] = parse_form(query)
    if not body.strip():
        return params
    if content_type.split(";", 1)[0].strip().lower() == "application/json":
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise faults.bad_param("the request body is not valid JSON") from None
        if not isinstance(decoded, dict):
            raise faults.bad_param("a JSON request body must be an object")
        params.update(decoded)
    else:
        params.update(parse_form(body))
    return params


def json_param(params: Mapping[str, Any], name: str) -> Any:
    """A parameter whose value is JSON: a JSON string (form) or already an object (JSON body)."""
    value = params.get(name)
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise faults.bad_param(f"param {name} must be valid JSON") from None


def check_auth(
    params: Mapping[str, Any],
    authorization: str,
    token: str,
    app_secret: str | None,
    now_s: float,
) -> None:
    given = params.get("access_token")
    if given is None and authorization.lower().startswith(("bearer ", "oauth ")):
        given = authorization.split(" ", 1)[1].strip()
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), token.encode()):
        raise faults.bad_token()
    if app_secret is None:
        return
    proof = params.get("appsecret_proof")
    if not isinstance(proof, str) or not proof:
        raise faults.proof_missing()
    sent_time = params.get("appsecret_time")
    if sent_time is None:  # the older form: HMAC of the token alone
        message = token
    else:
        try:
            time_s = None if isinstance(sent_time, bool | float) else int(sent_time)
        except (TypeError, ValueError):
            time_s = None
        if time_s is None:
            raise faults.proof_invalid("appsecret_time must be unix seconds")
        if abs(now_s - time_s) > PROOF_WINDOW_S:
            raise faults.proof_invalid(f"appsecret_time is more than {PROOF_WINDOW_S} s from now")
        message = f"{token}|{sent_time}"
    expected = hmac.new(app_secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(proof.encode(), expected.encode()):
        raise faults.proof_invalid()


@dataclass(frozen=True)
class Payload:
    multi_key: bool
    data: list[Any]


def entry_count(payload: Any) -> int | None:
    """How many entries a decoded payload carries, if it has a data list at all."""
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        return len(payload["data"])
    return None


def check_payload(payload: Any) -> Payload:
    if payload is None:
        raise faults.bad_param("param payload is required")
    if not isinstance(payload, dict):
        raise faults.bad_param("param payload must be a JSON object")
    data = payload.get("data")
    if not isinstance(data, list):
        raise faults.bad_param("param payload must have a data list")
    if len(data) > MAX_ENTRIES:
        raise faults.oversized()
    if not data:
        raise faults.bad_param("payload.data must not be empty")
    schema = payload.get("schema")
    if schema is None:
        raise faults.bad_param("payload.schema is required")
    if schema == SINGLE_KEY_SCHEMA:
        return Payload(multi_key=False, data=data)
    if schema == MULTI_KEY_SCHEMA:
        return Payload(multi_key=True, data=data)
    raise faults.bad_param(
        f"payload.schema {orjson.dumps(schema).decode()[:100]} is not supported: the sandbox "
        f'knows "{SINGLE_KEY_SCHEMA}" and ["MADID"]'
    )


@dataclass(frozen=True)
class SessionParams:
    session_id: int
    batch_seq: int
    last_batch_flag: bool
    estimated_num_total: int | None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_session(session: Any) -> SessionParams:
    if not isinstance(session, dict):
        raise faults.bad_param("param session is required and must be a JSON object")
    session_id = session.get("session_id")
    batch_seq = session.get("batch_seq")
    last_batch_flag = session.get("last_batch_flag")
    estimated = session.get("estimated_num_total")
    if not _is_int(session_id) or session_id < 1:
        raise faults.bad_param("session.session_id must be a positive integer")
    if not _is_int(batch_seq) or batch_seq < 1:
        raise faults.bad_param("session.batch_seq must be an integer >= 1")
    if not isinstance(last_batch_flag, bool):
        raise faults.bad_param("session.last_batch_flag must be true or false")
    if estimated is not None and (not _is_int(estimated) or estimated < 0):
        raise faults.bad_param("session.estimated_num_total must be a non-negative integer")
    return SessionParams(session_id, batch_seq, last_batch_flag, estimated)


def _all_valid(joined: str, count: int) -> bool:
    """Every newline-joined entry is valid: MAIDs by a bytes scan (~0.5 ms per 10,000, the
    common call), anything else (hashed IDs, a mix) by the regex (~5 ms)."""
    if joined.isascii() and all_maids(joined.encode("ascii"), count):
        return True
    # Else one scan for hashed IDs; a newline inside an entry must not let it pose as two.
    return joined.count("\n") == count - 1 and _all_valid_ids(joined) is not None


_BAD_ROW = object()  # stands for a multi-key row that is not a one-value list


@dataclass
class Entries:
    valid: list[str]
    num_invalid: int = 0
    samples: dict[str, str] = field(default_factory=dict)  # invalid entry -> reason


def _reason(value: Any) -> str | None:
    """Why one entry is refused, or None when it may become a member."""
    if value is _BAD_ROW:
        return 'row must be a list of exactly one value for schema ["MADID"]'
    if not isinstance(value, str):
        return "not a string"
    if value == OPTED_OUT_ID:
        return "opted-out advertiser ID (all zeros): never added"
    if _is_valid_id(value):
        return None
    if value != value.strip():
        return "leading or trailing whitespace"
    if _is_valid_id(value.lower()):
        return "upper case: advertiser IDs must be lower case"
    return "not an advertiser ID (lower-case 8-4-4-4-12 hex) nor a SHA-256 hex digest"


def classify(payload: Payload) -> Entries:
    values: list[Any] = payload.data
    if payload.multi_key:
        values = [r[0] if type(r) is list and len(r) == 1 else _BAD_ROW for r in payload.data]
    with contextlib.suppress(TypeError):  # join refuses non-strings: those take the slow path
        joined = "\n".join(values)
        # Once every entry is known valid, the opted-out ID can only be found as a whole entry.
        if OPTED_OUT_ID not in joined and _all_valid(joined, len(values)):
            return Entries(valid=values)
    entries = Entries(valid=[])
    for row, value in zip(payload.data, values, strict=True):
        reason = _reason(value)
        if reason is None:
            entries.valid.append(value)
            continue
        entries.num_invalid += 1
        if len(entries.samples) < SAMPLES_MAX:
            sample = value if isinstance(value, str) else str(row)
            entries.samples[sample[:100]] = reason
    return entries
