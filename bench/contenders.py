"""The three ways to upload the same CSV, each timed from start to the last accepted call."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from audiencesync.cli import devstack
from audiencesync.domain.normalize import prepare_chunk
from audiencesync.graph import build_payload
from audiencesync.settings import MAX_CHUNK_IDS, Settings
from producers.chunking import rechunk
from producers.spec import open_source


@dataclass
class Outcome:
    name: str
    wall_s: float
    ids_sent: int
    calls: int
    extra: dict = field(default_factory=dict)

    @property
    def ids_per_s(self) -> float:
        return self.ids_sent / self.wall_s


def run_sdk(csv_path: Path, audience_id: str, graph_url: str) -> Outcome:
    """What users write by hand: the official SDK, 10,000 IDs per call, one call at a time."""
    from facebook_business.adobjects.customaudience import CustomAudience
    from facebook_business.api import FacebookAdsApi
    from facebook_business.session import FacebookSession

    FacebookSession.GRAPH = graph_url
    FacebookAdsApi.init(access_token=devstack.SANDBOX_TOKEN, api_version="v26.0")
    audience = CustomAudience(audience_id)
    sent = calls = 0
    started = time.perf_counter()
    with open(csv_path, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        batch: list[str] = []
        for row in reader:
            batch.append(row[0].strip().lower())
            if len(batch) == MAX_CHUNK_IDS:
                audience.add_users(CustomAudience.Schema.mobile_advertiser_id, batch)
                sent, calls, batch = sent + len(batch), calls + 1, []
        if batch:
            audience.add_users(CustomAudience.Schema.mobile_advertiser_id, batch)
            sent, calls = sent + len(batch), calls + 1
    return Outcome("official SDK loop", time.perf_counter() - started, sent, calls)


def run_lean(csv_path: Path, audience_id: str, graph_url: str, inflight: int = 64) -> Outcome:
    """The ceiling: one process, asyncio + httpx, `inflight` calls at once, no queue, no
    durability; the same reading, normalising and encoding code as audiencesync."""
    return asyncio.run(_lean(csv_path, audience_id, graph_url, inflight))


async def _lean(csv_path: Path, audience_id: str, graph_url: str, inflight: int) -> Outcome:
    url = f"{graph_url}/v26.0/{audience_id}/users"
    auth = orjson.dumps({"access_token": devstack.SANDBOX_TOKEN})[1:-1]
    limits = httpx.Limits(max_connections=inflight, max_keepalive_connections=inflight)
    slots = asyncio.Semaphore(inflight)
    sent = calls = 0
    source = open_source(str(csv_path), settings=Settings())
    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def post(body: bytes, entries: int) -> None:
            nonlocal sent, calls
            try:
                response = await client.post(
                    url, content=body, headers={"Content-Type": "application/json"}
                )
                response.raise_for_status()
                sent, calls = sent + entries, calls + 1
            finally:
                slots.release()

        pending = set()
        for chunk in rechunk(source.batches(), MAX_CHUNK_IDS):
            prepared = prepare_chunk(chunk)
            body = b'{"payload":' + build_payload(prepared.entries) + b"," + auth + b"}"
            await slots.acquire()
            task = asyncio.create_task(post(body, len(prepared.entries)))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    source.close()
    return Outcome("lean asyncio uploader", time.perf_counter() - started, sent, calls)


def run_audiencesync(
    csv_path: Path,
    audience_id: str,
    env: dict[str, str],
    *options: str,
    wrap: Sequence[str] = (),
) -> Outcome:
    """`audiencesync upload --wait --json [OPTIONS]` with the workers already running (`wrap`:
    a profiler's command line to run it under)."""
    started = time.monotonic()  # the sandbox's call records use the same clock
    proc = subprocess.Popen(
        [
            *wrap,
            *devstack.cli_command(
                "upload", str(csv_path), "--audience-id", audience_id, "--wait", "--json", *options
            ),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    stdout = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall_s = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"audiencesync upload failed: {stdout[-500:]!r}")
    report = orjson.loads(next(ln for ln in reversed(stdout.splitlines()) if ln[:1] == b"{"))
    return Outcome(
        "audiencesync",
        wall_s,
        report["ids_uploaded"],
        report["requests"],
        {
            "report": report,
            "started_monotonic_s": started,
            "producer_peak_rss_mb": usage.ru_maxrss / 1024,
            "producer_cpu_s": usage.ru_utime + usage.ru_stime,
        },
    )
