"""Local stand-ins for a first try: `sandbox` (a fake Graph API) and `demo` (a whole stack)."""

from __future__ import annotations

import argparse

from audiencesync.sandbox.config import SandboxConfig
from audiencesync.settings import Settings

EXIT_OK = 0
SANDBOX_EPILOG = """\
Point audiencesync at it:
  export AUDIENCESYNC_GRAPH_URL=http://127.0.0.1:8765 AUDIENCESYNC_ACCESS_TOKEN=sandbox-token
  (the token is --token's value; any ad account id works: AUDIENCESYNC_AD_ACCOUNT_ID=1001)
Change knobs while it runs (JSON; names as the options', _ for -; --rate is rate_per_s):
  curl -X POST http://127.0.0.1:8765/_sandbox/config -H 'Content-Type: application/json' \\
       -d '{"latency_ms": 300, "transient_rate": 0.1}'
Look inside: GET /_sandbox/stats, /_sandbox/audiences/ID/members, /_sandbox/audiences/ID/calls.
More in docs/sandbox.md.
"""


def cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from audiencesync.sandbox import serve

    knobs = {name: value for name, value in vars(args).items() if name not in ("command", "func")}
    serve(SandboxConfig(**knobs))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from audiencesync.cli.demo import run_demo

    return run_demo(ids=args.ids, latency_ms=args.latency_ms)


def add_commands(sub: argparse._SubParsersAction) -> None:
    d = SandboxConfig()  # the sandbox's defaults, shown by --help
    p = sub.add_parser(
        "sandbox",
        help="run the local fake Graph API (token sandbox-token, port 8765)",
        description="A local Graph API that enforces Meta's rules, for trials and tests.",
        epilog=SANDBOX_EPILOG,
    )
    p.formatter_class = type(
        "SandboxHelp", (argparse.RawDescriptionHelpFormatter, p.formatter_class), {}
    )
    p.add_argument("--host", default=d.host, help="address to listen on")
    p.add_argument("--port", type=int, default=d.port, help="port to listen on (0: a free one)")
    p.add_argument("--token", default=d.token, help="the only access token it accepts")
    p.add_argument("--app-secret", help="require appsecret_proof made with this secret")
    p.add_argument("--latency-ms", type=float, default=d.latency_ms, help="added to every call")
    p.add_argument("--jitter-ms", type=float, default=d.jitter_ms, help="plus 0..this at random")
    p.add_argument(
        "--latency-per-inflight-ms",
        type=float,
        default=d.latency_per_inflight_ms,
        help="extra latency per other Graph call in flight (a destination slowed by load)",
    )
    p.add_argument(
        "--rate", dest="rate_per_s", type=float, help="one-second bucket: calls/s per ad account"
    )
    p.add_argument("--penalty-s", type=float, default=d.penalty_s, help="refusals once over --rate")
    p.add_argument(
        "--budget-calls", type=int, help="rolling window: calls per account, refused counted"
    )
    p.add_argument(
        "--budget-window-s", type=float, default=d.budget_window_s, help="--budget-calls' window"
    )
    p.add_argument("--score-max", type=float, help="score model: points per account")
    p.add_argument(
        "--score-decay-s", type=float, default=d.score_decay_s, help="a full score decays in this"
    )
    p.add_argument(
        "--write-points", type=float, default=d.write_points, help="score points of one upload"
    )
    p.add_argument(
        "--read-points", type=float, default=d.read_points, help="score points of one read"
    )
    p.add_argument("--block-s", type=float, default=d.block_s, help="block once over the score")
    p.add_argument(
        "--usage-header-after-calls",
        type=int,
        default=d.usage_header_after_calls,
        help="an account's first N calls carry no usage header",
    )
    p.add_argument(
        "--replace-window-s",
        type=float,
        default=d.replace_window_s,
        help="a replace session never closed ends this long after its first batch",
    )
    p.add_argument(
        "--transient-rate",
        type=float,
        default=d.transient_rate,
        help="share of upload calls answered with a transient error (0..1)",
    )
    p.add_argument(
        "--fail-batch-seq",
        type=int,
        help="refuse every batch with this batch_seq (not a last one) with error 100 (permanent)",
    )
    p.add_argument("--seed", type=int, help="seed of its random choices (default: random)")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("demo", help="1M generated IDs through a private local stack")
    p.add_argument("--ids", type=int, default=1_000_000, help="how many MAIDs to generate")
    p.add_argument("--latency-ms", type=float, default=50.0, help="the sandbox's latency")
    p.set_defaults(func=cmd_demo)
