"""Keep a run's audience lock alive while its producer works (it may wait on backpressure for as
long as the run lasts); a producer that dies stops refreshing, so the lock frees itself."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from audiencesync.store.runs import RunStore

log = logging.getLogger("audiencesync.lock")


@contextmanager
def kept_alive(store: RunStore, name: str, run_id: str, ttl_s: int) -> Iterator[None]:
    """Refresh the lock every third of its TTL while the block runs (it may wait on backpressure
    for as long as the run lasts)."""
    stop = threading.Event()

    def keep() -> None:
        while not stop.wait(ttl_s / 3):
            if not store.refresh_audience_lock(name, run_id, ttl_s):
                log.warning("audience=%s run=%s lost its lock", name, run_id)
                return

    thread = threading.Thread(target=keep, name=f"lock-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
