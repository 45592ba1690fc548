"""The three upload edges (add, remove, replace): Meta's order of checks, faults, and stats.

Order: token, audience, rate limit, payload, session, entries, then the state rules, the
injected permanent refusal of one batch_seq (`fail_batch_seq`) and the injected transient
failure (half before applying, half after: the real risk of a retry).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from audiencesync.sandbox import faults, rules, state
from audiencesync.sandbox.core import Call, Request, SandboxState
from audiencesync.sandbox.faults import GraphFault


def upload(
    sandbox: SandboxState,
    req: Request,
    params: Mapping[str, Any],
    audience_id: str,
    edge: str,
    op: str,
    call: Call,
) -> dict[str, Any]:
    # Decode now (for stats and the call record), complain later, in Meta's order.
    raw_payload, payload_fault = _decode(params, "payload")
    raw_session, session_fault = _decode(params, "session")
    num_received = rules.entry_count(raw_payload)
    stats = sandbox.stats
    with sandbox.lock:
        stats.upload_calls += 1
        if num_received is not None:
            stats.max_entries_per_call = max(stats.max_entries_per_call, num_received)
        audience = sandbox.audiences.get(audience_id)  # expired below, by sandbox.audience
        if audience is not None:
            audience.upload_calls += 1
            call.account = audience.ad_account_id  # usage headers even on a token error
    record = _call_record(req.method, edge, raw_session, num_received)
    record["url_params"] = sorted(rules.parse_form(req.query))  # a payload belongs in the body
    record["received_s"] = req.received_s
    try:
        sandbox.auth(req, params)
        audience = sandbox.audience(audience_id, "post", call)
        sandbox.admit(audience.ad_account_id)
        if payload_fault is not None:
            raise payload_fault
        try:
            payload = rules.check_payload(raw_payload)
        except GraphFault as fault:
            if fault.code == faults.oversized().code:
                with sandbox.lock:
                    stats.oversized_calls += 1
            raise
        if session_fault is not None:
            raise session_fault
        # /users (add or remove) may come without a session: it is for multi-batch uploads,
        # and Meta's own SDK sends none unless asked. usersreplace always needs one.
        needs_session = op == state.REPLACE or raw_session is not None
        session = rules.check_session(raw_session) if needs_session else None
        entries = rules.classify(payload)  # the costly part: outside the lock
        _apply(sandbox, audience, op, payload, session, entries, record)
    except GraphFault as fault:
        record["status"], record["code"] = fault.http_status, fault.code
        raise
    finally:
        record["answered_s"] = time.monotonic()
        if audience is not None:
            with sandbox.lock:
                audience.calls.append(record)
    return {
        "audience_id": audience.id,
        # Meta answers with a session id even when none was sent; ids are strings in Graph.
        "session_id": str(session.session_id if session else secrets.randbits(62)),
        "num_received": len(payload.data),
        "num_invalid_entries": entries.num_invalid,
        "invalid_entry_samples": entries.samples,
    }


def _apply(
    sandbox: SandboxState,
    audience: state.Audience,
    op: str,
    payload: rules.Payload,
    session: rules.SessionParams | None,
    entries: rules.Entries,
    record: dict[str, Any],
) -> None:
    share = sandbox.config.transient_rate
    stats = sandbox.stats
    with sandbox.lock:
        now_s = time.monotonic()  # the window may have ended while the entries were checked
        state.expire_replace(audience, now_s, sandbox.config.replace_window_s)
        state.check_upload(audience, op, payload, session, entries.valid)
        refused = sandbox.config.fail_batch_seq
        if session is not None and session.batch_seq == refused and not session.last_batch_flag:
            raise faults.refused_batch(refused)
        roll = sandbox.fault_rng.random() if share else 1.0
        if roll < share / 2:  # fail before applying: nothing changes
            stats.transient += 1
            stats.transient_before_apply += 1
            raise faults.transient()
        state.apply_upload(audience, op, payload, session, entries.valid, now_s)
        record["applied"] = True
        stats.entries_received += len(payload.data)
        stats.invalid_entries += entries.num_invalid
        audience.entries_received += len(payload.data)
        if roll < share:  # fail after applying: the caller cannot tell it was applied
            stats.transient += 1
            stats.transient_after_apply += 1
            raise faults.transient()


def _decode(params: Mapping[str, Any], name: str) -> tuple[Any, GraphFault | None]:
    try:
        return rules.json_param(params, name), None
    except GraphFault as fault:
        return None, fault


def _call_record(method: str, edge: str, raw_session: Any, entries: int | None) -> dict[str, Any]:
    session = raw_session if isinstance(raw_session, dict) else {}
    return {
        "method": method,
        "edge": edge,
        "session_id": session.get("session_id"),
        "batch_seq": session.get("batch_seq"),
        "last_batch_flag": session.get("last_batch_flag"),
        "entries": entries,
        "status": 200,
        "code": None,
        "applied": False,
    }
