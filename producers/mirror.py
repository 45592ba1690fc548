"""A mirror run: send only what changed since the audience's last completed mirror run.

    lock -> settle the previous run's pending snapshot -> diff the source against the current
    snapshot (audiencesync/mirror/diff.py) -> guard -> create the run -> publish additions, then
    removals, as one chord (producers/pipeline.py)

When the snapshot is promoted: finalize may run on another host than the producer, so it never
touches the state directory. The next mirror run of the audience, holding its lock, promotes the
previous run's pending snapshot if that run's report says `completed`, and discards it otherwise
(then the difference is computed against the older snapshot again: re-adding or re-removing an
ID is harmless). Only the producers need the state directory.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import replace
from itertools import chain

import numpy as np
from celery.result import AsyncResult

from audiencesync.errors import ConfigError, SourceError
from audiencesync.mirror import count as mirrorcount
from audiencesync.mirror import diff as mirrordiff
from audiencesync.mirror.plan import guard_message, lock_name, mirror_meta
from audiencesync.mirror.snapshot import ID_DTYPE, AudienceState
from audiencesync.settings import Settings
from audiencesync.store.runs import RunStore
from producers.lock import kept_alive
from producers.pipeline import RunRequest, create_run, new_session_id, publish
from producers.sources import Source, one_line

log = logging.getLogger("audiencesync.mirror")


def settle_pending(store: RunStore, state: AudienceState) -> str:
    """Promote the previous run's pending snapshot if it completed, else discard it."""
    run_id = state.pending_run()
    if run_id is None:
        state.discard()  # none, or one whose diff never finished
        return "none"
    report = store.report(run_id)
    if report is not None and report["status"] == "completed":
        state.promote()
        return "promoted"
    state.discard()
    log.info("run=%s did not complete: its snapshot is discarded", run_id)
    return "discarded"


class FreshState(AudienceState):
    """The audience's state as a resync sees it: no current snapshot, so the difference is the
    whole source, and the pending snapshot (promoted once the run completes) is the source."""

    def __init__(self, state: AudienceState):
        super().__init__(state.root.parent, state.root.name)

    def current_bucket(self, bucket: int) -> np.ndarray:
        return np.empty(0, dtype=ID_DTYPE)


