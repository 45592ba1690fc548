"""Memory figures read from /proc and Redis while a contender runs."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import redis


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, its live children and the children it reaped."""
    total_ticks = 0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = map(int, fields[11:13] if p != pid else fields[11:15])  # utime stime [cu cs]
        total_ticks += sum(ticks)
    return total_ticks / os.sysconf("SC_CLK_TCK")


def redis_commands(redis_url: str) -> dict[str, int]:
    """Calls per command since redis-server started (INFO commandstats)."""
    stats = redis.Redis.from_url(redis_url).info("commandstats")
    return {name.removeprefix("cmdstat_"): fields["calls"] for name, fields in stats.items()}


class CpuMeter:
    """CPU seconds each named process tree used between enter and exit."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids, self.used_s = pids, dict.fromkeys(pids, 0.0)

    def __enter__(self) -> CpuMeter:
        self._start = {name: cpu_s(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        self.used_s = {name: cpu_s(pid) - self._start[name] for name, pid in self.pids.items()}


class PeakSampler:
    """Samples the RSS of named process trees and Redis's used_memory until stopped."""

    def __init__(self, roots: dict[str, int], redis_url: str | None, every_s: float = 0.2):
        self.roots, self.every_s = roots, every_s
        self.redis = redis.Redis.from_url(redis_url) if redis_url else None
        self.peak_rss_mb = dict.fromkeys(roots, 0.0)
        self.redis_peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            for name, pid in self.roots.items():
                # Each process on its own: a prefork worker's children are separate processes.
                biggest_kb = max(rss_kb(p) for p in [pid, *children(pid)])
                self.peak_rss_mb[name] = max(self.peak_rss_mb[name], biggest_kb / 1024)
            if self.redis is not None:
                used = self.redis.info("memory")["used_memory"] / 2**20
                self.redis_peak_mb = max(self.redis_peak_mb, used)
            if self._stop.wait(self.every_s):
                return
