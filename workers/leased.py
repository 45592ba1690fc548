"""The base of the chunk tasks and finalize: leases, and countdowns in bounded hops.

A chunk task (prepare, upload) takes its chunk's lease when it starts (heartbeat.py renews it
while it runs), hands it back as queued past its countdown when it retries or defers, and drops
it once the chunk has its outcome and Celery has counted it in the chord (upload). A duplicate
delivery of an upload finds the lease held by a live worker and waits for it instead of sending.
finalize does the same with its run's lease (recovery/leases.py: FINALIZE), dropped once the
report is saved.

Countdowns longer than `countdown_hop_s` are waited out in hops: the task comes back after at
most one hop, sees it is not due, and goes again (renewing its lease). So no message is held
unacknowledged longer than a hop plus one call, and the broker's visibility timeout (the
backstop for what no lease covers) can be minutes instead of hours.
"""

from __future__ import annotations

import time
from datetime import datetime

from celery import Task, states
from celery.exceptions import Retry

from audiencesync.recovery import heartbeat
from audiencesync.settings import get_settings
from workers.resources import get_leases

DUE_AT = "due_at_s"  # a kwarg only this class reads: when a hopped countdown ends (epoch s)
HOP_SLACK_S = 0.5  # a hop that ends this close to its due time runs the task


def countdown_s(when: datetime | float | int | None) -> float:
    if isinstance(when, datetime):
        return max(0.0, when.timestamp() - time.time())
    return float(when or 0)


class LeasedTask(Task):
    run_arg: int | None = None  # position of run_id in the task's args (chunk follows); None:
    # no lease (hops only)
    fixed_chunk: int | None = None  # the lease's chunk when none follows run_id (finalize's)
    finishes_chunk = False  # its end is the chunk's outcome: the lease is dropped
    waits_for_holder = False  # a duplicate waits for a live holder instead of running too
    # Celery checks a message's arguments against the function when it is published: DUE_AT is
    # not one of them (__call__ takes it off before the function sees the rest).
    typing = False

    def retry(self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None,
              max_retries=None, **options):  # fmt: skip
        kwargs = dict(self.request.kwargs if kwargs is None else kwargs)
        kwargs.pop(DUE_AT, None)
        hop_s = get_settings().countdown_hop_s
        if countdown is not None and countdown > hop_s:
            kwargs[DUE_AT] = time.time() + countdown
            countdown = hop_s
        # Hand the lease back before the retry is published: a short countdown can start it
        # in another thread at once, and finding the lease still held it would take itself for
        # a duplicate and wait a third of a lease (a chunk 10 s late, now and then).
        self._hand_back(countdown if countdown is not None else countdown_s(eta))
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    def _chunk_key(self, args) -> tuple[str, int] | None:
        """(run_id, chunk) from the task's arguments; None for a task of no lease."""
        if self.run_arg is None:
            return None
        chunk = self.fixed_chunk if self.fixed_chunk is not None else args[self.run_arg + 1]
        return args[self.run_arg], chunk

    def lease_done(self, args) -> bool:
        """Whether a task that finishes its chunk and succeeded leaves nothing to vouch for."""
        return True

    def _hand_back(self, countdown: float) -> None:
        """The chunk's lease, queued past the countdown: released if this execution held it,
        else set while nobody holds it (a duplicate waiting for its holder, a countdown hop)."""
        key = self._chunk_key(self.request.args)
        if key is None:
            return
        until = time.time() + countdown + get_settings().lease_s
        heartbeat.release(get_leases(), *key, getattr(self.request, "lease_token", None), until)
        self.request.lease_token = None

    def __call__(self, *args, **kwargs):
        due_at = kwargs.pop(DUE_AT, None)
        key = self._chunk_key(args)
        token: str | None = None
        lease_s = get_settings().lease_s
        try:
            if due_at is not None and due_at - time.time() > HOP_SLACK_S:
                raise self.retry(args=args, kwargs=kwargs, countdown=due_at - time.time())
            if key is not None:
                token = heartbeat.hold(get_leases(), *key, lease_s)
                if token is None and self.waits_for_holder:
                    raise self.retry(args=args, kwargs=kwargs, countdown=lease_s / 3)
                self.request.lease_token = token  # handed back by retry()
            result = self.run(*args, **kwargs)
        except Retry:
            raise  # retry() handed the lease back
        except BaseException:
            if key is not None and token is not None:  # no outcome: a reaper re-drives it
                heartbeat.release(get_leases(), *key, token, time.time())
            raise
        if key is not None and token is not None:
            if self.finishes_chunk:  # let go in after_return, once the chord counted it
                self.request.chunk_lease = token
            else:  # on to its next task (the chain's upload), queued meanwhile
                heartbeat.release(get_leases(), *key, token, time.time() + lease_s)
        return result

    def after_return(self, status, retval, task_id, args, kwargs, einfo) -> None:
        """A chunk's last task lets go of its lease only once Celery has stored its result and
        counted it in the chord (publishing finalize after the last chunk): a worker killed
        before that leaves a lease that runs out, and a reaper hands the message back; dropped
        earlier, the chunk would be done in the ledger but missing from the chord, whose body
        would then wait for the broker's visibility timeout."""
        token = getattr(self.request, "chunk_lease", None)
        key = self._chunk_key(args)
        if token is None or key is None:  # handed back already (a retry), or none
            return
        if status != states.SUCCESS:  # its result could not be stored: a reaper re-drives it now
            heartbeat.release(get_leases(), *key, token, time.time())
        elif self.lease_done(args):
            heartbeat.finish(get_leases(), *key)
        else:  # queued again, for whoever comes next (finalize: another attempt's)
            heartbeat.release(get_leases(), *key, token, time.time() + get_settings().lease_s)
