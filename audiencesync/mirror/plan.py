"""What a mirror run's chunks do and how its report adds up (pure).

A mirror run stages its additions first (chunks 0 .. removals_from-1, POST /users in the run's
session) and then its removals (chunks removals_from .., DELETE /users in a second session, since
a session belongs to one operation). Its counts of the source (values read, rejected, duplicates,
unchanged) are known before anything is staged and kept in the run's meta.

Accounting: ids_read = added + unchanged + rejected + duplicates + additions_failed, and
separately removals_planned = removed + removals_failed; `unaccounted` is what either misses.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

MIRROR = "mirror"
MIN_AUDIENCE = 100  # Meta refuses a removal that leaves fewer people


def lock_name(audience_id: str) -> str:
    """One mirror run per audience at a time, whoever starts it (the CLI or a schedule); the ':'
    keeps it apart from declared audiences' names (letters, digits, '-' and '_')."""
    return f"mirror:{audience_id}"


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


def mirror_meta(counts, chunk_size: int, remove_session_id: int) -> dict[str, str | int]:
    """The run meta fields a mirror run records before staging (from mirrordiff.DiffCounts)."""
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


def mirror_totals(meta: dict[str, str], results: list[dict]) -> dict:
    """added/removed and their failures, from the chunks' outcomes split at removals_from."""
    edge = int(meta["removals_from"])
    adds = [r for r in results if r["chunk"] < edge]
    removes = [r for r in results if r["chunk"] >= edge]
    return {
        "added": sum(r["uploaded"] for r in adds),
        "additions_failed": sum(r["ids_failed"] for r in adds),
        "removed": sum(r["uploaded"] for r in removes),
        "removals_failed": sum(r["ids_failed"] for r in removes),
        "unchanged": int(meta.get("unchanged", 0)),
        "additions_planned": int(meta.get("additions_planned", 0)),
        "removals_planned": int(meta.get("removals_planned", 0)),
    }


def apply_mirror(report: dict, meta: dict[str, str], results: list[dict]) -> None:
    """Re-state a report built from the chunks in the mirror run's terms."""
    totals = mirror_totals(meta, results)
    rejected = dict(report["ids_rejected"])
    for reason, count in orjson.loads(meta.get("source_rejected", "{}")).items():
        rejected[reason] = rejected.get(reason, 0) + count
    report.update(totals)
    report["ids_rejected"] = dict(sorted(rejected.items()))
    report["duplicates"] += int(meta.get("source_duplicates", 0))
    report["ids_read"] = int(meta.get("source_ids_read", 0))
    report["ids_per_s"] = round(report["ids_read"] / max(report["duration_s"], 1e-9), 1)
    read_side = totals["added"] + totals["unchanged"] + sum(rejected.values())
    read_side += report["duplicates"] + totals["additions_failed"]
    removal_side = totals["removed"] + totals["removals_failed"]
    report["unaccounted"] = (report["ids_read"] - read_side) + (
        totals["removals_planned"] - removal_side
    )
