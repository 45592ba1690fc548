"""py-spy on every process of the audiencesync contender: where the CPU goes, per 10,000 IDs.

`python -m bench.run --profile DIR` records each process (sandbox, both workers with their pool
children, the producer) as collapsed stacks in DIR, then prints each one's CPU seconds per
10,000-ID chunk and its top functions. Samples of idle threads (waiting on sockets, locks or the
sandbox's latency sleep) are left out by py-spy, so the counts are CPU time.
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
        for frame in set(frames):
            if any(part in frame for part in ("audiencesync/", "tasks/", "producers/")):
                inside[frame] += count
    per_chunk_ms = 1000 * total / RATE_HZ / max(chunks, 1)
    lines = [f"{path.stem}: {total / RATE_HZ:.1f} CPU s, {per_chunk_ms:.1f} ms per chunk"]
    for title, counter in (("self", own), ("inside our code", inside)):
        lines.append(f"  top {title}:")
        lines += [
            f"    {100 * n / max(total, 1):5.1f}%  {frame}" for frame, n in counter.most_common(TOP)
        ]
    return lines
