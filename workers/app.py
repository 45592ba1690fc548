"""The Celery app; its configuration is derived from the one settings object."""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import after_setup_logger
from kombu import Queue
from kombu.transport import redis as kombu_redis

from audiencesync.settings import Settings, get_settings

QUEUE_CRITICAL = "critical"  # network I/O: uploads and the chord body (closes the session)
QUEUE_STANDARD = "standard"  # CPU: normalising, hashing, encoding
# Scheduled producers: each holds its slot for a whole run (waiting on backpressure), so they get
# their own small threads worker; on `standard` they could take every slot `prepare` needs.
QUEUE_PRODUCER = "producer"

TASK_ROUTES = {
    "audiencesync.prepare": {"queue": QUEUE_STANDARD},
    "audiencesync.upload": {"queue": QUEUE_CRITICAL},
    "audiencesync.finalize": {"queue": QUEUE_CRITICAL},
    "audiencesync.start_run": {"queue": QUEUE_PRODUCER},
    "audiencesync.watchdog": {"queue": QUEUE_CRITICAL},
}


def restore_interval_s(visibility_timeout_s: int) -> int:
    """How often workers look for unacknowledged tasks older than the visibility timeout.

    kombu's default sweep is every 10 s x 10 (throttle): with a short visibility timeout a lost
    task would wait far longer than the timeout. A tenth of it, between 1 s and 60 s, with no
    throttle, keeps redelivery within about 1.1 x the timeout; the sweep is one small ZRANGE.
    """
    return max(1, min(60, visibility_timeout_s // 10))


def celery_config(settings: Settings) -> dict:
    visibility = {"visibility_timeout": settings.visibility_timeout_s}
    return {
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        "broker_transport_options": visibility
        | {
            "unacked_restore_interval": restore_interval_s(settings.visibility_timeout_s),
            "unacked_restore_throttle": 1,
        },
        "result_backend_transport_options": visibility,
        # Upload threads store results and count chords at once: redis-py's default pool (100)
        # would refuse some of 128 threads.
        "redis_max_connections": settings.redis_connections,
        "visibility_timeout": settings.visibility_timeout_s,
        "broker_connection_retry_on_startup": True,
        # Producers ride out a Redis restart (~30 s), like every other Redis client here.
        "task_publish_retry_policy": {
            "max_retries": 12,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 3,
        },
        "task_queues": [Queue(QUEUE_CRITICAL), Queue(QUEUE_STANDARD), Queue(QUEUE_PRODUCER)],
        "task_default_queue": QUEUE_STANDARD,
        "task_create_missing_queues": False,
        "task_routes": TASK_ROUTES,
        # Redelivered, not lost, when a worker dies mid-task: every task here is idempotent.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_max_memory_per_child": settings.worker_max_memory_per_child_kb,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # Chord keys must outlive the longest run, or the body never fires.
        "result_expires": settings.run_ttl_s,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "watchdog": {
                "task": "audiencesync.watchdog",
                "schedule": settings.watchdog_interval_s,
                # Expires: while workers are down, missed rounds do not pile up in the queue.
                "options": {"queue": QUEUE_CRITICAL, "expires": settings.watchdog_interval_s},
            }
        },
    }


TASK_MODULES = [
    "tasks.prepare",
    "tasks.upload",
    "tasks.finalize",
    "tasks.start_run",
    "tasks.watchdog",
    "tasks.reaper",  # not a task: the reaper thread every worker starts (no beat needed)
]


def reuse_kombu_redis_clients() -> None:
    """kombu builds a new redis.Redis for every ack, publish and event (Channel.conn_or_acquire),
    and redis-py 8 takes ~0.5 ms to build one: several per chunk in every process. One client
    per channel instead, over the same connection pool (thread-safe; after a fork or a
    reconnect the pool itself makes new connections, and a replaced pool gets a new client)."""
    original = kombu_redis.Channel._create_client
    if getattr(original, "reuses_clients", False):
        return

    def create_client(channel: kombu_redis.Channel, asynchronous: bool = False):
        if asynchronous:
            return original(channel, asynchronous)
        client = channel.__dict__.get("_sync_client")
        if client is None or client.connection_pool is not channel.pool:
            client = channel.__dict__["_sync_client"] = original(channel)
        return client

    create_client.reuses_clients = True  # type: ignore[attr-defined]
    setattr(kombu_redis.Channel, "_create_client", create_client)  # noqa: B010 (a method)


reuse_kombu_redis_clients()
app = Celery("audiencesync", include=TASK_MODULES)
app.conf.update(celery_config(get_settings()))


@after_setup_logger.connect
def _quiet_per_task_lines(**_: object) -> None:
    # Celery logs two INFO lines per task (received, succeeded): at thousands of chunks a run
    # they cost CPU and a lock in every upload thread. Flower and the run report show the same.
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)
