"""A private stack for fault-injection tests: its own redis-server (AOF on), sandbox and worker
processes, with a short visibility timeout, so tests may kill, stop and restart any of them
without touching the session's stack. Processes are driven as an operator would: signals and
the `audiencesync` command.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import orjson
import redis
from celery import Celery
from e2e_helpers import SandboxViews, cli, write_csv
from redelivery import unacked, wait_redelivered

from audiencesync.cli import devstack
from audiencesync.store.runs import RunStore

VISIBILITY_TIMEOUT_S = 10
CHUNK_SIZE = 500
CONCURRENCY = {"standard": 1, "critical": 4}  # prefetch = concurrency (multiplier 1)
# Every countdown and call fits in the visibility timeout (the settings check it), and a run of
# a few thousand IDs takes a few seconds: 500 IDs a chunk, 6 staged at most.
SETTINGS = {
    "visibility_timeout_s": str(VISIBILITY_TIMEOUT_S),
    # Leases as long as the visibility timeout: these tests see the broker's redelivery timing.
    "lease_s": str(VISIBILITY_TIMEOUT_S),
    "countdown_hop_s": "2",
    "retry_base_s": "0.2",
    "retry_cap_s": "1",
    "retry_max_attempts": "4",
    "retry_budget_s": "20",
    "http_timeout_s": "3",
    "http_connect_timeout_s": "1",
    "prepare_time_limit_s": "8",
    "chunk_size": str(CHUNK_SIZE),
    "staging_window_chunks": "6",
    "stall_after_s": "3",
    "watchdog_interval_s": "1",
}


@dataclass
class Run:
    """`audiencesync upload ... --wait --json` running as a process."""

    proc: subprocess.Popen
    run_id: str

    def finish(self, timeout_s: float = 90) -> tuple[int, dict, str]:
        out, err = self.proc.communicate(timeout=timeout_s)
        assert out.strip(), f"exit {self.proc.returncode} without a report: {err}"
        return self.proc.returncode, orjson.loads(out.splitlines()[-1]), err


@dataclass
class PrivateStack(SandboxViews):
    workdir: Path
    token: str = field(default_factory=lambda: f"tok-{secrets.token_hex(12)}")
    app_secret: str = field(default_factory=lambda: f"sec-{secrets.token_hex(12)}")
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    redis_url: str = ""
    graph_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    _serial: int = 0
    concurrency: ClassVar[dict[str, int]] = CONCURRENCY
    # The secrets test reads these logs: the more they say, the better.
    worker_loglevel: ClassVar[str] = "DEBUG"

    # --- processes ----------------------------------------------------------------------------
    def start(self) -> PrivateStack:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs["redis"], self.redis_url = devstack.start_redis(
            self.workdir / "redis", appendonly=True
        )
        self.start_sandbox()
        self.env = devstack.stack_env(
            self.redis_url,
            self.graph_url,
            access_token=self.token,
            app_secret=self.app_secret,
            **SETTINGS,
        )
        self.ensure_workers()
        return self

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def start_sandbox(self, port: int | None = None) -> None:
        knobs = ("--token", self.token, "--app-secret", self.app_secret)
        proc, self.graph_url = devstack.start_sandbox(
            *knobs, port=port, log=self.workdir / "sandbox.log"
        )
        self.procs["sandbox"] = proc

    def stop_sandbox(self) -> int:
        """Stop the sandbox; returns its port, to start it again on the same one."""
        devstack.stop(self.procs.pop("sandbox"))
        return int(self.graph_url.rsplit(":", 1)[1])

    def restart_redis(self, down_s: float = 1.0) -> None:
        """Stop redis-server gracefully (the AOF is flushed), wait, start it on the same port."""
        port = int(self.redis_url.rsplit(":", 1)[1].split("/")[0])
        devstack.stop(self.procs.pop("redis"))
        time.sleep(down_s)
        self.procs["redis"], _ = devstack.start_redis(
            self.workdir / "redis", port=port, appendonly=True
        )

    def start_worker(self, queue: str) -> str:
        self._serial += 1
        name = f"{queue}-{self._serial}"
        self.procs[name] = devstack.start_worker(
            queue,
            self.env,
            concurrency=self.concurrency[queue],
            name=name,
            log=self.logs / f"{name}.log",
            loglevel=self.worker_loglevel,
        )
        return name

    def workers(self, queue: str) -> list[str]:
        return [n for n, p in self.procs.items() if n.startswith(f"{queue}-") and p.poll() is None]

    def ensure(self) -> None:
        """Sandbox up with no faults, one live worker per queue (tests before may have stopped
        or killed some)."""
        if "sandbox" not in self.procs:
            self.start_sandbox(port=int(self.graph_url.rsplit(":", 1)[1]))
        self.configure_sandbox(latency_ms=0, jitter_ms=0, transient_rate=0)
        self.ensure_workers()

    def ensure_workers(self) -> None:
        started = [self.start_worker(q) for q in ("standard", "critical") if not self.workers(q)]
        self.wait_workers(started)

    def start_beat(self) -> None:
        with open(self.logs / "beat.log", "ab") as log:  # the child keeps its own copy
            self.procs["beat"] = subprocess.Popen(
                devstack.cli_command(
                    "beat", "--schedule-file", str(self.workdir / "beat-schedule")
                ),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @contextmanager
    def beat(self):
        """Celery beat running the watchdog every second (stall after 3 s)."""
        self.start_beat()
        try:
            yield
        finally:
            devstack.stop(self.procs.pop("beat"))

    @contextmanager
    def supervised(self):
        """Restart any worker (or beat) that exits, as docker compose's `restart:
        unless-stopped` does."""
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.2):
                for name, proc in list(self.procs.items()):
                    if name in ("redis", "sandbox") or proc.poll() is None:
                        continue
                    del self.procs[name]
                    self.start_beat() if name == "beat" else self.start_worker(name.split("-")[0])

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()

    def wait_workers(self, names: list[str]) -> None:
        probe = Celery("probe", broker=self.redis_url, set_as_current=False)
        procs = [self.procs[n] for n in names]
        devstack.wait_workers(probe, names, timeout_s=90, procs=procs)

    def signal_worker(self, name: str, sig: int) -> None:
        os.killpg(self.procs[name].pid, sig)

    def kill_holding(
        self, name: str, task: str, deadline_s: float = 30, full: int | None = None
    ) -> dict[str, float]:
        """SIGKILL worker `name` (all its processes) while it holds as many `task` messages,
        delivered and not acknowledged, as it may prefetch; returns their delivery tags and
        delivery times.

        The worker is frozen (SIGSTOP) while its messages are read, so what is read is what it
        dies with. Holding its full prefetch, it cannot be between taking a message off the
        queue and recording it as unacknowledged (two steps in kombu): a kill in that instant
        loses the message, and only the watchdog and `resume` recover that chunk. `full`: as
        many as exist, when fewer than its prefetch can."""
        full = full or self.concurrency[name.split("-")[0]]
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            self.signal_worker(name, signal.SIGSTOP)
            held = self.unacked(task)
            if len(held) >= full:
                self.signal_worker(name, signal.SIGKILL)
                self.procs.pop(name).wait()
                return held
            self.signal_worker(name, signal.SIGCONT)
            time.sleep(0.01)
        raise AssertionError(f"{name} never held a {task} message")

    def stop_all(self) -> None:
        for name in [n for n in self.procs if n not in ("redis", "sandbox")]:
            self.signal_worker(name, signal.SIGCONT)
            devstack.stop(self.procs.pop(name))
        for name in ("sandbox", "redis"):
            if name in self.procs:
                devstack.stop(self.procs.pop(name))

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def unacked(self, task: str | None = None) -> dict[str, float]:
        return unacked(self.redis(), task)

    def wait_redelivered(self, held: dict[str, float]) -> float:
        return wait_redelivered(self.redis(), held, VISIBILITY_TIMEOUT_S)

    # --- the user's side ----------------------------------------------------------------------
    def store(self) -> RunStore:
        return RunStore(self.redis())

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return cli(self.env, *args)

    def upload(self, path: Path, rows: list[str], audience: str, mode: str = "add") -> Run:
        """Start `audiencesync upload PATH --wait --json`; returns once the run id is printed."""
        write_csv(path, rows)
        proc = subprocess.Popen(
            devstack.cli_command(
                *("upload", str(path), "--column", "maid", "--audience-id", audience),
                *("--wait", "--json", "--mode", mode),
            ),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return Run(proc, proc.stdout.readline().strip())

    def wait_meta(self, run_id: str, check, timeout_s: float = 30) -> dict[str, str]:
        store = self.store()
        deadline = time.monotonic() + timeout_s
        while not check(meta := store.meta(run_id)):
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} never got there: {meta}")
            time.sleep(0.05)
        return meta
