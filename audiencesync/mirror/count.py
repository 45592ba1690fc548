"""Before a mirror run sends: can the audience at Meta and our snapshot of it both be true?

    {state_dir}/{audience_id}/seen.json    Meta's approximate size at the last mirror run

A mirror run sends only the difference from its snapshot; if the audience was emptied or
replaced outside audiencesync, that difference would never restore it. Meta's size cannot be
compared with ours (graph-api-facts.md, "Reading an audience back"): it counts matched people,
not IDs, in coarse buckets, up to 24 h late. So the run refuses only what cannot be: Meta's upper
bound below 1 % of the snapshot (no match rate is that low), when Meta had counted at least that
many at the last run or the snapshot is older than its lag (so no upload of ours is still
uncounted). An audience emptied, or replaced with a small set, is caught; anything else passes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

META_LAG_S = 24 * 3600  # "changes usually take up to 24 hours"
MIN_SNAPSHOT_IDS = 1_000  # fewer: Meta may well count nobody (low match rate, small buckets)
MIN_MATCH_RATE = 0.01  # of a snapshot's IDs, Meta matches at least this share


@dataclass(frozen=True)
class Seen:
    lower: int
    upper: int
    at: float  # epoch s


def read_seen(answer: dict, now: float) -> Seen | None:
    """Meta's answer to GET {audience}?fields=approximate_count_*; None if it gave no count."""
    lower = answer.get("approximate_count_lower_bound")
    upper = answer.get("approximate_count_upper_bound")
    if not isinstance(lower, int) or not isinstance(upper, int) or upper < 0:
        return None
    return Seen(lower, upper, now)


def load(root: Path) -> Seen | None:
    try:
        return Seen(**orjson.loads((root / "seen.json").read_bytes()))
    except (OSError, ValueError, TypeError):
        return None


def save(root: Path, seen: Seen) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "seen.json").write_bytes(orjson.dumps(asdict(seen)))


def snapshot_age_s(current: Path, now: float | None = None) -> float:
    try:
        return (now or time.time()) - current.stat().st_mtime
    except OSError:
        return 0.0


def divergence(
    audience_id: str, snapshot_ids: int, before: Seen | None, now: Seen, age_s: float
) -> str | None:
    """Why the snapshot cannot describe the audience, or None when both may be true."""
    least = snapshot_ids * MIN_MATCH_RATE
    if snapshot_ids < MIN_SNAPSHOT_IDS or now.upper >= least:
        return None
    if not ((before is not None and before.upper >= least) or age_s > META_LAG_S):
        return None  # Meta may not have counted our last run yet
    return (
        f"mirror run refused: Meta counts at most {now.upper:,} people in audience "
        f"{audience_id}, but its last mirror run left {snapshot_ids:,} IDs in it: it was emptied "
        "or replaced outside audiencesync, and sending the difference would not restore it; "
        "replace it with the whole source instead: "
        f"audiencesync upload SOURCE --mode mirror --resync --audience-id {audience_id}"
    )
