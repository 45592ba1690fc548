"""Shared by the end-to-end tests: dirty audiences and an independent oracle for them."""

from __future__ import annotations

import random
import re
import uuid

MAID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ZERO = "00000000-0000-0000-0000-000000000000"


def dirty_rows(n: int, seed: int = 7) -> list[str]:
    """n raw values: upper case, padding, blanks, junk, opted-out zeros and duplicates."""
    rng = random.Random(seed)
    rows: list[str] = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.03:
            rows.append("")
        elif roll < 0.06:
            rows.append(rng.choice(["not-an-id", "12345", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"]))
        elif roll < 0.08:
            rows.append(ZERO)
        elif roll < 0.13 and rows:
            rows.append(f"  {rng.choice(rows[-50:]).upper()} ")  # a near duplicate
        else:
            maid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            rows.append(maid.upper() if roll < 0.5 else f" {maid}\t" if roll < 0.6 else maid)
    return rows


def expected(rows: list[str], chunk_size: int = 10_000) -> dict:
    """What a correct run must report, computed independently of audiencesync's code."""
    members: set[str] = set()
    uploaded = duplicates = rejected = 0
    for start in range(0, len(rows), chunk_size):
        seen: set[str] = set()
        for raw in rows[start : start + chunk_size]:
            value = raw.strip().lower()
            if not MAID.fullmatch(value) or value == ZERO:
                rejected += 1
            elif value in seen:
                duplicates += 1
            else:
                seen.add(value)
        uploaded += len(seen)
        members |= seen
    return {
        "members": members,
        "uploaded": uploaded,
        "duplicates": duplicates,
        "rejected": rejected,
    }