class MirrorRun:
    """`with MirrorRun(...) as run: run.plan(source); run.publish()`; the audience's mirror lock
    is held (and kept alive) from plan until publish has staged everything; finalize frees it."""

    def __init__(
        self,
        store: RunStore,
        settings: Settings,
        request: RunRequest,
        run_id: str,
        *,
        audience: dict | None = None,  # Meta's answer about it (preflight): checked before sending
        resync: bool = False,  # replace the audience with the whole source, snapshot and all
    ):
        self.store, self.settings, self.request, self.run_id = store, settings, request, run_id
        self.audience, self.resync = audience, resync
        self.state = AudienceState(settings.state_dir, request.audience_id)
        self.lock = lock_name(request.audience_id)
        self.counts: mirrordiff.DiffCounts | None = None
        self._alive = ExitStack()
        self._published = False

    def __enter__(self) -> MirrorRun:
        return self

    def __exit__(self, exc_type, *_) -> None:
        self._alive.close()
        if not self._published:  # refused or failed before staging: nothing was sent
            self.state.discard()
            self.state.clean_work()
            self.store.release_audience_lock(self.lock, self.run_id)

    def plan(self, source: Source) -> mirrordiff.DiffCounts:
        """Take the lock, compute the difference, refuse it if it empties the audience, and
        create the run (ConfigError, one line, when refused)."""
        self._take_lock()
        ttl_s = self.settings.audience_lock_ttl_s
        self._alive.enter_context(kept_alive(self.store, self.lock, self.run_id, ttl_s))
        form = "sha256" if self.request.hash_ids else "plain"
        try:
            settle_pending(self.store, self.state)
            self.state.clean_work()
            self._check_audience()
            previous_form = None if self.resync else self.state.current_form()
            if previous_form in (None, form):  # a resync diffs against nothing: sends it all
                state = FreshState(self.state) if self.resync else self.state
                counts = mirrordiff.compute(state, self.run_id, source.batches(), form)
        except ConfigError:
            raise
        except SourceError as exc:
            raise SourceError(f"{exc}; nothing was sent, then run the mirror again") from None
        except OSError as exc:  # the state directory (sources raise SourceError): full, read-only
            raise ConfigError(
                f"mirror state directory unusable ({one_line(exc)}): check "
                "AUDIENCESYNC_STATE_DIR (durable, writable, room for 16 bytes per ID x 3)"
            ) from None
        except Exception as exc:  # nothing was sent: the whole run can simply start again
            raise SourceError(
                f"the source failed while mirroring ({one_line(exc)}); nothing was sent: fix "
                "it and run the mirror again"
            ) from None
        if previous_form not in (None, form):
            raise ConfigError(
                f"audience {self.request.audience_id} was mirrored with IDs sent "
                f"{previous_form}, this run would send them {form}: removals would not match; "
                "run it as before (--hash or not), or mirror into a new audience"
            )
        if message := guard_message(counts):
            raise ConfigError(message)
        if self.resync:  # a replace run whose pending snapshot is the whole source
            create_run(self.store, replace(self.request, mode="replace"), source, self.run_id)
            self.store.update(self.run_id, estimated_ids=counts.additions)
            self.counts = counts
            return counts
        create_run(self.store, self.request, source, run_id=self.run_id)
        meta = mirror_meta(counts, self.settings.chunk_size, new_session_id())
        self.store.update(self.run_id, **meta)
        self.counts = counts
        return counts

    def publish(self) -> AsyncResult | None:
        """Stage additions then removals into one chord; returns once all are published."""
        work = self.state.work_dir(self.run_id)
        size = self.settings.chunk_size
        adds = mirrordiff.chunks(work / mirrordiff.ADDITIONS, size)
        removes = mirrordiff.chunks(work / mirrordiff.REMOVALS, size)
        self._published = True
        try:
            result = publish(
                self.store,
                self.run_id,
                self.settings,
                attempt=0,
                redrive={},
                fresh=chain(adds, removes),
                next_chunk=0,
            )
        finally:
            self._alive.close()
            self.state.clean_work()
        if self.store.report(self.run_id) is not None:  # nothing changed: no chord, no finalize
            self.store.release_audience_lock(self.lock, self.run_id)
        else:  # the chunks left finish within the retry budget; finalize releases the lock
            ttl_s = int(self.settings.retry_budget_s) + self.settings.audience_lock_ttl_s
            self.store.refresh_audience_lock(self.lock, self.run_id, ttl_s)
        return result

    def _check_audience(self) -> None:
        """Refuse a difference against a snapshot the audience at Meta cannot match (emptied or
        replaced outside); remember what Meta counted for the next run (mirrorcount.py)."""
        seen = mirrorcount.read_seen(self.audience or {}, time.time())
        if seen is None or self.resync:
            return
        root, size = self.state.root, self.state.current_size()
        age_s = mirrorcount.snapshot_age_s(self.state.current)
        before = mirrorcount.load(root)
        if message := mirrorcount.divergence(self.request.audience_id, size, before, seen, age_s):
            raise ConfigError(message)
        mirrorcount.save(root, seen)

    def _take_lock(self) -> None:
        ttl_s = self.settings.audience_lock_ttl_s
        holder = self.store.take_audience_lock(self.lock, self.run_id, ttl_s)
        if holder is not None and self.store.report(holder) is not None:
            self.store.release_audience_lock(self.lock, holder)  # it finished: a stale lock
            holder = self.store.take_audience_lock(self.lock, self.run_id, ttl_s)
        if holder is not None:
            self._published = True  # not ours to release
            raise ConfigError(
                f"audience {self.request.audience_id} has a mirror run in progress ({holder}): "
                f"only one at a time; wait for it (audiencesync status {holder})"
            )
