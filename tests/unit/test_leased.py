"""The chunk tasks' base against a real redis-server: a retry hands the chunk's lease back
before its message is published (workers/leased.py)."""

from __future__ import annotations

import secrets

import pytest
import redis
from celery import Celery, Task
from celery.exceptions import Retry

import workers.leased as leased
from audiencesync.recovery.leases import Leases, holders_key


@pytest.fixture
def leases(redis_url: str, monkeypatch) -> Leases:
    leases = Leases(redis.Redis.from_url(redis_url), ttl_s=600)
    monkeypatch.setattr(leased, "get_leases", lambda: leases)
    return leases


def retried(task, run_id: str, chunk: int) -> None:
    """Run the task as a worker would (its request set) and expect it to retry."""
    task.push_request(args=(run_id, chunk), kwargs={})
    try:
        with pytest.raises(Retry):
            task(run_id, chunk)
    finally:
        task.pop_request()


def test_a_retry_hands_the_lease_back_before_its_message_can_run(leases, monkeypatch):
    """A deferral of 50 ms may start in another thread at once. Had this execution still held
    the chunk's lease then, the retry would take itself for a duplicate delivery and wait a
    third of a lease (10 s): the late chunk of 1 run in 15-20 at 200 ms."""
    run_id, chunk = f"leased-{secrets.token_hex(4)}", 3
    holder_when_published: list[bytes | None] = []

    def publish(self, *args, **kwargs):  # Celery's retry: publish the message, raise Retry
        holder_when_published.append(leases.r.hget(holders_key(run_id), chunk))
        raise Retry("deferred", when=0.05)

    monkeypatch.setattr(Task, "retry", publish)
    app = Celery("leased-test", set_as_current=False)

    @app.task(bind=True, base=leased.LeasedTask, run_arg=0, waits_for_holder=True)
    def upload(self, run_id: str, chunk: int) -> None:
        raise self.retry(countdown=0.05)  # the gate said: come back in 50 ms

    retried(upload, run_id, chunk)
    assert holder_when_published == [b""]  # queued, held by nobody: the retry may take it
    assert leases.take(run_id, chunk, "another:1:x", deadline=1e12, now=0)  # and does


def test_a_duplicate_delivery_waits_for_the_live_holder_and_leaves_its_lease(leases, monkeypatch):
    run_id, chunk = f"leased-{secrets.token_hex(4)}", 4
    assert leases.take(run_id, chunk, "holder:1:x", deadline=1e12, now=0)
    countdowns: list[float] = []

    def publish(self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None,
                *rest, **options):  # fmt: skip
        countdowns.append(countdown)
        raise Retry("waiting", when=countdown)

    monkeypatch.setattr(Task, "retry", publish)
    app = Celery("leased-test", set_as_current=False)
    ran: list[int] = []

    @app.task(bind=True, base=leased.LeasedTask, run_arg=0, waits_for_holder=True)
    def upload(self, run_id: str, chunk: int) -> None:
        ran.append(chunk)

    retried(upload, run_id, chunk)
    assert ran == [] and len(countdowns) == 1 and countdowns[0] > 0  # it comes back later
    assert leases.r.hget(holders_key(run_id), chunk) == b"holder:1:x"  # still the holder's
