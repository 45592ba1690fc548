"""A stack with the DEFAULT settings (no shortened timeout), for the recovery guarantees: its own
redis-server, sandbox and workers at their default concurrency, driven as an operator would."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import orjson
from diagnosis import diagnosis
from private_stack import PrivateStack
from tcp_proxy import Proxy

from audiencesync.cli import devstack
from audiencesync.settings import Settings

DEFAULTS = Settings()
CONCURRENCY = {"standard": DEFAULTS.standard_concurrency, "critical": DEFAULTS.critical_concurrency}


@dataclass
class WaitingRun:
    """`audiencesync upload ... --wait --json` as a process, its stderr read as it comes (and
    kept in `log`)."""

    proc: subprocess.Popen
    run_id: str
    log: Path
    err: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_err(self) -> None:
        with open(self.log, "a") as log:
            for line in self.proc.stderr:
                self.err.append(line)
                log.write(line)
                log.flush()

    def said(self, text: str) -> bool:
        return any(text in line for line in self.err)

    def finish(self, timeout_s: float = 150) -> tuple[int, dict]:
        code = self.proc.wait(timeout=timeout_s)
        out = self.proc.stdout.read()
        assert out.strip(), f"exit {code} without a report: {''.join(self.err)[-2000:]}"
        return code, orjson.loads(out.splitlines()[-1])


@dataclass
class DefaultStack(PrivateStack):
    concurrency: ClassVar[dict[str, int]] = CONCURRENCY
    worker_loglevel: ClassVar[str] = "INFO"
    runs: list[str] = field(default_factory=list)  # the current test's
    test_began: float = 0.0

    def start(self) -> DefaultStack:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs["redis"], self.redis_url = devstack.start_redis(
            self.workdir / "redis", appendonly=True
        )
        self.start_sandbox()
        # Workers reach the sandbox through a proxy the tests can take away (unreachable).
        self.proxy = Proxy(int(self.graph_url.rsplit(":", 1)[1])).start()
        self.env = devstack.stack_env(
            f"{self.redis_url}",
            f"http://127.0.0.1:{self.proxy.port}",
            access_token=self.token,
            app_secret=self.app_secret,
        )
        self.ensure_workers()
        return self

    def ensure(self) -> None:
        """Ready for the next test (whose failure diagnosis() describes)."""
        self.runs, self.test_began = [], time.time()
        if self.proxy.down:  # a test that failed mid-outage
            self.proxy.start()
        super().ensure()

    def diagnosis(self) -> str:
        return diagnosis(self.redis_url, self.runs, self.logs, self.test_began)

    def kill(self, queue: str) -> None:
        """SIGKILL every worker process of the queue (its pool's children too)."""
        for name in self.workers(queue):
            self.signal_worker(name, signal.SIGKILL)
            self.procs.pop(name).wait()

    def stop(self, queue: str) -> None:
        for name in self.workers(queue):
            self.signal_worker(name, signal.SIGTERM)
            self.procs.pop(name).wait(timeout=60)

    def upload_waiting(self, path, rows: list[str], audience: str) -> WaitingRun:
        """PrivateStack.upload, its stderr read as it comes (what `--wait` says meanwhile)."""
        run = self.upload(path, rows, audience)
        self.runs.append(run.run_id)
        return WaitingRun(run.proc, run.run_id, self.logs / f"upload-{run.run_id}.log")

    def wait_for(self, check, timeout_s: float, what: str) -> float:
        """Poll until check() holds; returns when it did."""
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout_s}s")
            time.sleep(0.1)
        return time.time()
