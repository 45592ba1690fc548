"""The reaper: a daemon thread in every worker process that re-drives chunks nobody vouches for.

No beat and no single point: each worker looks every `lease_s / 6` for chunk leases past their
deadline (audiencesync/recovery/leases.py); the first reaper to claim one acts on it, once:
- its run reported, or the chunk has its outcome and no message: the lease is dropped;
- its message is held unacknowledged (its worker died, a retry's countdown with it, or after
  the outcome, before the chord counted it): handed back to its queue now, as the broker would
  after its visibility timeout;
- its message waits in a queue (no worker free, or none running): the lease is extended;
- its message is nowhere (lost between a worker taking it and recording it, or a task that
  died without an outcome): the chunk is published again on its own, and once the run has every
  outcome, `resume` (producers/resume.py, as the watchdog does) publishes the finalize that its
  chord, one header task short, never will.
The ledger keeps it exact: a chunk delivered twice is sent by one holder and counted once.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import chain
from celery.signals import worker_ready, worker_shutdown

from audiencesync.recovery import liveness
from audiencesync.recovery.heartbeat import process_of
from audiencesync.recovery.leases import Leases, holders_key, member
from audiencesync.recovery.messages import Messages
from audiencesync.settings import Settings, get_settings
from audiencesync.store.runs import RunStore
from producers.resume import resume_run
from tasks.finalize import missing_chunks
from tasks.prepare import prepare
from tasks.upload import upload
from workers.resources import get_gate, get_leases, get_store

log = logging.getLogger("audiencesync.reaper")
REDRIVEN = "as:redriven"  # set of run ids with a chunk published again outside their chord
WORKER_MEMORY_S = 86_400  # a worker silent this long is forgotten by `status`


def reap_once(store: RunStore, leases: Leases, settings: Settings, now: float) -> dict[str, int]:
    """One round over the lapsed leases and the runs with re-driven chunks; returns counts."""
    counts = {"dropped": 0, "restored": 0, "waiting": 0, "redriven": 0, "finalized": 0}
    messages = Messages(store.r, liveness.RUN_QUEUES)
    for run_id, chunk in leases.expired(now):
        if leases.claim(member(run_id, chunk), settings.lease_s / 2):
            counts[_reap_chunk(store, leases, messages, settings, run_id, chunk, now)] += 1
    for raw in store.r.smembers(REDRIVEN):
        if _finalize_redriven(store, leases, settings, raw.decode(), now):
            counts["finalized"] += 1
    return counts


def _reap_chunk(
    store: RunStore,
    leases: Leases,
    messages: Messages,
    settings: Settings,
    run_id: str,
    chunk: int,
    now: float,
) -> str:
    key, until = (run_id, chunk), now + settings.lease_s
    ids = store.r.hget(store.key(run_id, "inflight"), chunk)
    held = messages.delivered(key)
    finished = ids is None or store.outcome(run_id, chunk) is not None  # or never staged
    if store.report(run_id) or (finished and not held):
        leases.drop(run_id, chunk)
        return "dropped"
    # A finished chunk's message still held: its worker died before Celery counted it in the
    # chord. Handed back, it returns its outcome from the ledger and the chord counts it.
    if held:
        holder = store.r.hget(holders_key(run_id), chunk)
        if holder:  # it died working on it: its throttle slots are free from now on
            get_gate().forget_process(process_of(holder.decode()))
        restored = sum(messages.restore(entry) for entry in held)
        leases.queue(run_id, chunk, deadline=until, now=now)
        log.warning("run=%s chunk=%s lease ran out: %d message(s) handed back", *key, restored)
        return "restored"
    if messages.waiting(key):
        leases.queue(run_id, chunk, deadline=until, now=now)
        return "waiting"
    leases.queue(run_id, chunk, deadline=until, now=now)
    chain(prepare.si(run_id, chunk, int(ids)), upload.s(run_id, chunk)).apply_async()
    store.r.sadd(REDRIVEN, run_id)
    log.warning("run=%s chunk=%s lease ran out and its message is lost: sent again", *key)
    return "redriven"


def _finalize_redriven(
    store: RunStore, leases: Leases, settings: Settings, run_id: str, now: float
) -> bool:
    """A run one of whose chunks was published outside its chord: once every chunk has its
    outcome and no report follows, `resume` publishes its finalize."""
    meta = store.run(run_id)
    if meta is None or store.report(run_id) is not None:
        store.r.srem(REDRIVEN, run_id)
        return False
    idle_s = now - (meta.progress_at or now)
    if missing_chunks(meta, store.outcomes(run_id)) != 0 or idle_s < settings.lease_s:
        return False
    if not leases.claim(f"run:{run_id}:{meta.attempt}", settings.lease_s):
        return False
    log.warning("run=%s every chunk has its outcome and no finalize came: resuming", run_id)
    resume_run(store, run_id, settings, source=None)
    store.r.srem(REDRIVEN, run_id)
    return True


def _reap_forever(hostname: str, queues: list[str], stop: threading.Event) -> None:
    settings = get_settings()
    while not stop.wait(settings.lease_s / 6):
        try:
            store, now = get_store(), time.time()
            liveness.beat(store.r, hostname, queues, now, WORKER_MEMORY_S)
            counts = reap_once(store, get_leases(), settings, now)
            if any(counts.values()):
                log.info("reaper round: %s", counts)
        except Exception:  # Redis away for a moment: the next round tries again
            log.warning("reaper round failed", exc_info=True)


_running: dict[str, object] = {}


@worker_ready.connect
def _start(sender, **_: object) -> None:
    hostname, queues = sender.hostname, list(sender.app.amqp.queues.consume_from)
    stop = threading.Event()
    liveness.beat(get_store().r, hostname, queues, time.time(), WORKER_MEMORY_S)
    thread = threading.Thread(
        target=_reap_forever, args=(hostname, queues, stop), name="reaper", daemon=True
    )
    thread.start()
    _running.update(hostname=hostname, queues=queues, stop=stop)


@worker_shutdown.connect
def _stop(**_: object) -> None:
    if stop := _running.get("stop"):
        stop.set()  # type: ignore[attr-defined]
        liveness.gone(get_store().r, _running["hostname"], _running["queues"])  # type: ignore[arg-type]
