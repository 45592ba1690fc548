"""The leases this process holds, renewed by one daemon thread while their tasks run.

A task takes its chunk's lease when it starts and lets go when it ends; between the two, this
thread extends it every third of `lease_s`. The thread lives in the process that runs the task
(a prefork child or a threads-pool worker), so a process that dies stops renewing, and its
chunks' leases run out within `lease_s`: that, not the broker's visibility timeout, is when
the reapers re-drive them.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

from audiencesync.recovery.leases import Leases

log = logging.getLogger("audiencesync.recovery")
_lock = threading.Lock()
_held: dict[tuple[str, int], str] = {}
_thread_pid: int | None = None


def _forget_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    _held.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def process_tag() -> str:
    """This process, as its chunk leases and throttle slots name it: "host:pid:"."""
    return f"{socket.gethostname()}:{os.getpid()}:"


def process_of(token: str) -> str:
    return token.rsplit(":", 1)[0] + ":"


def new_token() -> str:
    return f"{process_tag()}{secrets.token_hex(4)}"


def hold(leases: Leases, run_id: str, chunk: int, lease_s: float) -> str | None:
    """Take the chunk's lease for this process; None while another live holder has it."""
    token, now = new_token(), time.time()
    if not leases.take(run_id, chunk, token, deadline=now + lease_s, now=now):
        return None
    with _lock:
        _held[(run_id, chunk)] = token
    _ensure_thread(lambda: leases, lease_s)
    return token


def release(leases: Leases, run_id: str, chunk: int, token: str | None, until: float) -> None:
    """Hand the lease back as queued until `until` (a retry's countdown plus a lease)."""
    if token is not None:
        with _lock:
            _held.pop((run_id, chunk), None)
    leases.queue(run_id, chunk, deadline=until, now=time.time(), token=token or "")


def finish(leases: Leases, run_id: str, chunk: int) -> None:
    """The chunk has its outcome: nobody needs to vouch for it any more."""
    with _lock:
        _held.pop((run_id, chunk), None)
    leases.drop(run_id, chunk)


def held() -> dict[tuple[str, int], str]:
    with _lock:
        return dict(_held)


def _ensure_thread(get_leases: Callable[[], Leases], lease_s: float) -> None:
    global _thread_pid
    with _lock:
        if _thread_pid == os.getpid():
            return
        _thread_pid = os.getpid()  # a forked child starts its own: threads do not survive fork
    thread = threading.Thread(
        target=_renew_forever, args=(get_leases, lease_s), name="lease-heartbeat", daemon=True
    )
    thread.start()


def _renew_forever(get_leases: Callable[[], Leases], lease_s: float) -> None:
    while True:
        time.sleep(lease_s / 3)
        try:
            leases, deadline = get_leases(), time.time() + lease_s
            for (run_id, chunk), token in held().items():
                leases.renew(run_id, chunk, token, deadline=deadline)
        except Exception:  # Redis away for a moment: the next round tries again
            log.warning("could not renew chunk leases", exc_info=True)
