"""`audiences`: check a declared-audiences file; create a Meta audience; show one's size."""

from __future__ import annotations

import argparse
import os
import sys

import orjson

from audiencesync.errors import ConfigError, PermanentGraphError, TokenError
from audiencesync.settings import Settings

EXIT_OK, EXIT_FAILED = 0, 1


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from audiencesync.domain.audiences import missing_files, parse_audiences

    try:
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from None
    audiences, errors = parse_audiences(text, args.file)
    errors += missing_files(audiences, text, args.file, os.path.exists)
    for error in errors:
        print(f"audiencesync: error: {error}", file=sys.stderr)
    if errors:
        return EXIT_FAILED
    for a in audiences:
        when = f"every {a.every_s}s" if a.every_s else f"cron {a.cron!r}"
        print(f"{a.name}: audience {a.audience_id} ({a.mode}), {when}")
    return EXIT_OK


def _graph(settings: Settings):
    from audiencesync.cli.runs import require_token
    from audiencesync.graph import GraphClient

    require_token(settings)
    return GraphClient(settings)


def _token_rejected(exc: TokenError) -> ConfigError:
    return ConfigError(
        f"the access token was rejected ({exc}): set a valid AUDIENCESYNC_ACCESS_TOKEN"
    )


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    account = (args.ad_account_id or settings.ad_account_id).removeprefix("act_")
    if not account:
        raise ConfigError("pass --ad-account-id or set AUDIENCESYNC_AD_ACCOUNT_ID (without act_)")
    client = _graph(settings)
    try:
        audience_id = client.create_audience(account, args.name)
    except TokenError as exc:
        raise _token_rejected(exc) from None
    except PermanentGraphError as exc:
        raise ConfigError(
            f"ad account {account} refused the new audience ({exc}): check the ad account id "
            "and that the token's user may manage its audiences"
        ) from None
    finally:
        client.close()
    print(audience_id)
    print(
        f"created audience {audience_id} ({args.name!r}) on act_{account}; send IDs with: "
        f"audiencesync upload FILE --audience-id {audience_id} --wait",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    client = _graph(settings)
    try:
        found = client.get_audience(args.audience_id)
    except TokenError as exc:
        raise _token_rejected(exc) from None
    except PermanentGraphError as exc:
        raise ConfigError(
            f"audience {args.audience_id} cannot be read ({exc}): check the id and that the "
            "token's user may manage it"
        ) from None
    finally:
        client.close()
    if args.json:
        print(orjson.dumps(found).decode())
        return EXIT_OK
    low = found.get("approximate_count_lower_bound")
    high = found.get("approximate_count_upper_bound")
    size = "unknown" if low is None else f"{low:,}" if low == high else f"{low:,} to {high:,}"
    state = found.get("operation_status") or {}
    print(f"audience {args.audience_id}: about {size} people (matched, approximate)")
    print(f"  status {state.get('code', '?')}: {state.get('description', 'unknown')}")
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audiences", help="Meta audiences and the declared-audiences file")
    audiences = p.add_subparsers(dest="audiences_command", required=True, metavar="COMMAND")

    p = audiences.add_parser(
        "create", help="create a customer-file audience for MAIDs; prints its id"
    )
    p.add_argument("--name", required=True, help="the audience's name in Meta")
    p.add_argument(
        "--ad-account-id",
        help="the ad account, with or without act_ (default: AUDIENCESYNC_AD_ACCOUNT_ID)",
    )
    p.set_defaults(func=cmd_create)

    p = audiences.add_parser("show", help="an audience's approximate size and status")
    p.add_argument("audience_id", help="the audience's id")
    p.add_argument("--json", action="store_true", help="print Meta's answer as one JSON line")
    p.set_defaults(func=cmd_show)

    p = audiences.add_parser("validate", help="check an audiences file; errors name their line")
    p.add_argument("file", help="the TOML file of declared audiences")
    p.set_defaults(func=cmd_validate)
