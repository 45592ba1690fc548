"""py-spy on every process of the audiencesync contender: where the CPU goes, per 10,000 IDs.

`python -m bench.run --profile DIR` records each process (sandbox, both workers with their pool
children, the producer) as collapsed stacks in DIR, then prints, for each, the time its threads
held the GIL per 10,000-ID chunk and its top functions. Only the GIL holder is sampled (`--gil`):
py-spy's idle detection does not work here, and without it threads waiting on a queue or a
socket fill the profile. The table's CPU ms per call (from /proc) are the exact figures.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

RATE_HZ = 200
TOP = 12


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(__import__("sys").executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is missing: .venv/bin/pip install -e '.[bench]'")
    return found


def record_args(out: Path) -> list[str]:
    return [py_spy(), "record", "--rate", str(RATE_HZ), "--format", "raw", "--gil", "-o", str(out)]


class Recorders:
    """py-spy attached to running processes (with their children) until stopped."""

    def __init__(self, outdir: Path, pids: dict[str, int]) -> None:
        outdir.mkdir(parents=True, exist_ok=True)
        self.procs = [
            subprocess.Popen(
                [*record_args(outdir / f"{name}.txt"), "--subprocesses", "--pid", str(pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in pids.items()
        ]

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for proc in self.procs:
            proc.wait(timeout=60)


def summary(path: Path, chunks: int) -> list[str]:
    """CPU s per chunk and the top functions (self time, then time inside our own code)."""
    own: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    packages: Counter[str] = Counter()  # self time by top-level package (celery, redis, ...)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        total += count
        if frames:
            own[frames[-1]] += count
            where = frames[-1].rpartition("(")[2]
            packages[where.split("/")[0] if "/" in where else "stdlib"] += count
        for frame in set(frames):
            if any(part in frame for part in ("audiencesync/", "tasks/", "producers/")):
                inside[frame] += count
    per_chunk_ms = 1000 * total / RATE_HZ / max(chunks, 1)
    held_s = total / RATE_HZ
    lines = [f"{path.stem}: {held_s:.1f} s holding the GIL, {per_chunk_ms:.1f} ms per chunk"]
    shares = ", ".join(f"{p} {100 * n / max(total, 1):.0f}%" for p, n in packages.most_common(8))
    lines.append(f"  self time by package: {shares}")
    for title, counter in (("self", own), ("inside our code", inside)):
        lines.append(f"  top {title}:")
        lines += [
            f"    {100 * n / max(total, 1):5.1f}%  {frame}" for frame, n in counter.most_common(TOP)
        ]
    return lines
