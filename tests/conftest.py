"""Real parts, really running: a private redis-server, the sandbox over HTTP, worker processes.

Redis starts in pytest_configure, before any test module imports the Celery app, so the app, the
workers and the tests all use this private server and never touch data they did not create.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakesnow
import pytest
from e2e_helpers import SandboxViews
from sandbox_graph import Graph

from audiencesync.cli import devstack
from audiencesync.sandbox import SandboxConfig, start_in_thread

_state: dict = {}
# fakesnow.server() imports its submodule `fakesnow.server`, which then shadows the function on
# the package: a second call would fail. Keep the function, and share one server per session.
_fakesnow_server = fakesnow.server


def pytest_configure(config: pytest.Config) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="audiencesync-tests-"))
    proc, url = devstack.start_redis(workdir / "redis")
    _state.update(workdir=workdir, redis=proc, redis_url=url)
    os.environ["AUDIENCESYNC_REDIS_URL"] = url
    os.environ["AUDIENCESYNC_ACCESS_TOKEN"] = devstack.SANDBOX_TOKEN
    os.environ["AUDIENCESYNC_AD_ACCOUNT_ID"] = "1001"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in tests/e2e/ starts processes and runs whole uploads: `slow`, so the fast
    subset (`pytest -m "not slow"`, under a minute) is the unit tests."""
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        if item.path.is_relative_to(e2e):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test whose stack can describe itself (DefaultStack.diagnosis: its runs' state,
    the command's stderr, the workers' log tails) prints that with the failure."""
    report = yield
    if report.failed and call.when == "call":
        for value in getattr(item, "funcargs", {}).values():
            if callable(describe := getattr(value, "diagnosis", None)):
                report.sections.append(("stack diagnosis", describe()))
    return report


def pytest_unconfigure(config: pytest.Config) -> None:
    if "redis" in _state:
        devstack.stop(_state["redis"])
        shutil.rmtree(_state["workdir"], ignore_errors=True)


@pytest.fixture(scope="session")
def workdir() -> Path:
    return _state["workdir"]


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _state["redis_url"]


@dataclass
class Stack(SandboxViews):
    redis_url: str
    graph_url: str
    env: dict[str, str]
    logs: Path
    metrics_url: str = ""  # the critical worker's Prometheus exporter


@pytest.fixture(scope="session")
def stack(workdir: Path, redis_url: str):
    """Sandbox + one standard (prefork) and one critical (threads) worker process."""
    from workers.app import app

    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    sandbox, graph_url = devstack.start_sandbox(log=logs / "sandbox.log")
    # 12 calls per chunk: at the 50% transient rate of a test, 8 would fail 1 chunk in 256.
    env = devstack.stack_env(
        redis_url, graph_url, retry_base_s="0.2", retry_cap_s="2", retry_max_attempts="12"
    )
    metrics_port = devstack.free_port()
    procs = [
        devstack.start_worker(
            "standard", env, concurrency=2, name="standard-t", log=logs / "standard.log"
        ),
        devstack.start_worker(
            "critical",
            {**env, "AUDIENCESYNC_METRICS_PORT": str(metrics_port)},
            concurrency=16,
            name="critical-t",
            log=logs / "critical.log",
        ),
    ]
    try:
        devstack.wait_workers(app, ["standard-t", "critical-t"], procs=procs)
        yield Stack(redis_url, graph_url, env, logs, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        for proc in [*procs, sandbox]:
            devstack.stop(proc)


@pytest.fixture
def sandbox_knobs(stack):
    """Change the shared sandbox's behaviour for one test; restored afterwards."""
    yield stack.configure_sandbox
    stack.configure_sandbox(
        token=devstack.SANDBOX_TOKEN,
        latency_ms=0,
        jitter_ms=0,
        rate_per_s=None,
        budget_calls=None,
        score_max=None,
        usage_header_after_calls=3,
        replace_window_s=5400,
        transient_rate=0,
        fail_batch_seq=None,
    )


@pytest.fixture(scope="session")
def private_stack(workdir: Path):
    """A second stack, only for tests that kill, stop or restart its parts (tests/private_stack)."""
    from private_stack import PrivateStack

    stack = PrivateStack(workdir / "private")
    try:
        yield stack.start()
    finally:
        stack.stop_all()


@pytest.fixture
def private(private_stack):
    private_stack.ensure()
    return private_stack


@pytest.fixture(scope="session")
def fakesnow_kwargs():
    """Connection kwargs of one fakesnow server (real HTTP) for the whole session."""
    with _fakesnow_server() as kwargs:
        yield kwargs


# The sandbox alone, in a thread of this process (tests/unit/test_sandbox*.py).


@pytest.fixture
def sandbox() -> Iterator[Callable[..., Graph]]:
    stops: list[Callable[[], None]] = []

    def start(**config: Any) -> Graph:
        base_url, stop = start_in_thread(SandboxConfig(port=0, **config))
        stops.append(stop)
        return Graph(base_url)

    yield start
    for stop in stops:
        stop()


@pytest.fixture
def graph(sandbox: Callable[..., Graph]) -> Graph:
    return sandbox()


@pytest.fixture(scope="module")
def producer(stack, tmp_path_factory):
    """A `producer` worker (scheduled runs) reading a declared-audiences file the tests write."""
    from workers.app import app

    workdir = tmp_path_factory.mktemp("declared")
    audiences, log = workdir / "audiences.toml", workdir / "producer.log"
    env = {**stack.env, "AUDIENCESYNC_AUDIENCES_FILE": str(audiences)}
    proc = devstack.start_worker("producer", env, concurrency=2, name="producer-t", log=log)
    try:
        devstack.wait_workers(app, ["producer-t"], procs=[proc])
        yield env, audiences, log
    finally:
        devstack.stop(proc)
