"""Start a run: the one path from a request to a published run, for the CLI and schedules.

(Meta's answer about the audience first: producers/preflight.py)
open the request's source -> record the run (a mirror run first reads its whole source and
diffs it, under the audience's mirror lock) -> the caller announces it -> publish the chord
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from celery.result import AsyncResult

from audiencesync.domain.modes import MIRROR, too_big_to_replace
from audiencesync.errors import ConfigError
from audiencesync.graph.destination import destination
from audiencesync.settings import Settings
from audiencesync.store.meta import Mode
from audiencesync.store.runs import RunStore
from producers.pipeline import RunRequest, create_run, produce

Publish = Callable[[], AsyncResult | None]


@contextmanager
def planned_run(
    store: RunStore,
    settings: Settings,
    request: RunRequest,
    run_id: str,
    *,
    audience: dict | None = None,  # Meta's answer about it (preflight): its size is checked
    resync: bool = False,  # a mirror run that replaces the audience with the whole source
) -> Iterator[Publish]:
    """`with planned_run(...) as publish:` the run exists in Redis; `publish()` streams it.

    The source stays open (and a mirror run's lock held) until the block ends. The run records
    the Graph API these settings point at: workers pointed elsewhere refuse its chunks."""
    replaces = request.mode == Mode.REPLACE or (request.mode == MIRROR and resync)
    if replaces and (refused := too_big_to_replace(audience)):  # no run: nothing is sent
        raise ConfigError(refused)
    request = replace(request, destination=destination(settings))
    source = request.source.open(settings)
    try:
        if request.mode == MIRROR:
            from producers.mirror import MirrorRun  # numpy and the snapshot: mirror runs only

            with MirrorRun(
                store, settings, request, run_id, audience=audience, resync=resync
            ) as run:
                run.plan(source)  # the guard needs the whole difference before anything is sent
                yield run.publish
            return
        create_run(store, request, source, run_id=run_id)
        yield lambda: produce(store, run_id, source, settings)
    finally:
        source.close()
