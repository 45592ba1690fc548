"""Per-process clients: one Redis pool and one pooled HTTP client per worker process.

Built lazily on first use and dropped in a forked child (a prefork worker must not share the
parent's sockets), so every process, whatever the pool, gets its own.
"""

from __future__ import annotations

import os
import threading

from audiencesync.graph import GraphClient
from audiencesync.recovery.leases import Leases
from audiencesync.settings import get_settings
from audiencesync.store.locks import connect
from audiencesync.store.meta import RunMeta
from audiencesync.store.replace import ReplaceTurns, hold_ttl_s
from audiencesync.store.runs import RunStore
from audiencesync.throttle.gate import Gate, account_key
from audiencesync.throttle.guard import Guard

_lock = threading.Lock()
_store: RunStore | None = None
_graph: GraphClient | None = None
_gate: Gate | None = None
_turns: ReplaceTurns | None = None
_leases: Leases | None = None


def _forget_after_fork() -> None:
    global _store, _graph, _gate, _turns
    _store, _graph, _gate, _turns = None, None, None, None


os.register_at_fork(after_in_child=_forget_after_fork)


def get_store() -> RunStore:
    global _store
    with _lock:
        if _store is None:
            settings = get_settings()
            client = connect(
                settings.redis_url,
                max_connections=settings.redis_connections,
                health_check_interval=30,
            )
            _store = RunStore.from_settings(client, settings)
        return _store


def get_graph() -> GraphClient:
    global _graph
    with _lock:
        if _graph is None:
            _graph = GraphClient(get_settings())
        return _graph


def get_gate() -> Gate:
    global _gate
    store = get_store()
    with _lock:
        if _gate is None:
            _gate = Gate.from_settings(store.r, get_settings())
        return _gate


def get_turns() -> ReplaceTurns:
    global _turns
    store = get_store()
    with _lock:
        if _turns is None:
            settings = get_settings()
            _turns = ReplaceTurns(
                store.r, hold_ttl_s=hold_ttl_s(settings), run_ttl_s=settings.run_ttl_s
            )
        return _turns


def get_leases() -> Leases:
    global _leases
    store = get_store()
    with _lock:
        if _leases is None or _leases.r is not store.r:  # a new one after a fork, as the store
            _leases = Leases(store.r, ttl_s=store.ttl_s)
        return _leases


def get_guard(run_id: str, meta: RunMeta) -> Guard:
    """The throttle guard for one call of a run, keyed by the run's ad account."""
    return Guard(get_gate(), get_store(), run_id, account_key(meta.ad_account_id, meta.audience_id))
