"""The command line explains itself: every option has help, defaults show, the sandbox's token
and knobs are in its --help, and bad settings of a command stop it in one line."""

from __future__ import annotations

import argparse

import pytest

from audiencesync.cli.main import build_parser, main
from audiencesync.cli.services import flower_auth
from audiencesync.errors import ConfigError
from audiencesync.settings import Settings, get_settings


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))
    yield path, parser


def test_every_option_and_argument_of_every_command_has_help():
    missing = [
        f"{' '.join(path)} {action.dest}"
        for path, parser in commands(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction)
        and not action.help
    ]
    assert missing == []


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps help at the terminal's width


def help_text(*command: str) -> str:
    parser = dict(commands(build_parser()))[command]
    return " ".join(parser.format_help().split())


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (("runs",), "how many of the latest runs (default: 20)"),
        (("upload",), "(default: add)"),
        (("flower",), "(default: 5555)"),
        (("sandbox",), "added to every call (default: 0.0)"),  # a zero is a default too
        (("worker",), "(default: the queue name)"),  # said in the help: not said twice
    ],
)
def test_help_shows_defaults(command, shown):
    assert shown in help_text(*command)
    assert "(default: None)" not in help_text(*command)
    assert "(default: False)" not in help_text(*command)


def test_the_sandbox_help_says_its_token_and_how_to_change_knobs():
    text = help_text("sandbox")
    assert "the only access token it accepts (default: sandbox-token)" in text
    assert "AUDIENCESYNC_ACCESS_TOKEN=sandbox-token" in text
    assert "curl -X POST http://127.0.0.1:8765/_sandbox/config" in text
    assert "'Content-Type: application/json'" in text


@pytest.mark.parametrize("auth", ["admin", "admin:", ":secret", "a:b,admin"])
def test_flower_basic_auth_without_user_and_password_is_refused(auth):
    with pytest.raises(ConfigError, match="must be user:password"):
        flower_auth(Settings(flower_basic_auth=auth))


def test_flower_basic_auth_with_users_and_passwords_is_passed_on():
    assert flower_auth(Settings(flower_basic_auth="a:b,c:d:e")) == "a:b,c:d:e"


def test_the_flower_command_refuses_it_in_one_line_before_starting(monkeypatch, capsys):
    monkeypatch.setenv("AUDIENCESYNC_FLOWER_BASIC_AUTH", "admin")
    get_settings.cache_clear()
    try:
        assert main(["flower"]) == 1
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("audiencesync: error: AUDIENCESYNC_FLOWER_BASIC")
    assert "admin" not in err[0].split("must be")[0].replace("AUDIENCESYNC_FLOWER", "")
