"""start_run (queue `producer`): beat's entry point; streams one declared audience into a run.

Only the audience's NAME travels in the message (Flower shows it); everything else is read from
the declared file on the worker. Not acks_late: a producer lost mid-stream is not restarted from
the top by redelivery; the next scheduled tick starts a fresh run once the lock expires.
"""

from __future__ import annotations

import logging

from audiencesync.errors import AudienceSyncError
from audiencesync.settings import get_settings
from producers.scheduled import start_declared_run
from workers.app import app
from workers.resources import get_store

log = logging.getLogger("audiencesync.start_run")


@app.task(name="audiencesync.start_run", acks_late=False, ignore_result=True)
def start_run(name: str) -> str | None:
    try:
        return start_declared_run(get_store(), get_settings(), name)
    except AudienceSyncError as exc:  # a bad file or source: one line, not a traceback
        log.error("audience=%s not started: %s", name, exc)
        return None
