"""Two environments, one run: the command checked one Graph API, the workers point at another.

The session's workers send to the session's sandbox; the command here runs with a second
sandbox's URL (its own "environment"). The run records the command's destination, so the
workers refuse every chunk, say why, and neither sandbox receives an upload.
"""

from __future__ import annotations

import orjson
import pytest
from e2e_helpers import SandboxViews, cli, dirty_rows, expected, write_csv

from audiencesync.cli import devstack


class Other(SandboxViews):
    def __init__(self, graph_url: str) -> None:
        self.graph_url = graph_url


@pytest.fixture
def other_sandbox(stack):
    proc, url = devstack.start_sandbox(log=stack.logs / "other-sandbox.log")
    try:
        yield Other(url)
    finally:
        devstack.stop(proc)


def test_workers_pointed_elsewhere_send_nothing_and_the_report_says_why(
    stack, other_sandbox, tmp_path
):
    env = {**stack.env, "AUDIENCESYNC_GRAPH_URL": other_sandbox.graph_url}
    created = cli(env, "audiences", "create", "--name", "two-environments")
    assert created.returncode == 0, created.stderr
    audience = created.stdout.strip()
    rows = dirty_rows(2_500, seed=14)
    write_csv(tmp_path / "a.csv", rows)
    workers_calls_before = stack.sandbox_stats()["calls"]

    done = cli(env, "upload", str(tmp_path / "a.csv"), "--column", "maid", "--audience-id",
               audience, "--wait", "--json")  # fmt: skip

    assert done.returncode == 1, done.stderr
    report = orjson.loads(done.stdout.splitlines()[-1])
    reason = (
        f"not sent: workers send to {stack.graph_url}/v26.0, the run was started for "
        f"{other_sandbox.graph_url}/v26.0: start the workers with the same "
        "AUDIENCESYNC_GRAPH_URL/GRAPH_VERSION"
    )
    assert report["status"] == "failed"
    assert report["failure_reasons"] == {reason: report["chunks"]}
    assert report["message"].startswith(f"{report['chunks']} chunk(s) failed, most often: {reason}")
    assert report["ids_uploaded"] == 0 and report["unaccounted"] == 0
    assert report["ids_failed"] == expected(rows)["uploaded"]  # every sendable ID, accounted
    # Nothing reached the workers' Graph API, and the one the run was for got no upload.
    assert stack.sandbox_stats()["calls"] == workers_calls_before
    assert other_sandbox.calls(audience) == [] and other_sandbox.members(audience) == set()
    shown = cli(env, "audiences", "show", audience)
    assert (
        shown.stdout.splitlines()[0]
        == f"audience {audience}: about 0 people (matched, approximate)"
    )
