"""A worker's Redis clients have room for all its threads: redis-py's default pool refuses a
101st connection at once, and a worker runs 128 upload threads (real redis-server)."""

from __future__ import annotations

import threading

from audiencesync.settings import Settings
from audiencesync.store.locks import connect
from workers.app import celery_config


def test_threads_beyond_the_pool_wait_for_a_connection_instead_of_failing(redis_url):
    client = connect(redis_url, max_connections=2)
    errors: list[BaseException] = []

    def block() -> None:
        try:  # holds its connection for the whole wait, like a chunk waiting for batch 1
            client.blpop(["as:test:nothing"], timeout=0.2)
        except Exception as exc:  # any error fails the test
            errors.append(exc)

    threads = [threading.Thread(target=block) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and not any(t.is_alive() for t in threads)


def test_the_pools_hold_every_upload_thread_of_the_default_worker():
    settings = Settings()
    assert settings.redis_connections > settings.critical_concurrency
    assert celery_config(settings)["redis_max_connections"] == settings.redis_connections
    big = Settings(critical_concurrency=300)
    assert big.redis_connections > 300
