"""Beat schedule entries for declared audiences (pure): one `start_run(name)` per audience."""

from __future__ import annotations

from audiencesync.domain.audiences import Audience
from workers.app import QUEUE_PRODUCER

CRON_START_EXPIRES_S = 3600  # a cron start not picked up within an hour is dropped


def audience_entries(audiences: list[Audience]) -> dict[str, dict]:
    """A start not taken by a worker before the next one is due expires: while workers are down,
    runs do not pile up in the queue and then all start at once."""
    return {
        f"audience:{a.name}": {
            "task": "audiencesync.start_run",
            "schedule": a.schedule(),
            "args": (a.name,),
            "options": {
                "queue": QUEUE_PRODUCER,
                "expires": a.every_s or CRON_START_EXPIRES_S,
            },
        }
        for a in audiences
    }
