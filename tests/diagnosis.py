"""What a failed stack test leaves to read: each run's state in Redis (the chunks without an
outcome, their leases and their messages, the workers that beat), the command's stderr and the
tails of the logs written during the test. conftest.py adds it to the failure's report."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import orjson
import redis

from audiencesync.recovery import liveness
from audiencesync.recovery.leases import LEASES, holders_key
from audiencesync.recovery.messages import chunk_of
from audiencesync.store.runs import RunStore

META_FIELDS = ("status", "attempt", "producer_done", "chunks_staged", "chunks_done", "message")
LOG_LINES = 30


def run_state(r: redis.Redis, run_id: str, now: float) -> list[str]:
    store = RunStore(r)
    meta = store.meta(run_id)
    lines = [f"run {run_id}: " + " ".join(f"{k}={meta.get(k)}" for k in META_FIELDS)]
    lines.append(f"  report: {'saved' if store.report(run_id) else 'none'}")
    lines.append(f"  staged, no outcome: {sorted(store.inflight(run_id))}")
    holders = {int(k): v.decode() for k, v in r.hgetall(holders_key(run_id)).items()}
    for value, deadline in r.zscan_iter(LEASES, match=f"{run_id}/*"):
        chunk = int(value.decode().rpartition("/")[2])
        holder = holders.get(chunk) or "(queued)"
        lines.append(f"  lease chunk {chunk}: {deadline - now:+.1f}s to go, holder {holder}")
    for tag, raw in r.hgetall("unacked").items():
        message, _, queue = orjson.loads(raw)
        if (found := chunk_of(message)) and found[0] == run_id:
            age_s = now - (r.zscore("unacked_index", tag) or now)
            task = message["headers"]["task"]
            lines.append(f"  unacked {task} chunk {found[1]} ({queue}), delivered {age_s:.1f}s ago")
    for queue in liveness.RUN_QUEUES:
        waiting = [chunk_of(orjson.loads(m)) for m in r.lrange(queue, 0, -1)]
        lines.append(f"  queue {queue}: {len(waiting)} messages, this run's chunks ")
        lines[-1] += str(sorted(c[1] for c in waiting if c and c[0] == run_id))
    return lines


def workers(r: redis.Redis, now: float) -> list[str]:
    lines = []
    for queue in liveness.RUN_QUEUES:
        beats = r.zrange(liveness.workers_key(queue), 0, -1, withscores=True)
        seen = ", ".join(f"{name.decode()} {now - at:.0f}s ago" for name, at in beats)
        lines.append(f"workers of {queue} (last beat): {seen or 'none'}")
    return lines


def log_tails(logs: Path, since: float) -> list[str]:
    lines = []
    for path in sorted(logs.glob("*.log")):
        if path.stat().st_mtime >= since:
            tail = path.read_text(errors="replace").splitlines()[-LOG_LINES:]
            lines += [f"--- {path} (last {len(tail)} lines)", *tail]
    return lines


def diagnosis(redis_url: str, run_ids: Iterable[str], logs: Path, since: float) -> str:
    now, lines = time.time(), [f"logs (kept): {logs}"]
    try:
        r = redis.Redis.from_url(redis_url, socket_timeout=5)
        for run_id in run_ids:
            lines += run_state(r, run_id, now)
        lines += workers(r, now)
    except redis.RedisError as exc:
        lines.append(f"Redis could not be read: {exc}")
    return "\n".join(lines + log_tails(logs, since))
