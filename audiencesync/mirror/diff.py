"""A mirror run's difference: source -> normalise -> 256 spill files -> per bucket sort, unique,
diff against the current snapshot -> additions and removals files, and the new snapshot written
as pending. Memory is one source batch, then one bucket at a time (file I/O, no Redis).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audiencesync.domain.normalize import prepare_staged
from audiencesync.mirror.snapshot import (
    BUCKETS,
    ID_BYTES,
    ID_DTYPE,
    AudienceState,
    bucket_name,
    bucket_of,
    decode,
    encode,
    read_ids,
    write_ids,
)
from audiencesync.store.staging import encode_raw

ADDITIONS, REMOVALS = "additions.bin", "removals.bin"


@dataclass
class DiffCounts:
    ids_read: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0  # within the whole source, after normalising
    additions: int = 0
    removals: int = 0
    unchanged: int = 0
    previous_size: int = 0

    @property
    def new_size(self) -> int:
        return self.previous_size - self.removals + self.additions


def spill(work: Path, batches: Iterable[list[str]]) -> DiffCounts:
    """Normalise every value (rejected ones counted by reason) and append each valid ID to the
    spill file of its bucket."""
    spill_dir = work / "spill"
    spill_dir.mkdir(parents=True, exist_ok=True)
    counts = DiffCounts()
    files = [open(spill_dir / bucket_name(b), "ab") for b in range(BUCKETS)]  # noqa: SIM115
    try:
        for batch in batches:
            if not batch:
                continue
            counts.ids_read += len(batch)
            prepared = prepare_staged(encode_raw(batch), len(batch))
            counts.rejected.update(prepared.rejected)
            counts.duplicates += prepared.duplicates
            ids = encode(prepared.entries)
            order = np.argsort(bucket_of(ids), kind="stable")
            ids = ids[order]
            edges = np.searchsorted(bucket_of(ids), np.arange(BUCKETS + 1))
            for bucket in np.flatnonzero(np.diff(edges)):
                files[bucket].write(ids[edges[bucket] : edges[bucket + 1]].tobytes())
    finally:
        for f in files:
            f.close()
    return counts


def diff(
    state: AudienceState, work: Path, run_id: str, counts: DiffCounts, form: str = "plain"
) -> DiffCounts:
    """Per bucket: sort and unique the spilled IDs, compare with the current snapshot, write the
    additions and removals (sorted) and the new snapshot as `pending` for run_id."""
    pending = state.start_pending()
    with open(work / ADDITIONS, "wb") as adds, open(work / REMOVALS, "wb") as removes:
        for bucket in range(BUCKETS):
            spilled = read_ids(work / "spill" / bucket_name(bucket))
            new = np.unique(spilled)
            counts.duplicates += len(spilled) - len(new)
            del spilled
            old = state.current_bucket(bucket)
            added = np.setdiff1d(new, old, assume_unique=True)
            removed = np.setdiff1d(old, new, assume_unique=True)
            adds.write(added.tobytes())
            removes.write(removed.tobytes())
            write_ids(pending / bucket_name(bucket), new)
            counts.previous_size += len(old)
            counts.additions += len(added)
            counts.removals += len(removed)
            counts.unchanged += len(new) - len(added)
    state.mark_pending(run_id, form)
    return counts


def compute(
    state: AudienceState, run_id: str, batches: Iterable[list[str]], form: str = "plain"
) -> DiffCounts:
    work = state.work_dir(run_id)
    counts = spill(work, batches)
    return diff(state, work, run_id, counts, form)


def chunks(path: Path, chunk_size: int) -> Iterator[list[str]]:
    """The IDs of an additions or removals file, chunk_size at a time (one chunk in memory)."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        while block := f.read(chunk_size * ID_BYTES):
            yield decode(np.frombuffer(block, dtype=ID_DTYPE))
