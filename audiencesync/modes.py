"""Sync modes: what a run does to its audience, and what each chunk's call does (pure).

    add       POST   /{id}/users         IDs join the audience (chunks in parallel, one session)
    remove    DELETE /{id}/users         IDs leave it (payload in the body; chunks in parallel)
    replace   POST   /{id}/usersreplace  the run's IDs become the audience once the session is
                                         closed; batch 1 first and alone, then the others in
                                         parallel (replacesession)
    mirror    POST, then DELETE /users   only what changed since the last completed mirror run:
                                         additions first, removals from chunk `removals_from`

`chunk_op` is the one place that says which operation a chunk's call is: a mode that mixes
operations in one run (mirror: additions first, then removals) extends it from the run's meta.
"""

from __future__ import annotations

from datetime import UTC, datetime

MODES = ("add", "remove", "replace", "mirror")
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
    if mode == "mirror":
        return "remove" if chunk >= int(meta["removals_from"]) else "add"
    return mode


def is_sequential(meta: dict[str, str]) -> bool:
    """A replace run: batch 1 goes first and alone (Meta opens the session on it)."""
    return meta.get("mode") == "replace"


def unclosed_message(meta: dict[str, str], error: str, ids_sent: int) -> str:
    """Every batch was sent, but the last one (last_batch_flag=true) was refused."""
    if is_sequential(meta):
        return (
            f"every batch was sent but Meta refused the replace session's close ({error}): Meta "
            "ends a session never closed 90 minutes after its first batch"
            f"{_opened(meta)} and then replaces the audience with the batches it received: all "
            f"{ids_sent:,} IDs sent, so it will hold the whole source then; nothing to run again"
        )
    return f"all IDs sent but the upload session was not closed: {error}"


def replace_failed_message(reason: str, meta: dict[str, str], ids_sent: int) -> str:
    """A replace batch failed for good: what the audience looks like now, and what to do.

    The session is not closed (it lacks a batch), and Meta ends a session never closed 90
    minutes after its first batch by replacing the audience with what arrived (its guide)."""
    if not meta.get("replace_opened_at"):
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


def _opened(meta: dict[str, str]) -> str:
    if not meta.get("replace_opened_at"):
        return ""
    at = datetime.fromtimestamp(float(meta["replace_opened_at"]), tz=UTC)
    return f" (batch 1 was accepted at {at:%H:%M:%S} UTC)"
