"""The mirror diff and its snapshots (files only; fakeredis for the promotion's report look-up)."""

from __future__ import annotations

import random
import tracemalloc

import fakeredis
import numpy as np
import pytest
from e2e_helpers import ZERO, maids

from audiencesync.mirror import diff as mirrordiff
from audiencesync.mirror.snapshot import AudienceState, decode, encode, ids_of
from audiencesync.store.runs import RunStore
from producers.mirror import settle_pending

EDGES = [  # first and last buckets, and trailing zero bytes (numpy's S dtype pads with them)
    "00000000-0000-0000-0000-000000000001",
    "00ff0000-0000-0000-0000-000000000000",
    "ff000000-0000-0000-0000-000000000000",
    "ff000000-0000-0000-0000-000000000100",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
]


def batches(values: list[str], size: int = 1_000) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def run(state: AudienceState, run_id: str, values: list[str]) -> mirrordiff.DiffCounts:
    return mirrordiff.compute(state, run_id, batches(values))


def sent(state: AudienceState, run_id: str, name: str) -> list[str]:
    path = state.work_dir(run_id) / name
    return [v for chunk in mirrordiff.chunks(path, 7) for v in chunk]


def test_encoding_is_exact_and_sorts_like_the_text(tmp_path):
    values = [*EDGES, *maids(2_000, seed=1)]
    ids = encode(values)
    assert decode(ids) == values
    assert decode(np.sort(ids)) == sorted(values)
    assert len(np.unique(ids)) == len(values)


def test_first_run_sends_everything_as_additions_in_bucket_order(tmp_path):
    state = AudienceState(tmp_path, "42")
    values = [*EDGES, *maids(3_000, seed=2)]
    counts = run(state, "r1", values)
    assert (counts.additions, counts.removals, counts.unchanged) == (len(values), 0, 0)
    assert counts.previous_size == 0 and counts.new_size == len(values)
    assert sent(state, "r1", mirrordiff.ADDITIONS) == sorted(values)
    assert sent(state, "r1", mirrordiff.REMOVALS) == []
    assert state.pending_run() == "r1"


def test_second_run_sends_only_the_difference(tmp_path):
    state = AudienceState(tmp_path, "42")
    old = [*EDGES[:3], *maids(4_000, seed=3)]
    run(state, "r1", old)
    state.promote()
    new = [*old[2:3500], *EDGES[3:], *maids(300, seed=4)]  # 2 edges and 500 others leave
    counts = run(state, "r2", list(reversed(new)))
    assert sent(state, "r2", mirrordiff.ADDITIONS) == sorted(set(new) - set(old))
    assert sent(state, "r2", mirrordiff.REMOVALS) == sorted(set(old) - set(new))
    assert counts.unchanged == len(set(old) & set(new))
    assert counts.previous_size == len(old) and counts.new_size == len(new)
    state.promote()
    assert list(ids_of(state)) == sorted(new)


def test_rejected_values_are_counted_by_reason_and_duplicates_across_the_source(tmp_path):
    state = AudienceState(tmp_path, "42")
    good = maids(2_500, seed=5)
    # a duplicate within a batch, duplicates in other batches (upper case and padded too)
    values = [*good, good[0], good[10].upper(), f"  {good[2000]} ", "", "junk", ZERO, "\udcff"]
    random.Random(5).shuffle(values)
    counts = run(state, "r1", values)
    assert counts.ids_read == len(values)
    assert counts.rejected == {"blank": 1, "invalid_format": 1, "opted_out": 1, "not_utf8": 1}
    assert counts.duplicates == 3 and counts.additions == len(good)
    read = counts.additions + counts.unchanged + sum(counts.rejected.values())
    assert read + counts.duplicates == counts.ids_read


def test_an_unchanged_source_sends_nothing(tmp_path):
    state = AudienceState(tmp_path, "42")
    values = maids(1_500, seed=6)
    run(state, "r1", values)
    state.promote()
    counts = run(state, "r2", values)
    assert (counts.additions, counts.removals, counts.unchanged) == (0, 0, len(values))


@pytest.mark.parametrize(
    ("status", "pending_marked", "kept"),
    [
        ("completed", True, "new"),
        ("completed_with_errors", True, "old"),
        ("failed", True, "old"),
        (None, True, "old"),  # no report: the run never finished
        ("completed", False, "old"),  # the diff itself never finished
    ],
)
def test_the_previous_runs_snapshot_is_promoted_only_if_it_completed(
    tmp_path, status, pending_marked, kept
):
    store = RunStore(fakeredis.FakeRedis())
    state = AudienceState(tmp_path, "42")
    old, new = maids(200, seed=7), maids(300, seed=8)
    run(state, "r1", old)
    state.promote()
    run(state, "r2", new)
    if not pending_marked:
        (state.pending / "run_id").unlink()
    if status:
        store.save_report("r2", {"run_id": "r2", "status": status})
    settle_pending(store, state)
    assert not state.pending.exists()
    assert list(ids_of(state)) == sorted(new if kept == "new" else old)


@pytest.mark.slow
def test_memory_is_one_bucket_at_a_time_on_a_million_ids(tmp_path):
    """1M IDs are 16 MB as binary and ~100 MB as Python strings: the diff holds neither."""
    rng = np.random.default_rng(9)
    n, size = 1_000_000, 10_000

    def source():
        for _ in range(n // size):
            yield decode(rng.integers(0, 256, (size, 16), dtype=np.uint8).view("S16").ravel())

    state = AudienceState(tmp_path, "42")
    tracemalloc.start()
    try:
        counts = mirrordiff.compute(state, "r1", source())
        peak_b = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counts.additions == n
    assert peak_b < 8_000_000, f"peak {peak_b / 1e6:.1f} MB"
