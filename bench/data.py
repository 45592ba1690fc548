"""Benchmark input: a CSV of n random, well-formed MAIDs, written fast and streamed to disk."""

from __future__ import annotations

import os
from pathlib import Path

BLOCK_IDS = 100_000


def maid_lines(count: int) -> list[str]:
    hexes = os.urandom(16 * count).hex()
    return [
        f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}\n"
        for h in (hexes[i : i + 32] for i in range(0, 32 * count, 32))
    ]


def write_maids_csv(path: Path, ids: int) -> Path:
    with open(path, "w") as f:
        f.write("maid\n")
        for start in range(0, ids, BLOCK_IDS):
            f.writelines(maid_lines(min(BLOCK_IDS, ids - start)))
    return path
