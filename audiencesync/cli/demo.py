"""`audiencesync demo`: generated MAIDs through a private redis-server, both workers and the
sandbox, with the live progress bar and the report; then checks the sandbox's audience."""

from __future__ import annotations

import csv
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from audiencesync.cli import devstack
from audiencesync.cli.runs import upload
from audiencesync.graph import GraphClient


def write_demo_csv(path: Path, ids: int, seed: int = 1) -> None:
    """ids rows, streamed to disk: mostly clean, some upper case, blanks, junk and opted-out."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["maid"])
        for _ in range(ids):
            roll = rng.random()
            maid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            if roll < 0.005:
                maid = ""
            elif roll < 0.01:
                maid = "not-a-maid"
            elif roll < 0.012:
                maid = "00000000-0000-0000-0000-000000000000"
            elif roll < 0.3:
                maid = maid.upper()
            writer.writerow([maid])


def run_demo(ids: int, latency_ms: float) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="audiencesync-demo-"))
    procs = []
    say = lambda msg: print(f"demo: {msg}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        redis_proc, redis_url = devstack.start_redis(workdir / "redis")
        procs.append(redis_proc)
        say(f"private redis-server at {redis_url}")
        sandbox, graph_url = devstack.start_sandbox(
            "--latency-ms",
            str(latency_ms),
            "--jitter-ms",
            str(latency_ms / 2),
            log=workdir / "sandbox.log",
        )
        procs.append(sandbox)
        say(f"sandbox Graph API at {graph_url} ({latency_ms:.0f} ms latency + jitter)")
        env = devstack.stack_env(redis_url, graph_url)
        procs += [  # one worker per queue, as the defaults deploy them
            devstack.start_worker(
                queue,
                env,
                concurrency=devstack.default_concurrency(queue),
                name=queue,
                log=workdir / f"{queue}.log",
            )
            for queue in ("standard", "critical")
        ]
        os.environ.update(env)  # this process is the producer: same settings as the workers
        from audiencesync.settings import get_settings

        get_settings.cache_clear()
        from producers.pipeline import RunRequest
        from producers.spec import SourceSpec
        from workers.app import app

        devstack.wait_workers(app, ["standard", "critical"], procs=procs[2:])
        say("workers up: standard (prefork) and critical (threads)")
        source = workdir / "audience.csv"
        started = time.perf_counter()
        write_demo_csv(source, ids)
        say(f"wrote {ids:,} generated MAIDs to {source} in {time.perf_counter() - started:.1f}s")
        client = GraphClient(get_settings())
        audience_id = client.create_audience(get_settings().ad_account_id, "demo")
        client.close()
        say(f"created audience {audience_id}; uploading")

        request = RunRequest(
            audience_id,
            source=SourceSpec(path=str(source)),
            ad_account_id=get_settings().ad_account_id,
        )
        code = upload(get_settings(), request, wait=True)
        stats = httpx.get(f"{graph_url}/_sandbox/stats").json()["audiences"][audience_id]
        say(
            f"the sandbox's audience now holds {stats['members']:,} members "
            f"after {stats['calls']:,} calls"
        )
        return code
    finally:
        for proc in reversed(procs):
            devstack.stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
