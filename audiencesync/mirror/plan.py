"""A mirror run's plan (pure): its lock, the meta it records before staging, its guard.

A mirror run stages its additions first (chunks 0 .. removals_from-1, POST /users in the run's
session) and then its removals (chunks removals_from .., DELETE /users in a second session, since
a session belongs to one operation: domain/modes.py). Its counts of the source (values read,
rejected, duplicates, unchanged) are known before anything is staged and kept in the run's meta;
the report adds them up (domain/report.py).
"""

from __future__ import annotations

import orjson

MIN_AUDIENCE = 100  # Meta refuses a removal that leaves fewer people


def lock_name(audience_id: str) -> str:
    """One mirror run per audience at a time, whoever starts it (the CLI or a schedule); the ':'
    keeps it apart from declared audiences' names (letters, digits, '-' and '_')."""
    return f"mirror:{audience_id}"


def mirror_meta(counts, chunk_size: int, remove_session_id: int) -> dict[str, str | int]:
    """The run meta fields a mirror run records before staging (from mirror.diff.DiffCounts)."""
    return {
        "removals_from": -(-counts.additions // chunk_size),  # chunks of additions, rounded up
        "remove_session_id": remove_session_id,
        "source_ids_read": counts.ids_read,
        "source_rejected": orjson.dumps(dict(counts.rejected)).decode(),
        "source_duplicates": counts.duplicates,
        "unchanged": counts.unchanged,
        "additions_planned": counts.additions,
        "removals_planned": counts.removals,
        "estimated_ids": counts.additions + counts.removals,
    }


def guard_message(counts) -> str | None:
    """Why the run must not start, or None: removals that leave under MIN_AUDIENCE people."""
    if not counts.removals or counts.new_size >= MIN_AUDIENCE:
        return None
    return (
        f"mirror run refused: it would remove {counts.removals} IDs and leave the audience with "
        f"{counts.new_size} people, and Meta refuses to go under {MIN_AUDIENCE}; check the source "
        "(an empty or truncated export?), or remove the audience's people another way"
    )
