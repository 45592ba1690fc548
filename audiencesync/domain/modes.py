"""Sync modes: what a run does to its audience, and what each chunk's call does (pure).

    add       POST   /{id}/users         IDs join the audience (chunks in parallel, one session)
    remove    DELETE /{id}/users         IDs leave it (payload in the body; chunks in parallel)
    replace   POST   /{id}/usersreplace  the run's IDs become the audience once the session is
                                         closed; batch 1 first and alone, then the others in
                                         parallel (tasks/replacing.py)
    mirror    POST, then DELETE /users   only what changed since the last completed mirror run:
                                         additions first, removals from chunk `removals_from`

`chunk_op` is the one place that says which operation a chunk's call is: a mode that mixes
operations in one run (mirror: additions first, then removals) extends it from the run's meta.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from audiencesync.store.meta import Mode, RunMeta

MIRROR = Mode.MIRROR
MODES = tuple(Mode)  # typed in store/meta.py, beside the run's other fields
# the report's line
VERB = {"add": "uploaded", "remove": "removed", "replace": "replaced with", "mirror": "sent"}
RETRY_HINT = {
    "add": "upload again to retry them (re-adding IDs is harmless)",
    "remove": "run the removal again to retry them (removing IDs again is harmless)",
    "replace": "run the replace again",
    "mirror": "run the mirror again (it re-sends the difference: the snapshot was not updated)",
}


def chunk_op(meta: RunMeta, chunk: int) -> Mode:
    """The operation chunk `chunk` of the run described by `meta` performs."""
    if meta.mode == MIRROR:
        return Mode.REMOVE if chunk >= _removals_from(meta) else Mode.ADD
    return meta.mode


def _removals_from(meta: RunMeta) -> int:
    if meta.removals_from is None:
        raise ValueError("a mirror run's meta has no removals_from")
    return meta.removals_from


MAX_REPLACE = 100_000_000  # Meta cannot replace an audience of this many people or more
TOO_BIG_HINT = "use --mode mirror (adds and removes only what changed), or remove and add"


def too_big_to_replace(audience: dict | None) -> str | None:
    """What to do when Meta's answer about the audience (the upload's preflight) shows it too
    big to replace (Meta would refuse batch 1 with 2650/1870144); None when it is not, or the
    count is unknown (Meta's refusal then stops the run at batch 1)."""
    size = (audience or {}).get("approximate_count_lower_bound")
    if not isinstance(size, int) or size < MAX_REPLACE:
        return None
    return (
        f"the audience has about {size:,} people: Meta cannot replace an audience of "
        f"{MAX_REPLACE:,} people or more (2650/1870144); nothing was sent: {TOO_BIG_HINT}"
    )


def is_sequential(meta: RunMeta) -> bool:
    """A replace run: batch 1 goes first and alone (Meta opens the session on it)."""
    return meta.mode == Mode.REPLACE


def unclosed_message(meta: RunMeta, error: str, ids_sent: int) -> str:
    """Every batch was sent, but the last one (last_batch_flag=true) was refused."""
    if is_sequential(meta):
        return (
            f"every batch was sent but Meta refused the replace session's close ({error}): Meta "
            "ends a session never closed 90 minutes after its first batch"
            f"{_opened(meta)} and then replaces the audience with the batches it received: all "
            f"{ids_sent:,} IDs sent, so it will hold the whole source then; nothing to run again"
        )
    return f"all IDs sent but the upload session was not closed: {error}"


def replace_failed_message(reason: str, meta: RunMeta, ids_sent: int) -> str:
    """A replace batch failed for good: what the audience looks like now, and what to do.

    The session is not closed (it lacks a batch), and Meta ends a session never closed 90
    minutes after its first batch by replacing the audience with what arrived (its guide)."""
    if meta.replace_opened_at is None:
        return (
            f"the replace stopped: {reason}; Meta accepted no batch, so the audience is "
            "unchanged; fix that, then run the replace again"
        )
    return (
        f"the replace stopped: {reason}; the batches after it were not sent and the session "
        f"was not closed: Meta ends it 90 minutes after its first batch{_opened(meta)} and "
        f"then replaces the audience with the {ids_sent:,} IDs it received; fix that, then run "
        "the replace again once that session has ended (Meta refuses a second replace meanwhile)"
    )


def _opened(meta: RunMeta) -> str:
    if meta.replace_opened_at is None:
        return ""
    at = datetime.fromtimestamp(meta.replace_opened_at, tz=UTC)
    return f" (batch 1 was accepted at {at:%H:%M:%S} UTC)"


@dataclass(frozen=True)
class Session:
    op: Mode  # add, remove or replace: the edge's method
    session_id: int
    first_chunk: int  # batch_seq = chunk - first_chunk + 1
    closed_field: str  # the run's flag once its last batch was accepted (hash field and RunMeta)


def sessions(meta: RunMeta) -> list[Session]:
    """The run's upload sessions: one per operation it sends."""
    if meta.mode != MIRROR:
        return [Session(meta.mode, meta.session_id, 0, "session_closed")]
    if meta.remove_session_id is None:
        raise ValueError("a mirror run's meta has no remove_session_id")
    return [
        Session(Mode.ADD, meta.session_id, 0, "session_closed"),
        Session(Mode.REMOVE, meta.remove_session_id, _removals_from(meta), "remove_session_closed"),
    ]


def is_closed(meta: RunMeta, session: Session) -> bool:
    """The session's last batch was accepted (by an earlier delivery of finalize)."""
    return bool(getattr(meta, session.closed_field))


def chunk_session(meta: RunMeta, chunk: int) -> tuple[Session, dict]:
    """The session chunk n belongs to and the session field it is sent with."""
    session = [s for s in sessions(meta) if chunk >= s.first_chunk][-1]
    batch = {"session_id": session.session_id, "batch_seq": chunk - session.first_chunk + 1}
    return session, batch | {"last_batch_flag": False}
