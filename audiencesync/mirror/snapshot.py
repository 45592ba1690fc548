"""What a mirror run delivered for an audience: 16-byte IDs in 256 sorted bucket files.

    {state_dir}/{audience_id}/current/{00..ff}.bin   the last completed run's set
    {state_dir}/{audience_id}/pending/{00..ff}.bin   the set the latest run is sending
    {state_dir}/{audience_id}/pending/run_id         ... and which run that is
    {state_dir}/{audience_id}/*/form                 how the IDs were sent: plain or sha256

A normalised MAID (8-4-4-4-12 hex) is stored as its 16 bytes, so it converts back exactly (a
removal sends the ID itself). Bucket = first byte; each bucket file is sorted and unique, so the
diff of two snapshots needs one bucket of each in memory at a time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

BUCKETS = 256
ID_BYTES = 16
ID_DTYPE = np.dtype("S16")  # big-endian bytes: byte order is numeric order
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE = np.zeros(256, dtype=np.uint8)
_NIBBLE[_HEX] = np.arange(16, dtype=np.uint8)
_HEX_AT = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])  # digits of a MAID


def encode(maids: list[str]) -> np.ndarray:
    """Normalised MAIDs (lower-case 8-4-4-4-12) -> an S16 array, same order."""
    if not maids:
        return np.empty(0, dtype=ID_DTYPE)
    chars = np.frombuffer("".join(maids).encode("ascii"), dtype=np.uint8).reshape(-1, 36)
    nibbles = _NIBBLE[chars[:, _HEX_AT]]
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    return np.ascontiguousarray(packed).view(ID_DTYPE).ravel()


def decode(ids: np.ndarray) -> list[str]:
    """An S16 array -> normalised MAIDs, same order (the exact inverse of encode)."""
    if not len(ids):
        return []
    raw = np.ascontiguousarray(ids).view(np.uint8).reshape(-1, ID_BYTES)
    chars = np.full((len(raw), 36), ord("-"), dtype=np.uint8)
    chars[:, _HEX_AT[0::2]] = _HEX[raw >> 4]
    chars[:, _HEX_AT[1::2]] = _HEX[raw & 0x0F]
    text = chars.tobytes().decode("ascii")
    return [text[i : i + 36] for i in range(0, len(text), 36)]


def bucket_of(ids: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(ids).view(np.uint8)[::ID_BYTES]


def read_ids(path: Path) -> np.ndarray:
    if not path.exists():
        return np.empty(0, dtype=ID_DTYPE)
    return np.fromfile(path, dtype=ID_DTYPE)


def write_ids(path: Path, ids: np.ndarray) -> None:
    with open(path, "wb") as out:
        out.write(np.ascontiguousarray(ids).tobytes())


def bucket_name(bucket: int) -> str:
    return f"{bucket:02x}.bin"


class AudienceState:
    """One audience's snapshots under the state directory."""

    def __init__(self, state_dir: str | Path, audience_id: str):
        self.root = Path(state_dir) / audience_id
        self.current = self.root / "current"
        self.pending = self.root / "pending"

    def work_dir(self, run_id: str) -> Path:
        """Scratch space of one run (spill files, diff streams); removed when it is done."""
        return self.root / f"work-{run_id}"

    def current_bucket(self, bucket: int) -> np.ndarray:
        return read_ids(self.current / bucket_name(bucket))

    def current_size(self) -> int:
        if not self.current.exists():
            return 0
        return sum(p.stat().st_size for p in self.current.glob("*.bin")) // ID_BYTES

    def pending_run(self) -> str | None:
        marker = self.pending / "run_id"
        return marker.read_text().strip() if marker.exists() else None

    def start_pending(self) -> Path:
        """A fresh, empty pending directory (any earlier one must be settled first)."""
        shutil.rmtree(self.pending, ignore_errors=True)
        self.pending.mkdir(parents=True)
        return self.pending

    def mark_pending(self, run_id: str, form: str) -> None:
        """Written last: a pending directory without it is incomplete and never promoted.
        `form` is how its IDs were sent (plain or sha256): removals must be sent the same way."""
        (self.pending / "form").write_text(form)
        (self.pending / "run_id").write_text(run_id)

    def current_form(self) -> str | None:
        marker = self.current / "form"
        return marker.read_text().strip() if marker.exists() else None

    def promote(self) -> None:
        """pending becomes current: two renames on one file system, old removed after."""
        old = self.root / "old"
        shutil.rmtree(old, ignore_errors=True)
        if self.current.exists():
            os.rename(self.current, old)
        os.rename(self.pending, self.current)
        shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.pending, ignore_errors=True)

    def clean_work(self) -> None:
        for path in self.root.glob("work-*"):
            shutil.rmtree(path, ignore_errors=True)


def ids_of(state: AudienceState) -> Iterable[str]:
    """Every ID of the current snapshot, in order (tests and audits)."""
    for bucket in range(BUCKETS):
        yield from decode(state.current_bucket(bucket))
