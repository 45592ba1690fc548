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
REPLACE_MAX_SIZE = 100_000_000  # Meta replaces no audience this big (2650/1870144)


@dataclass
class UploadSession:
    op: str
    closed: bool = False  # takes nothing more: closed by last_batch_flag, or timed out
    timed_out: bool = False  # a replace never closed within the window
    opened_s: float = 0.0  # replace: when batch_seq 1 arrived (monotonic)
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
    replace_error: bool = False  # the last replace session timed out (until one closes)
    approximate_count: int | None = None  # /_sandbox/audiences knob: size without uploading it
    calls: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=CALL_RECORDS_MAX))
    upload_calls: int = 0
    entries_received: int = 0

    def size(self) -> int:
        return len(self.members) if self.approximate_count is None else self.approximate_count


def _kind(multi_key: bool) -> str:
    return "multi" if multi_key else "single"


def check_upload(
    audience: Audience,
    op: str,
    payload: Payload,
    session: SessionParams | None,
    valid: list[str],
) -> None:
    """Raise the fault Meta would answer with; changes nothing (expire_replace ran before)."""
    if op == REPLACE and audience.size() >= REPLACE_MAX_SIZE:
        raise faults.replace_session(
            f"An audience of {REPLACE_MAX_SIZE:,} people or more cannot be replaced: add and "
            "remove instead",
            subcode=1870144,
        )
    if audience.multi_key is not None and audience.multi_key != payload.multi_key:
        raise faults.schema_mismatch(_kind(audience.multi_key), _kind(payload.multi_key))
    if session is not None:
        known = audience.sessions.get(session.session_id)
        if known is not None and known.op != op:
            raise faults.bad_param(
                f"session {session.session_id} belongs to another operation ({known.op}), not {op}"
            )
        if op == REPLACE:
            _check_replace(audience, session, known)
        elif known is not None and known.closed:
            raise faults.bad_param(
                f"session {session.session_id} is closed: its batch with last_batch_flag=true "
                "was already accepted; start a new session"
            )
    if op == REMOVE and len(audience.members) >= REMOVE_FLOOR:
        leaving = sum(1 for entry in set(valid) if entry in audience.members)
        if len(audience.members) - leaving < REMOVE_FLOOR:
            raise faults.bad_param(
                f"this removal would leave the audience with fewer than {REMOVE_FLOOR} people; "
                "Meta refuses that (remove fewer IDs, or replace the audience)"
            )


def _check_replace(audience: Audience, session: SessionParams, known: UploadSession | None) -> None:
    """Meta's replace session: batch_seq 1 opens it, then any order, duplicates allowed."""
    sid = session.session_id
    if known is not None and known.timed_out:
        raise faults.replace_session(
            f"Replace session {sid} timed out: the audience was replaced with the batches "
            "received before the timeout, and this batch was discarded",
            subcode=1870158,
        )
    if known is not None and known.closed:
        raise faults.replace_session(f"Replace session {sid} has already finished", 1870159)
    if known is None and session.batch_seq != 1:
        raise faults.replace_session(
            f"A replace session must start with batch_seq 1, got {session.batch_seq}",
            subcode=1870147,
        )
    if known is None and audience.open_replace_id is not None:
        raise faults.replace_session(
            f"An update is in progress on this audience (replace session "
            f"{audience.open_replace_id}): wait for it to finish",
            subcode=1870145,
        )


def expire_replace(audience: Audience, now_s: float, window_s: float) -> None:
    """A replace session never closed ends window_s after batch 1: the audience becomes what
    arrived so far (applied lazily, before anything reads or changes the audience)."""
    if audience.open_replace_id is None:
        return
    upload = audience.sessions[audience.open_replace_id]
    if now_s < upload.opened_s + window_s:
        return
    audience.members, upload.pending = upload.pending, set()
    upload.closed = upload.timed_out = True
    audience.open_replace_id, audience.replace_error = None, True


def apply_upload(
    audience: Audience,
    op: str,
    payload: Payload,
    session: SessionParams | None,
    valid: list[str],
    now_s: float = 0.0,
) -> None:
    audience.multi_key = payload.multi_key
    if op == REPLACE and session is not None:
        _apply_replace(audience, session, valid, now_s)
        return
    upload = None
    if session is not None:
        upload = audience.sessions.setdefault(session.session_id, UploadSession(op))
        upload.last_seq = max(upload.last_seq, session.batch_seq)
        upload.closed = upload.closed or session.last_batch_flag
    if op == ADD:
        audience.members.update(valid)
    elif op == REMOVE:
        audience.members.difference_update(valid)


def _apply_replace(
    audience: Audience, session: SessionParams, valid: list[str], now_s: float
) -> None:
    upload = audience.sessions.get(session.session_id)
    if upload is None or session.batch_seq == 1:
        # batch_seq 1 starts a session, even again (the guide: "never another 1"): what arrived
        # before is dropped and the window starts over.
        upload = audience.sessions[session.session_id] = UploadSession(REPLACE, opened_s=now_s)
        audience.open_replace_id = session.session_id
    upload.last_seq = max(upload.last_seq, session.batch_seq)
    upload.pending.update(valid)
    if session.last_batch_flag:
        audience.members, upload.pending = upload.pending, set()
        upload.closed = True
        audience.open_replace_id, audience.replace_error = None, False


@dataclass
class Stats:
    calls: int = 0
    upload_calls: int = 0
    entries_received: int = 0
    max_entries_per_call: int = 0
    oversized_calls: int = 0
    throttled: int = 0
    calls_in_penalty: int = 0
    throttled_by: Counter[str] = field(default_factory=Counter)  # bucket, window, score
    transient: int = 0
    transient_before_apply: int = 0
    transient_after_apply: int = 0
    invalid_entries: int = 0
    inflight: int = 0  # Graph calls being served now
    max_inflight: int = 0
    errors_by_code: Counter[int] = field(default_factory=Counter)

    def to_json(self, audiences: dict[str, Audience]) -> dict[str, Any]:
        counters = {k: v for k, v in vars(self).items() if not isinstance(v, Counter)}
        return {
            **counters,
            "throttled_by": dict(self.throttled_by),
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
