"""Sync modes: what a run does to its audience, and what each chunk's call does (pure).

    add       POST   /{id}/users         IDs join the audience (chunks in parallel, one session)
    remove    DELETE /{id}/users         IDs leave it (payload in the body; chunks in parallel)
    replace   POST   /{id}/usersreplace  the run's IDs become the audience once the session is
                                         closed; batches go one at a time, in order (replaceseq)
    mirror    POST, then DELETE /users   only what changed since the last completed mirror run:
                                         additions first, removals from chunk `removals_from`

`chunk_op` is the one place that says which operation a chunk's call is: a mode that mixes
operations in one run (mirror: additions first, then removals) extends it from the run's meta.
"""

from __future__ import annotations

MODES = ("add", "remove", "replace", "mirror")
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
    """Replace batches go one at a time, in batch_seq order (Meta's rule for usersreplace)."""
    return meta.get("mode") == "replace"
