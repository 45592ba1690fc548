"""The reaper: a daemon thread in every worker process that re-drives what nobody vouches for.

No beat and no single point: each worker looks every `lease_s / 6` for leases past their deadline
(audiencesync/recovery/leases.py: a chunk's, or a run's finalize's); the first reaper to claim
one acts on it, once:
- its run reported, or the chunk has its outcome and no message: the lease is dropped;
- its message is held unacknowledged (its worker died, a retry's countdown with it, or after
  the outcome, before the chord counted it): handed back to its queue now, as the broker would
  after its visibility timeout;
- its message waits in a queue (no worker free, or none running): the lease is extended;
- its message is nowhere (lost between a worker taking it and recording it, or a task that
  died without an outcome): the chunk is published again on its own. A finalize nowhere (its
  chord is one header task short, or its message was lost): once the run has every outcome,
  `resume` (producers/resume.py, as the watchdog does) publishes one.
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
from audiencesync.recovery.leases import FINALIZE, Leases, holders_key, member
from audiencesync.recovery.messages import Messages
from audiencesync.settings import Settings, get_settings
from audiencesync.store.runs import RunStore
from producers.resume import resume_run
from tasks.finalize import missing_chunks
from tasks.prepare import prepare
from tasks.upload import upload
from workers.resources import get_gate, get_leases, get_store

log = logging.getLogger("audiencesync.reaper")
WORKER_MEMORY_S = 86_400  # a worker silent this long is forgotten by `status`


def reap_once(store: RunStore, leases: Leases, settings: Settings, now: float) -> dict[str, int]:
    """One round over the lapsed leases; returns counts of what was done."""
    counts = {"dropped": 0, "restored": 0, "waiting": 0, "redriven": 0, "finalized": 0}
    messages = Messages(store.r, liveness.RUN_QUEUES)
    for run_id, chunk in leases.expired(now):
        if leases.claim(member(run_id, chunk), settings.lease_s / 2):
            counts[_reap(store, leases, messages, settings, run_id, chunk, now)] += 1
    return counts


def _reap(
    store: RunStore,
    leases: Leases,
    messages: Messages,
    settings: Settings,
    run_id: str,
    chunk: int,
    now: float,
) -> str:
    key, until = (run_id, chunk), now + settings.lease_s
    held = messages.delivered(key)
    if store.report(run_id) or (_needs_no_task(store, run_id, chunk) and not held):
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
    waiting = messages.waiting(key)
    if chunk == FINALIZE and not waiting:
        return _finalize_lost(store, leases, settings, run_id, now)
    leases.queue(run_id, chunk, deadline=until, now=now)
    if waiting:
        return "waiting"
    ids = int(store.r.hget(store.key(run_id, "inflight"), chunk) or 0)
    chain(prepare.si(run_id, chunk, ids), upload.s(run_id, chunk)).apply_async()
    log.warning("run=%s chunk=%s lease ran out and its message is lost: sent again", *key)
    return "redriven"


def _needs_no_task(store: RunStore, run_id: str, chunk: int) -> bool:
    """A chunk never staged or with its outcome; a run whose state expired."""
    if chunk == FINALIZE:
        return not store.r.exists(store.key(run_id))
    staged = store.r.hexists(store.key(run_id, "inflight"), chunk)
    return not staged or store.outcome(run_id, chunk) is not None


def _finalize_lost(
    store: RunStore, leases: Leases, settings: Settings, run_id: str, now: float
) -> str:
    """No finalize anywhere and no report: once every chunk has its outcome (a chunk published
    again outside its chord leaves the chord one short, so its body never fires; or the body's
    message was lost) and nothing moved for a lease, `resume` publishes a finalize."""
    meta = store.existing(run_id)
    quiet_at = (meta.progress_at or now) + settings.lease_s
    if quiet_at > now:  # a chunk that finished just now may be publishing the body
        leases.queue(run_id, FINALIZE, deadline=quiet_at, now=now)
        return "waiting"
    leases.queue(run_id, FINALIZE, deadline=now + settings.lease_s, now=now)
    if missing_chunks(meta, store.outcomes(run_id)) != 0:
        return "waiting"  # the chunks still missing have leases of their own
    if not leases.claim(f"run:{run_id}:{meta.attempt}", settings.lease_s):
        return "waiting"
    log.warning("run=%s every chunk has its outcome and no finalize came: resuming", run_id)
    resume_run(store, run_id, settings, source=None)
    return "finalized"


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
