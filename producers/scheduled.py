"""A declared audience's scheduled run: one at a time per audience, under a Redis lock.

The lock (`as:lock:audience:{name}`, value = the run id) is taken with SET NX before anything is
read, refreshed while the producer streams, stretched once the producer is done to cover the
run's tail (every remaining chunk finishes within the retry budget), and released by `finalize`.
A producer that dies stops refreshing: the audience is free again within `audience_lock_ttl_s`.
"""

from __future__ import annotations

import logging

from audiencesync.domain.audiences import Audience, find_audience
from audiencesync.errors import ConfigError
from audiencesync.settings import Settings
from audiencesync.store.runs import RunStore
from producers.lock import kept_alive
from producers.pipeline import RunRequest, new_run_id
from producers.preflight import read_audience
from producers.spec import SourceSpec
from producers.start import planned_run
from producers.validate import check_rejected

log = logging.getLogger("audiencesync.scheduled")


def start_declared_run(store: RunStore, settings: Settings, name: str) -> str | None:
    """Run audience `name` from the declared file; the run id, or None when it was skipped."""
    if not settings.audiences_file:
        raise ConfigError("set AUDIENCESYNC_AUDIENCES_FILE on producer workers")
    audience = find_audience(settings.audiences_file, name)
    run_id = new_run_id()
    ttl_s = settings.audience_lock_ttl_s
    holder = store.take_audience_lock(name, run_id, ttl_s)
    if holder is not None:
        log.info("audience=%s skipped: run=%s is still running", name, holder)
        return None
    try:
        with kept_alive(store, name, run_id, ttl_s):
            _produce(store, settings, audience, run_id)
    except BaseException:
        store.release_audience_lock(name, run_id)
        raise
    if store.report(run_id) is not None:  # an empty source: no chord, so no finalize
        store.release_audience_lock(name, run_id)
    else:  # published: the remaining chunks finish within the retry budget; finalize releases
        store.refresh_audience_lock(name, run_id, int(settings.retry_budget_s) + ttl_s)
    return run_id


def _produce(store: RunStore, settings: Settings, audience: Audience, run_id: str) -> None:
    spec = SourceSpec.given(
        audience.file,
        column=audience.column,
        query=audience.query,
        table=audience.table,
        delimiter=audience.delimiter,
        no_header=audience.no_header,
    )
    if audience.max_rejected_pct is not None:  # raises before the run exists: nothing is sent
        check_rejected(spec, settings, audience.max_rejected_pct)
    request = RunRequest(
        audience.audience_id,
        mode=audience.mode,
        hash_ids=audience.hash_ids,
        name=audience.name,
        ad_account_id=settings.ad_account_id,  # shares the account's throttle with every run
        source=spec,  # so `resume` can read the rest of a run whose producer died
    )
    # Meta's answer about the audience, as the upload command reads it: a bad token or audience
    # costs this one call; a replace checks the audience's size, a mirror run what Meta counts.
    answer = read_audience(
        settings,
        audience.audience_id,
        lambda line: log.warning("audience=%s %s", audience.name, line),
    )
    with planned_run(store, settings, request, run_id, audience=answer) as publish:
        log.info("audience=%s run=%s started", audience.name, run_id)
        publish()
