"""`audiences create` and `audiences show` against the sandbox over HTTP, as a newcomer runs
them; an empty token is its own one-line error, before any call."""

from __future__ import annotations

import orjson
import pytest

from audiencesync.cli.main import main
from audiencesync.settings import get_settings


@pytest.fixture
def command(graph, monkeypatch, capsys):
    """`audiencesync ARGS` in this process, its settings pointing at a sandbox of its own."""
    monkeypatch.setenv("AUDIENCESYNC_GRAPH_URL", str(graph.http.base_url))

    def run(*args: str, **env: str) -> tuple[int, str, str]:
        for name, value in env.items():
            monkeypatch.setenv(f"AUDIENCESYNC_{name.upper()}", value)
        get_settings.cache_clear()
        try:
            code = main(list(args))
        finally:
            get_settings.cache_clear()
        out, err = capsys.readouterr()
        return code, out, err

    return run


def calls_made(graph) -> int:
    return graph.http.get("/_sandbox/stats").json()["calls"]


def test_create_prints_the_id_of_a_customer_file_audience_then_show_gives_its_size(command, graph):
    code, out, err = command("audiences", "create", "--name", "trial", "--ad-account-id", "act_7")
    assert code == 0, err
    audience_id = out.strip()
    assert audience_id.isdigit()
    assert f"audiencesync upload FILE --audience-id {audience_id}" in err
    seen = graph.http.get(
        f"/v26.0/{audience_id}",
        params={"fields": "name,account_id,subtype", "access_token": "sandbox-token"},
    ).json()
    assert seen == {"name": "trial", "account_id": "7", "subtype": "CUSTOM", "id": audience_id}

    graph.upload(
        audience_id,
        ["6d92078a-8246-4ba4-ae5b-76104861e7dc", "aebe52e7-03ee-455a-b3c4-e57283966239"],
    )
    code, out, err = command("audiences", "show", audience_id)
    assert code == 0, err
    assert out.splitlines() == [
        f"audience {audience_id}: about 2 people (matched, approximate)",
        "  status 200: Normal",
    ]
    code, out, _ = command("audiences", "show", audience_id, "--json")
    shown = orjson.loads(out)
    assert shown["approximate_count_lower_bound"] == 2 and shown["operation_status"]["code"] == 200


def test_create_takes_the_ad_account_from_the_settings_or_says_to_give_one(command):
    code, out, _ = command("audiences", "create", "--name", "trial", ad_account_id="1001")
    assert code == 0 and out.strip().isdigit()
    code, out, err = command("audiences", "create", "--name", "trial", ad_account_id="")
    assert (code, out) == (1, "")
    assert err == (
        "audiencesync: error: pass --ad-account-id or set AUDIENCESYNC_AD_ACCOUNT_ID "
        "(without act_)\n"
    )


def test_show_of_an_unknown_audience_is_one_line(command):
    code, _, err = command("audiences", "show", "999999")
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("audiencesync: error: audience 999999 cannot be read (")
    assert err.rstrip().endswith("check the id and that the token's user may manage it")


@pytest.mark.parametrize(
    "args",
    [
        ("audiences", "create", "--name", "trial"),
        ("audiences", "show", "1"),
        ("upload", "-", "--audience-id", "1"),
    ],
    ids=["create", "show", "upload"],
)
def test_an_empty_token_is_its_own_one_line_error_before_any_call(command, graph, args):
    before = calls_made(graph)
    code, out, err = command(*args, access_token="")
    assert (code, out) == (1, "")
    assert err == (
        "audiencesync: error: AUDIENCESYNC_ACCESS_TOKEN is empty: set it to a token with "
        "ads_management (the sandbox's is `sandbox-token`)\n"
    )
    assert calls_made(graph) == before


def test_a_wrong_token_names_the_setting_and_not_the_token(command):
    code, _, err = command("audiences", "create", "--name", "t", access_token="expired-token")
    assert code == 1 and "AUDIENCESYNC_ACCESS_TOKEN" in err and "expired-token" not in err
