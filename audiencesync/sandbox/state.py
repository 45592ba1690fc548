"""Audiences, upload sessions and counters, with the rules that need state (no I/O, no locks).

The caller holds one lock around check_upload + apply_upload so the two see the same audience.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from audiencesync.sandbox import faults
from audiencesync.sandbox.rules import Payload, SessionParams

ADD, REMOVE, REPLACE = "add", "remove", "replace"
REMOVE_FLOOR = 100  # Meta refuses a removal that takes an audience of >= 100 below this
CALL_RECORDS_MAX = 100_000  # per audience; the oldest are dropped first


@dataclass
class UploadSession:
    op: str
    closed: bool = False
    last_seq: int = 0
    pending: set[str] = field(default_factory=set)  # replace: the audience-to-be


@dataclass
class Audience:
    id: str
    ad_account_id: str
    name: str = ""
    members: set[str] = field(default_factory=set)
    multi_key: bool | None = None  # fixed by the first accepted upload
    sessions: dict[int, UploadSession] = field(default_factory=dict)
    open_replace_id: int | None = None
    calls: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=CALL_RECORDS_MAX))
    upload_calls: int = 0
    entries_received: int = 0


def _kind(multi_key: bool) -> str:
    return "multi" if multi_key else "single"


def check_upload(
    audience: Audience,
    op: str,
    payload: Payload,
    session: SessionParams | None,
    valid: list[str],
) -> None:
    """Raise the fault Meta would answer with; changes nothing."""
    if audience.multi_key is not None and audience.multi_key != payload.multi_key:
        raise faults.schema_mismatch(_kind(audience.multi_key), _kind(payload.multi_key))
    if session is not None:
        known = audience.sessions.get(session.session_id)
        if known is not None and known.op != op:
            raise faults.bad_param(
                f"session {session.session_id} belongs to another operation ({known.op}), not {op}"
            )
        if known is not None and known.closed:
            raise faults.bad_param(
                f"session {session.session_id} is closed: its batch with last_batch_flag=true "
                "was already accepted; start a new session"
            )
        if op == REPLACE:
            _check_replace_order(audience, session, known)
    if op == REMOVE and len(audience.members) >= REMOVE_FLOOR:
        leaving = sum(1 for entry in set(valid) if entry in audience.members)
        if len(audience.members) - leaving < REMOVE_FLOOR:
            raise faults.bad_param(
                f"this removal would leave the audience with fewer than {REMOVE_FLOOR} people; "
                "Meta refuses that (remove fewer IDs, or replace the audience)"
            )


def _check_replace_order(
    audience: Audience, session: SessionParams, known: UploadSession | None
) -> None:
    if known is None:
        if session.batch_seq != 1:
            raise faults.replace_session(
                f"A replace session must start with batch_seq 1, got {session.batch_seq}",
                subcode=1870147,
            )
        if audience.open_replace_id is not None:
            raise faults.replace_session(
                f"replace session {audience.open_replace_id} is still open on this audience: "
                "close it (last_batch_flag=true) before starting another"
            )
    elif session.batch_seq not in (known.last_seq, known.last_seq + 1):
        # Re-sending the last accepted batch is allowed: retries after a timeout must work.
        raise faults.bad_param(
            f"batch_seq {session.batch_seq} is out of order: replace batches go one at a time, "
            f"in order; expected {known.last_seq + 1}"
        )


def apply_upload(
    audience: Audience,
    op: str,
    payload: Payload,
    session: SessionParams | None,
    valid: list[str],
) -> None:
    audience.multi_key = payload.multi_key
    upload = None
    if session is not None:
        upload = audience.sessions.setdefault(session.session_id, UploadSession(op))
        upload.last_seq = max(upload.last_seq, session.batch_seq)
    if op == ADD:
        audience.members.update(valid)
    elif op == REMOVE:
        audience.members.difference_update(valid)
    elif upload is not None:
        upload.pending.update(valid)
        audience.open_replace_id = session.session_id if session else None
    if upload is not None and session is not None and session.last_batch_flag:
        upload.closed = True
        if op == REPLACE:
            audience.members, upload.pending = upload.pending, set()
            audience.open_replace_id = None


@dataclass
class Stats:
    calls: int = 0
    upload_calls: int = 0
    entries_received: int = 0
    max_entries_per_call: int = 0
    oversized_calls: int = 0
    throttled: int = 0
    calls_in_penalty: int = 0
    transient: int = 0
    transient_before_apply: int = 0
    transient_after_apply: int = 0
    invalid_entries: int = 0
    inflight: int = 0  # Graph calls being served now
    max_inflight: int = 0
    errors_by_code: Counter[int] = field(default_factory=Counter)

    def to_json(self, audiences: dict[str, Audience]) -> dict[str, Any]:
        counters = {k: v for k, v in vars(self).items() if k != "errors_by_code"}
        return {
            **counters,
            "errors_by_code": {str(code): n for code, n in sorted(self.errors_by_code.items())},
            "audiences": {
                a.id: {
                    "members": len(a.members),
                    "calls": a.upload_calls,
                    "entries_received": a.entries_received,
                }
                for a in audiences.values()
            },
        }
