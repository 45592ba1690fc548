"""A run records the Graph API it is for; a worker pointed elsewhere, or tokenless, refuses."""

from __future__ import annotations

import pytest

from audiencesync.graph.destination import EMPTY_TOKEN, destination, refusal
from audiencesync.settings import Settings

SANDBOX = Settings(graph_url="http://127.0.0.1:8765/", access_token="sandbox-token")


def test_the_destination_is_url_and_version_without_the_token():
    recorded = destination(SANDBOX)
    assert recorded == "http://127.0.0.1:8765/v26.0"
    assert "sandbox-token" not in recorded


def test_a_worker_with_the_same_destination_sends():
    assert refusal(destination(SANDBOX), SANDBOX) is None


@pytest.mark.parametrize(
    "worker",
    [
        Settings(graph_url="https://graph.facebook.com", access_token="t"),
        Settings(graph_url="http://127.0.0.1:8765", graph_version="v25.0", access_token="t"),
    ],
    ids=["other-url", "other-version"],
)
def test_a_worker_pointed_elsewhere_refuses_naming_both_and_what_to_do(worker):
    reason = refusal(destination(SANDBOX), worker)
    assert reason is not None and "\n" not in reason
    assert reason.startswith(f"workers send to {destination(worker)}, ")
    assert f"the run was started for {destination(SANDBOX)}" in reason
    assert reason.endswith("start the workers with the same AUDIENCESYNC_GRAPH_URL/GRAPH_VERSION")


def test_a_worker_without_a_token_refuses():
    reason = refusal(
        destination(SANDBOX), Settings(graph_url="http://127.0.0.1:8765", access_token="")
    )
    assert reason == "this worker's " + EMPTY_TOKEN


def test_a_run_recorded_before_destinations_were_is_sent_as_before():
    assert refusal("", SANDBOX) is None
