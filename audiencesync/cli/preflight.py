"""The upload command's one read before sending: Meta's answer about the audience, asked in a
thread while the command goes on.

At Meta's pace the read is a round trip of 1-2 s. A replace or a mirror run needs its answer
(the audience's size) before it starts. An add or a remove only needs it before its first
upload: the run is created with its uploads held, read and prepared meanwhile, and the answer
releases the uploads, or aborts the run (a bad token or audience: one call, nothing uploaded).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable

from audiencesync.errors import ConfigError
from audiencesync.settings import Settings

Outcome = dict | None | BaseException  # Meta's answer (None: unreachable), or the error


def require_token(settings: Settings) -> None:
    """An empty token is its own error (else: a vague "no answer from ..." from HTTP)."""
    from audiencesync.graph.destination import EMPTY_TOKEN

    if not settings.access_token.get_secret_value():
        raise ConfigError(EMPTY_TOKEN)


def preflight(settings: Settings, audience_id: str) -> dict | None:
    """Meta's answer about the audience (producers/preflight.py)."""
    from producers.preflight import read_audience

    return read_audience(
        settings,
        audience_id,
        lambda line: print(f"audiencesync: warning: {line}", file=sys.stderr),
    )


class Preflight:
    """preflight() in a daemon thread, started at once (an empty token is said before). `answer()`
    waits for it (and raises its error); `then(fn)` has fn called with the outcome once there is
    one."""

    def __init__(self, settings: Settings, audience_id: str) -> None:
        require_token(settings)
        self._lock = threading.Lock()
        self._outcome: list[Outcome] = []
        self._then: Callable[[Outcome], None] | None = None
        self._thread = threading.Thread(
            target=self._ask, args=(settings, audience_id), name="preflight", daemon=True
        )
        self._thread.start()

    def _ask(self, settings: Settings, audience_id: str) -> None:
        outcome: Outcome
        try:
            outcome = preflight(settings, audience_id)
        except BaseException as exc:  # re-raised in the command's thread by answer()
            outcome = exc
        with self._lock:
            self._outcome.append(outcome)
            then = self._then
        if then is not None:
            # Redis away: the command fails on it too, and the workers' wait runs out.
            with contextlib.suppress(Exception):
                then(outcome)

    def then(self, fn: Callable[[Outcome], None]) -> None:
        with self._lock:
            if not self._outcome:
                self._then = fn
                return
        fn(self._outcome[0])

    def answer(self) -> dict | None:
        self._thread.join()
        outcome = self._outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
