"""Sync modes: what a run does to its audience, and what each chunk's call does (pure).

    add       POST   /{id}/users         IDs join the audience (chunks in parallel, one session)
    remove    DELETE /{id}/users         IDs leave it (payload in the body; chunks in parallel)
    replace   POST   /{id}/usersreplace  the run's IDs become the audience once the session is
                                         closed; batches go one at a time, in order
                                         (store/replace.py)
    mirror    POST, then DELETE /users   only what changed since the last completed mirror run:
                                         additions first, removals from chunk `removals_from`

`chunk_op` is the one place that says which operation a chunk's call is: a mode that mixes
operations in one run (mirror: additions first, then removals) extends it from the run's meta.
"""

from __future__ import annotations

from dataclasses import dataclass

MIRROR = "mirror"
MODES = ("add", "remove", "replace", MIRROR)
OPS = ("add", "remove", "replace")  # what one chunk's call does (chunk_op)
# the report's line
VERB = {"add": "uploaded", "remove": "removed", "replace": "replaced with", "mirror": "sent"}
RETRY_HINT = {
    "add": "upload again to retry them (re-adding IDs is harmless)",
    "remove": "run the removal again to retry them (removing IDs again is harmless)",
    "replace": "run the replace again",
    "mirror": "run the mirror again (it re-sends the difference: the snapshot was not updated)",
}


def chunk_op(meta: dict[str, str], chunk: int) -> str:
    """The operation chunk `chunk` of the run described by `meta` performs."""
    mode = meta.get("mode", "add")
    if mode == MIRROR:
        return "remove" if chunk >= int(meta["removals_from"]) else "add"
    return mode


def is_sequential(meta: dict[str, str]) -> bool:
    """Replace batches go one at a time, in batch_seq order (Meta's rule for usersreplace)."""
    return meta.get("mode") == "replace"


def unclosed_message(meta: dict[str, str], error: str) -> str:
    """Every batch was sent, but the last one (last_batch_flag=true) was refused."""
    if is_sequential(meta):
        return (
            f"every batch was sent but the replace session was not closed ({error}): Meta "
            "replaces the audience only when it is, so it keeps its members; run the replace again"
        )
    return f"all IDs sent but the upload session was not closed: {error}"


def replace_failed_message(reason: str) -> str:
    """A replace batch failed for good: what the audience looks like now, and what to do.

    Meta applies a replace when its session is closed; we found nothing from Meta on a session
    left open (a timeout, whether it is ever applied): say no more than that."""
    return (
        f"the replace stopped: {reason}; the batches after it were not sent and the replace "
        "session was left open (never closed), so the audience should be unchanged (Meta "
        "applies a replace when its session is closed; if it ever applies an open one, the "
        "audience is partly replaced); run the replace again"
    )


@dataclass(frozen=True)
class Session:
    op: str  # "add" or "remove": the edge's method
    session_id: int
    first_chunk: int  # batch_seq = chunk - first_chunk + 1
    closed_field: str  # the run meta's flag once its last batch was accepted


def sessions(meta: dict[str, str]) -> list[Session]:
    """The run's upload sessions: one per operation it sends."""
    if meta.get("mode") != MIRROR:
        return [Session(meta.get("mode", "add"), int(meta["session_id"]), 0, "session_closed")]
    edge = int(meta["removals_from"])
    return [
        Session("add", int(meta["session_id"]), 0, "session_closed"),
        Session("remove", int(meta["remove_session_id"]), edge, "remove_session_closed"),
    ]


def chunk_session(meta: dict[str, str], chunk: int) -> tuple[Session, dict]:
    """The session chunk n belongs to and the session field it is sent with."""
    session = [s for s in sessions(meta) if chunk >= s.first_chunk][-1]
    batch = {"session_id": session.session_id, "batch_seq": chunk - session.first_chunk + 1}
    return session, batch | {"last_batch_flag": False}
