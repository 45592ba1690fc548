"""watchdog (beat, queue `critical`): flag runs that stopped making progress as `stalled`.

A producer that died mid-stream leaves its chord open forever and its run `running`; the
watchdog makes that visible in `audiencesync status`, which then says to resume it.
"""

from __future__ import annotations

import logging
import time

from audiencesync.settings import get_settings
from workers.app import app
from workers.resources import get_store

log = logging.getLogger("audiencesync.watchdog")


@app.task(name="audiencesync.watchdog", ignore_result=True)
def watchdog() -> list[str]:
    stall_after_s = get_settings().stall_after_s
    stalled = get_store().mark_stalled(time.time(), stall_after_s)
    for run_id in stalled:
        log.warning(
            "run=%s stalled: no progress for %.0fs; resume it with: audiencesync resume %s",
            run_id,
            stall_after_s,
            run_id,
        )
    return stalled
