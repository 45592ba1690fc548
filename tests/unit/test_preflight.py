"""cli/preflight.py: Meta's answer about the audience, read in a thread; what waits for it."""

from __future__ import annotations

import threading

import pytest

from audiencesync.cli import preflight as module
from audiencesync.cli.preflight import Preflight
from audiencesync.errors import ConfigError
from audiencesync.settings import Settings

SETTINGS = Settings(access_token="t")


def slow_answer(monkeypatch, outcome) -> threading.Event:
    """preflight() answers `outcome` (raised if an error) once the returned event is set."""
    go = threading.Event()

    def fake(settings, audience_id):
        go.wait(10)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(module, "preflight", fake)
    return go


def test_then_registered_before_the_answer_runs_with_it_and_answer_waits_for_it(monkeypatch):
    go = slow_answer(monkeypatch, {"id": "1"})
    seen = []
    asked = Preflight(SETTINGS, "1")
    asked.then(seen.append)
    assert seen == []  # nothing yet: the read is on its way
    go.set()
    assert asked.answer() == {"id": "1"} and seen == [{"id": "1"}]


def test_then_registered_after_the_answer_runs_at_once(monkeypatch):
    go = slow_answer(monkeypatch, None)  # unreachable: the uploads go and retry
    go.set()
    asked = Preflight(SETTINGS, "1")
    assert asked.answer() is None
    seen = []
    asked.then(seen.append)
    assert seen == [None]


def test_a_refusal_reaches_then_and_answer_raises_it(monkeypatch):
    refused = ConfigError("the access token was rejected: set a valid AUDIENCESYNC_ACCESS_TOKEN")
    go = slow_answer(monkeypatch, refused)
    seen = []
    asked = Preflight(SETTINGS, "1")
    asked.then(seen.append)
    go.set()
    with pytest.raises(ConfigError, match="set a valid"):
        asked.answer()
    assert seen == [refused]


def test_an_empty_token_is_said_before_any_read(monkeypatch):
    go = slow_answer(monkeypatch, {"id": "1"})
    go.set()
    with pytest.raises(ConfigError, match="AUDIENCESYNC_ACCESS_TOKEN is empty"):
        Preflight(Settings(access_token=""), "1")


def test_a_failing_then_does_not_break_the_answer(monkeypatch):
    go = slow_answer(monkeypatch, {"id": "1"})
    asked = Preflight(SETTINGS, "1")

    def redis_away(outcome):
        raise ConnectionError("Redis away")

    asked.then(redis_away)
    go.set()
    assert asked.answer() == {"id": "1"}
