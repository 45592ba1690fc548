"""Declared audiences: parsing, errors with their lines, the beat entries built from them."""

from __future__ import annotations

import textwrap

import pytest
from celery.schedules import crontab

from audiencesync.domain.audiences import parse_audiences
from workers.schedule import audience_entries

GOOD = textwrap.dedent(
    """\
    # two audiences
    [audiences.lapsed]
    audience_id = "23850000000000001"
    file = "/data/lapsed.csv"
    column = "maid"
    every_s = 600

    [audiences.vip-users]
    audience_id = "23850000000000002"
    query = "SELECT maid FROM crm.vip"
    hash = true
    mode = "add"
    cron = "30 3 * * 1-5"
    """
)


def test_a_good_file_gives_audiences_and_beat_entries_that_carry_only_the_name():
    audiences, errors = parse_audiences(GOOD)
    assert errors == []
    lapsed, vip = audiences
    assert (lapsed.name, lapsed.file, lapsed.column, lapsed.every_s) == (
        "lapsed",
        "/data/lapsed.csv",
        "maid",
        600,
    )
    assert vip.hash_ids and vip.query == "SELECT maid FROM crm.vip"
    entries = audience_entries(audiences)
    assert entries["audience:lapsed"]["args"] == ("lapsed",)
    assert entries["audience:lapsed"]["schedule"] == 600
    assert entries["audience:lapsed"]["options"] == {"queue": "producer", "expires": 600}
    cron = entries["audience:vip-users"]["schedule"]
    assert isinstance(cron, crontab)
    assert cron.minute == {30} and cron.hour == {3} and cron.day_of_week == {1, 2, 3, 4, 5}


def broken(line: int, old: str, new: str) -> str:
    lines = GOOD.splitlines()
    assert old in lines[line - 1], lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        (broken(12, '"add"', '"upsert"'), 12, "use one of add, remove, replace, mirror"),
        (broken(6, "every_s = 600", "every_s = 0"), 6, "every_s must be"),
        (broken(6, "every_s = 600", 'cron = "61 * * * *"'), 6, "cron '61 * * * *' is not valid"),
        (broken(13, '"30 3 * * 1-5"', '"30 3 * *"'), 13, "5 fields"),
        (broken(3, '"23850000000000001"', "23850000000000001"), 3, "string of digits"),
        (broken(5, "column", "colum"), 5, "unknown key 'colum'"),
        (broken(11, "hash = true", 'file = "x.csv"'), 10, "exactly one of file, query or table"),
        (broken(2, "lapsed", '"bad name!"'), 2, "name 'bad name!'"),
        (broken(4, '"/data/lapsed.csv"', '"/data/lapsed.csv'), 4, "line 4"),  # TOML syntax
    ],
)
def test_every_error_names_its_line(text, line, says):
    audiences, errors = parse_audiences(text, "a.toml")
    assert audiences == [] or len(audiences) == 1
    assert len(errors) == 1, errors
    assert says in errors[0]
    assert errors[0].startswith(f"a.toml:{line}:") or f"line {line}" in errors[0]


def test_a_missing_schedule_points_at_its_table():
    text = '[audiences.x]\naudience_id = "1"\nfile = "a.csv"\n'
    _, errors = parse_audiences(text, "a.toml")
    assert errors == [
        'a.toml:1: give exactly one of every_s (seconds) or cron ("minute hour day month weekday")'
    ]


def test_an_empty_file_is_an_error():
    assert parse_audiences("", "a.toml")[1] == [
        "a.toml:1: declare at least one [audiences.NAME] table"
    ]


def test_validate_command_lists_errors_with_lines_and_exits_1(tmp_path):
    import subprocess

    from audiencesync.cli import devstack

    path = tmp_path / "a.toml"
    (tmp_path / "lapsed.csv").write_text("maid\n")
    good_file = ("/data/lapsed.csv", str(tmp_path / "lapsed.csv"))
    path.write_text(broken(12, '"add"', '"upsert"').replace(*good_file))
    done = subprocess.run(
        devstack.cli_command("audiences", "validate", str(path)), capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"audiencesync: error: {path}:12: mode 'upsert' is not supported; use one of "
        "add, remove, replace, mirror"
    )
    path.write_text(GOOD.replace(*good_file))
    done = subprocess.run(
        devstack.cli_command("audiences", "validate", str(path)), capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.splitlines()[0] == (
        "lapsed: audience 23850000000000001 (add), every 600s"
    )


def test_validate_flags_a_file_that_does_not_exist_at_its_line(tmp_path, capsys):
    from audiencesync.cli.main import main

    path = tmp_path / "a.toml"
    path.write_text(GOOD.replace("/data/lapsed.csv", str(tmp_path / "nope.csv")))
    assert main(["audiences", "validate", str(path)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"audiencesync: error: {path}:4: file '{tmp_path / 'nope.csv'}' does not exist here; "
        "give a path the producer workers can read"
    )


@pytest.mark.parametrize("mode", ["remove", "replace"])
def test_a_declared_audience_may_remove_or_replace(mode):
    audiences, errors = parse_audiences(broken(12, '"add"', f'"{mode}"'))
    assert errors == [] and [a.mode for a in audiences] == ["add", mode]
