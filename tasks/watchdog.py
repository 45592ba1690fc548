"""watchdog (beat, queue `critical`): find runs that stopped making progress.

A run is marked `stalled` after `stall_after_s` with no chunk staged or finished. When its
producer had published everything, what is missing is a task Redis lost (a worker or Redis
died in the instant between taking a message and recording it as unacknowledged) or a body
that never fired: the watchdog re-drives its unfinished chunks itself, under a new chord whose
finalize reports the run. When the producer died mid-stream, only `audiencesync resume` (which
reads the source) can finish the run: the watchdog makes it visible in `status`.
"""

from __future__ import annotations

import logging
import time

from audiencesync.settings import get_settings
from producers.resume import resume_run
from workers.app import app
from workers.resources import get_store

log = logging.getLogger("audiencesync.watchdog")


@app.task(name="audiencesync.watchdog", ignore_result=True)
def watchdog() -> list[str]:
    settings, store = get_settings(), get_store()
    stalled = store.mark_stalled(time.time(), settings.stall_after_s)
    for run_id in stalled:
        if (meta := store.run(run_id)) is not None and meta.producer_done:
            chunks = store.staged_count(run_id)
            log.warning("run=%s stalled: re-driving its %d unfinished chunk(s)", run_id, chunks)
            resume_run(store, run_id, settings, source=None)
        else:
            log.warning(
                "run=%s stalled while reading its source: finish it with: audiencesync resume %s",
                run_id,
                run_id,
            )
    return stalled
