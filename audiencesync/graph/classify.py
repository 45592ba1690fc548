"""Meta's error answers and usage headers -> our error tree and throttle signals (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from audiencesync.errors import (
    GraphError,
    PermanentGraphError,
    ThrottledError,
    TokenError,
    TransientError,
)

THROTTLE_CODES = frozenset({4, 17, 32, 341, 613, 80003})
THROTTLE_SUBCODES = frozenset({2446079, 1487742, 1504022})
TOKEN_CODES = frozenset({190, 102})
TRANSIENT_CODES = frozenset({1, 2, 368})


@dataclass(frozen=True)
class Usage:
    """The highest usage figure Meta reported (percent of the allowance) and its regain wait."""

    max_pct: float = 0.0
    regain_s: float = 0.0


def parse_usage(headers: Mapping[str, str]) -> Usage:
    """Read X-Business-Use-Case-Usage and X-App-Usage; tolerate absent or malformed headers."""
    get = headers.get
    max_pct = 0.0
    regain_min = 0.0
    buc = _json_or_none(get("x-business-use-case-usage"))
    if isinstance(buc, dict):
        for entries in buc.values():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                max_pct = max(max_pct, *_pcts(entry))
                regain_min = max(regain_min, _num(entry.get("estimated_time_to_regain_access")))
    app = _json_or_none(get("x-app-usage"))
    if isinstance(app, dict):
        max_pct = max(max_pct, *_pcts(app))
    return Usage(max_pct=max_pct, regain_s=regain_min * 60.0)


def _pcts(entry: dict) -> list[float]:
    return [_num(entry.get(k)) for k in ("call_count", "total_cputime", "total_time")]


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _json_or_none(raw: str | None) -> object:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def classify_error(status: int, body: bytes, usage: Usage) -> GraphError:
    """Map an error answer to the exception that says what the uploader must do."""
    parsed = _json_or_none(body.decode("utf-8", "replace")) if body else None
    err = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(err, dict):
        # Not Meta's JSON (an HTML page, a proxy's answer): only a 5xx is worth retrying.
        kind = TransientError if status >= 500 or status == 429 else PermanentGraphError
        return kind(f"HTTP {status} without a Graph error body", http_status=status)
    code = err.get("code") if isinstance(err.get("code"), int) else None
    subcode = err.get("error_subcode") if isinstance(err.get("error_subcode"), int) else None
    fields: dict[str, Any] = {
        "code": code,
        "subcode": subcode,
        "http_status": status,
        "fbtrace_id": err.get("fbtrace_id"),
    }
    message = str(err.get("message") or "no message")
    if code in THROTTLE_CODES or subcode in THROTTLE_SUBCODES or status == 429:
        return ThrottledError(message, retry_after_s=usage.regain_s or None, **fields)
    if code in TOKEN_CODES:
        return TokenError(message, **fields)
    if code in TRANSIENT_CODES or status >= 500 or err.get("is_transient") is True:
        return TransientError(message, **fields)
    return PermanentGraphError(message, **fields)
