"""Send one Graph call through the throttle gate, then decide: sent, deferred, retried, failed.

Not a task: upload (a chunk's batch) and finalize (a session's closing batch) both send this way.
- The gate holds the call back (`Deferred`): the task is re-enqueued for when it may pass. A
  deferral is no failed attempt and does not run down the retry budget.
- A retryable answer (throttled, transient) while the retry policy allows another call: the
  task is re-enqueued after the backoff.
- Anything else is the caller's to record: the chunk's, or the session's, failure.
Every wait is a countdown on a re-enqueued task (`task.retry`), never a sleep in a worker thread.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from celery import Task

from audiencesync.errors import AudienceSyncError, ThrottledError
from audiencesync.graph import RetryPolicy, UploadResult
from audiencesync.settings import get_settings
from audiencesync.throttle.guard import Guard

_rng = random.Random()
Sent = TypeVar("Sent", bound=UploadResult)


def retry_policy() -> RetryPolicy:
    return RetryPolicy.from_settings(get_settings())


def send(
    guard: Guard,
    call: Callable[[], Sent],
    *,
    admitted: Callable[[], None] = lambda: None,
    close: bool = False,
) -> Sent:
    """Make the call once the gate lets it through (raises Deferred when it must wait, nothing
    sent); `admitted` runs between the two, to count the call as made. A session's close (one
    entry) goes past the load limit (late, it may miss Meta's window), and its latency says
    nothing about load."""
    lease = guard.enter(past_load_limit=close)
    admitted()
    return guard.send(lease, call, sample_latency=not close)


def defer(task: Task, wait_s: float, counts: dict, retry: dict[str, Any]) -> NoReturn:
    """Re-enqueue the task for when the gate will let it through, counted in `counts` (which its
    retry carries) as a deferral; `retry` is the task's retry arguments (args, kwargs)."""
    countdown_s = retry_policy().defer_s(wait_s, rng=_rng)
    counts["deferrals"] += 1
    if "deferred_s" in counts:
        counts["deferred_s"] += countdown_s
    raise task.retry(countdown=countdown_s, **retry)


def retry_if_allowed(
    task: Task,
    error: AudienceSyncError,
    counts: dict,
    *,
    attempt: int,
    elapsed_s: float,
    retry: dict[str, Any],
    what: tuple[logging.Logger, str],
    cool_wait_s: float = 0.0,
) -> None:
    """Re-enqueue the task while the policy allows call `attempt + 1`: after the account's
    cool-down when a throttle answer started one (the whole account waits: a deferral), else
    after the backoff (logged as "<what> in <delay>s"). Returns when the policy gives up: the
    caller records the failure."""
    policy = retry_policy()
    if not policy.should_retry(error, attempt=attempt, elapsed_s=elapsed_s):
        return
    if isinstance(error, ThrottledError) and cool_wait_s:
        defer(task, cool_wait_s, counts, retry)
    delay_s = policy.delay_s(error, attempt=attempt, rng=_rng)
    log, line = what
    log.info("%s in %.1fs: %s", line, delay_s, error)
    raise task.retry(countdown=delay_s, **retry)
