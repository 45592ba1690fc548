"""The `audiencesync` command. Every failure ends in one line that says what to do, and exit 1."""

from __future__ import annotations

import argparse
import sys

from audiencesync import logs
from audiencesync.cli import audiences, local, operate, services
from audiencesync.cli.runs import EXIT_FAILED, cmd_resume, cmd_status, cmd_upload
from audiencesync.domain.modes import MODES
from audiencesync.errors import AudienceSyncError


class HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default after its help, unless it has none or the help says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        nothing = action.default is None or action.default is False  # 0 is a default
        if nothing or action.default == argparse.SUPPRESS or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """Every command's parser (argparse makes subparsers of the parser's own class)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def add_run_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upload", help="send an audience (file or Snowflake) to Meta")
    p.add_argument("source", nargs="?", help="a .csv, .csv.gz or .parquet file")
    p.add_argument("--audience-id", required=True, help="the Meta custom audience's id")
    p.add_argument(
        "--column",
        help="column holding the IDs: its name, or its number (1 = first) with --no-header "
        "(default: the first)",
    )
    p.add_argument(
        "--delimiter",
        help="CSV delimiter, one character or 'tab' (default: sniffed from the first line: "
        "comma, semicolon, tab or pipe)",
    )
    p.add_argument(
        "--no-header", action="store_true", help="the CSV has no header row: its first line is data"
    )
    p.add_argument(
        "--max-rejected-pct",
        type=float,
        metavar="P",
        help="read the source once first and fail, sending nothing, when more than P%% of its "
        "values would be rejected (the source is read twice)",
    )
    p.add_argument("--query", help="Snowflake query whose rows are the IDs")
    p.add_argument("--table", help="Snowflake table holding the IDs")
    p.add_argument("--hash", action="store_true", help="send SHA-256 of each normalised ID")
    p.add_argument(
        "--mode",
        choices=MODES,
        default="add",
        help="add the IDs, remove them, replace the audience with them, or mirror: send only "
        "the additions and removals since the last completed mirror run",
    )
    p.add_argument(
        "--resync",
        action="store_true",
        help="with --mode mirror: replace the audience with the whole source and start the "
        "snapshot again from it (when the audience was changed outside audiencesync)",
    )
    p.add_argument("--wait", action="store_true", help="show progress and wait for the report")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("status", help="progress or report of a run")
    p.add_argument("run_id", help="the id `upload` printed")
    p.add_argument("--json", action="store_true", help="print it as one JSON line")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("resume", help="finish an interrupted run without resending what is done")
    p.add_argument("run_id", help="the id `upload` printed")
    p.add_argument("--wait", action="store_true", help="show progress and wait for the report")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    p.set_defaults(func=cmd_resume)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="audiencesync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_commands(sub)
    operate.add_commands(sub)
    audiences.add_commands(sub)
    services.add_commands(sub)
    local.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    from audiencesync.settings import get_settings

    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
        logs.configure(json_lines=settings.log_json)
        return args.func(args, settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "AUDIENCESYNC_" + str(err["loc"][0]).upper() if err["loc"] else "a setting"
        print(f"audiencesync: error: {name}: {err['msg']}", file=sys.stderr)
        return EXIT_FAILED
    except AudienceSyncError as exc:
        print(f"audiencesync: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(
            "audiencesync: interrupted; enqueued chunks go on in the workers, and "
            "`audiencesync resume RUN_ID` reads the rest of the source",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
