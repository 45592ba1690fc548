"""Declared audiences: a TOML file that says what to send where, and how often (pure).

    [audiences.lapsed-users]          # the name: letters, digits, '-' and '_'
    audience_id = "23850000000000001"
    file = "/data/lapsed.csv"         # or: query = "SELECT maid FROM ..."  or: table = "SEGMENTS.X"
    column = "maid"                   # optional: the first column by default
    hash = false                      # optional: send SHA-256 of each normalised ID
    mode = "add"                      # optional: "add" (default), "remove" or "replace"
    delimiter = ";"                   # optional, CSV: sniffed by default ("tab" for a tab)
    no_header = true                  # optional, CSV: no header row; column = "2" is a number
    max_rejected_pct = 5              # optional: fail, sending nothing, above 5 % rejected
    every_s = 3600                    # or: cron = "0 3 * * *" (minute hour day month weekday, UTC)

Every error names its line: tomllib's for syntax, the offending key's (or table's) otherwise.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass

from celery.schedules import crontab

from audiencesync.domain.modes import MODES
from audiencesync.errors import ConfigError

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
SOURCE_KEYS = ("file", "query", "table")
OPTIONAL = ("column", "mode", "every_s", "cron", "delimiter", "no_header", "max_rejected_pct")
KEYS = {"audience_id", *SOURCE_KEYS, "hash", *OPTIONAL}


@dataclass(frozen=True)
class Audience:
    name: str
    audience_id: str
    file: str | None = None
    query: str | None = None
    table: str | None = None
    column: str | None = None
    hash_ids: bool = False
    mode: str = "add"
    every_s: int | None = None
    cron: str | None = None
    delimiter: str | None = None
    no_header: bool = False
    max_rejected_pct: float | None = None

    def schedule(self):
        """A celery schedule: seconds, or a crontab from the five standard cron fields."""
        return self.every_s if self.every_s else parse_cron(self.cron or "")


def parse_cron(text: str) -> crontab:
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"cron needs 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    return crontab(
        minute=minute, hour=hour, day_of_month=day, month_of_year=month, day_of_week=weekday
    )


def parse_audiences(text: str, where: str = "audiences file") -> tuple[list[Audience], list[str]]:
    """The audiences the text declares, and every error found ("file:line: what to do")."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [], [f"{where}: {exc}"]  # tomllib's message ends with "(at line N, column M)"
    errors: list[str] = []
    extra = sorted(set(doc) - {"audiences"})
    for key in extra:
        errors.append(f"{where}:{_line_of(text, key)}: unknown top-level key {key!r}")
    tables = doc.get("audiences")
    if not isinstance(tables, dict) or not tables:
        errors.append(f"{where}:1: declare at least one [audiences.NAME] table")
        return [], errors
    audiences = []
    for name, table in tables.items():
        found = _check(name, table, lambda k, n=name: f"{where}:{_line_of(text, n, k)}")
        errors += found[1]
        if found[0] is not None:
            audiences.append(found[0])
    return audiences, errors


def _check(name: str, table: object, at) -> tuple[Audience | None, list[str]]:
    if not isinstance(table, dict):
        return None, [f"{at(None)}: audiences.{name} must be a table ([audiences.{name}])"]
    errors = []
    if not NAME.fullmatch(name):
        errors.append(f"{at(None)}: name {name!r}: use 1-64 letters, digits, '-' or '_'")
    for key in sorted(set(table) - KEYS):
        errors.append(f"{at(key)}: unknown key {key!r} (known: {', '.join(sorted(KEYS))})")
    audience_id = table.get("audience_id")
    if not isinstance(audience_id, str) or not audience_id.isdigit():
        errors.append(
            f"{at('audience_id')}: audience_id must be the audience's id as a string of "
            'digits, e.g. audience_id = "23850000000000001"'
        )
    sources = [k for k in SOURCE_KEYS if k in table]
    if len(sources) != 1:
        got = " and ".join(sources) or "none"
        errors.append(
            f"{at(sources[-1] if sources else None)}: give exactly one of file, query "
            f"or table (got {got})"
        )
    for key in (*SOURCE_KEYS, "column", "cron", "delimiter"):
        if key in table and not (isinstance(table[key], str) and table[key].strip()):
            errors.append(f"{at(key)}: {key} must be a non-empty string")
    for key in ("hash", "no_header"):
        if not isinstance(table.get(key, False), bool):
            errors.append(f"{at(key)}: {key} must be true or false")
    pct = table.get("max_rejected_pct", 0)
    if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 <= pct <= 100:
        errors.append(f"{at('max_rejected_pct')}: max_rejected_pct must be a number from 0 to 100")
    mode = table.get("mode", "add")
    if mode not in MODES:
        choices = ", ".join(MODES)
        errors.append(f"{at('mode')}: mode {mode!r} is not supported; use one of {choices}")
    errors += _check_schedule(table, at)
    if errors:
        return None, errors
    return Audience(
        name=name,
        audience_id=str(audience_id),  # checked above: a string of digits
        **{k: table[k] for k in (*SOURCE_KEYS, *OPTIONAL) if k in table},
        hash_ids=table.get("hash", False),
    ), []


def missing_files(
    audiences: list[Audience], text: str, where: str, exists: Callable[[str], bool]
) -> list[str]:
    """An error per `file =` that `exists` does not find, at its line (the check is the
    caller's: producer workers read the file on their own host, relative to their directory)."""
    return [
        f"{where}:{_line_of(text, a.name, 'file')}: file {a.file!r} does not exist here; "
        "give a path the producer workers can read"
        for a in audiences
        if a.file and not exists(a.file)
    ]


def _check_schedule(table: dict, at) -> list[str]:
    given = [k for k in ("every_s", "cron") if k in table]
    if len(given) != 1:
        return [
            f"{at(given[-1] if given else None)}: give exactly one of every_s (seconds) or "
            f'cron ("minute hour day month weekday")'
        ]
    if "every_s" in table:
        every_s = table["every_s"]
        if isinstance(every_s, bool) or not isinstance(every_s, int) or every_s < 1:
            return [f"{at('every_s')}: every_s must be a whole number of seconds >= 1"]
        return []
    try:
        parse_cron(str(table["cron"]))
    except ValueError as exc:
        return [f"{at('cron')}: cron {table['cron']!r} is not valid: {exc}"]
    return []


def _line_of(text: str, name: str, key: str | None = None) -> int:
    """1-based line of `[audiences.name]` (or of `key = ...` inside that table); 1 if unsure."""
    header = re.compile(rf"""^\s*\[\s*audiences\s*\.\s*["']?{re.escape(name)}["']?\s*\]""")
    assign = re.compile(rf"""^\s*["']?{re.escape(key or name)}["']?\s*=""")
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:  # a top-level key
        return next((i + 1 for i, line in enumerate(lines) if assign.match(line)), 1)
    if key is None:
        return start + 1
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith("["):
            break
        if assign.match(lines[i]):
            return i + 1
    return start + 1


def load_audiences(path: str) -> list[Audience]:
    """The declared audiences, or a ConfigError listing every problem."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the audiences file {path}: {exc.strerror}") from None
    audiences, errors = parse_audiences(text, path)
    if errors:
        raise ConfigError("; ".join(errors))
    return audiences


def find_audience(path: str, name: str) -> Audience:
    for audience in load_audiences(path):
        if audience.name == name:
            return audience
    raise ConfigError(f"no audience {name!r} declared in {path}")
