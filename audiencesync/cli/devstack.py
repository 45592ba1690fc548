"""A private local stack (redis-server, sandbox, workers) as real processes: for the demo,
the tests and the benchmark alike, so all three run exactly what an operator runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import redis

from audiencesync.errors import ConfigError
from audiencesync.settings import Settings

SANDBOX_TOKEN = "sandbox-token"


def default_concurrency(queue: str) -> int:
    """A worker's concurrency as the deployment's defaults set it: what a user runs."""
    defaults = Settings()
    return {"standard": defaults.standard_concurrency, "critical": defaults.critical_concurrency}[
        queue
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout_s: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout_s}s")


def start_redis(workdir: Path, *, port: int | None = None, appendonly: bool = False):
    """A private redis-server on a free port; returns (process, url)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ConfigError("redis-server not found: install it (apt-get install -y redis-server)")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--maxmemory-policy",
        "noeviction",
        "--logfile",
        str(workdir / "redis.log"),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: redis.Redis.from_url(url).ping(), 15, "redis-server", proc)
    return proc, url


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "audiencesync.cli", *args]


def start_sandbox(*knobs: str, port: int | None = None, log: Path | None = None):
    """The sandbox Graph API as a process; returns (process, base_url)."""
    port = port or free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (lives with the process)
    proc = subprocess.Popen(
        cli_command("sandbox", "--port", str(port), *knobs), stdout=out, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    wait_until(lambda: httpx.get(f"{url}/_sandbox/health").status_code == 200, 15, "sandbox", proc)
    return proc, url


def stack_env(redis_url: str, graph_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCESYNC_")}
    env |= {
        "AUDIENCESYNC_REDIS_URL": redis_url,
        "AUDIENCESYNC_GRAPH_URL": graph_url,
        "AUDIENCESYNC_ACCESS_TOKEN": SANDBOX_TOKEN,
        "AUDIENCESYNC_AD_ACCOUNT_ID": "1001",
    }
    env |= {f"AUDIENCESYNC_{k.upper()}": v for k, v in extra.items()}
    return env


def start_worker(
    queue: str, env: dict[str, str], *, concurrency: int, name: str, log: Path, loglevel="INFO"
):
    """One worker process of the given queue (wait_workers tells when it answers), in its own
    process group (signals to the group reach its pool's children too)."""
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cli_command(
                *("worker", "--queues", queue, "--concurrency", str(concurrency)),
                *("--name", name, "--loglevel", loglevel),
            ),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_workers(app, names: list[str], timeout_s: float = 60, procs=()) -> None:
    def all_up() -> bool:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with code {proc.returncode}")
        # A fresh connection each time: a pooled one may predate a Redis restart.
        with app.connection_for_write() as conn:
            replies = app.control.ping(timeout=0.5, connection=conn) or []
        seen = {name.split("@")[0] for reply in replies for name in reply}
        return all(n in seen for n in names)

    deadline = time.monotonic() + timeout_s
    while not all_up():
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers {names} not ready after {timeout_s}s")


def stop(*procs: subprocess.Popen, timeout_s: float = 20) -> None:
    """SIGTERM to all at once (workers shut down in parallel), then wait; SIGKILL if need be."""
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    for proc in running:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class PrivateStack:
    redis_url: str
    graph_url: str
    env: dict[str, str]  # the workers' environment
    logs: Path

    def upload(
        self, source: Path, audience_id: str, timeout_s: float = 600, mode: str = "add", **settings
    ) -> dict:
        """`audiencesync upload --wait --json`, as an operator runs it; returns the report."""
        args = ["upload", str(source), "--audience-id", audience_id, "--wait", "--json"]
        args += ["--mode", mode]
        env = self.env | {f"AUDIENCESYNC_{k.upper()}": str(v) for k, v in settings.items()}
        done = subprocess.run(
            cli_command(*args), env=env, capture_output=True, text=True, timeout=timeout_s
        )
        if not done.stdout.strip():
            raise RuntimeError(f"upload printed no report: {done.stderr[-2000:]}")
        return orjson.loads(done.stdout.splitlines()[-1])


@contextlib.contextmanager
def private_stack(
    workdir: Path,
    *sandbox_knobs: str,
    critical_workers: int = 1,
    **settings: str,
) -> Iterator[PrivateStack]:
    """redis-server, the sandbox (with these CLI knobs), one standard worker and
    critical_workers critical workers, all with these settings; stopped on exit."""
    from celery import Celery

    workdir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    try:
        redis_proc, redis_url = start_redis(workdir / "redis")
        procs.append(redis_proc)
        sandbox, graph_url = start_sandbox(*sandbox_knobs, log=workdir / "sandbox.log")
        procs.append(sandbox)
        env = stack_env(redis_url, graph_url, **settings)
        queues = {"standard": "standard"} | {
            f"critical{i}": "critical" for i in range(critical_workers)
        }
        workers = [
            start_worker(
                queue,
                env,
                concurrency=int(settings.get(f"{queue}_concurrency", 0))
                or default_concurrency(queue),
                name=name,
                log=workdir / f"{name}.log",
            )
            for name, queue in queues.items()
        ]
        procs += workers
        wait_workers(Celery(broker=redis_url), list(queues), procs=workers)
        yield PrivateStack(redis_url, graph_url, env, workdir)
    finally:
        stop(*procs[2:])  # the workers first: they still talk to Redis while shutting down
        stop(*procs[:2])
