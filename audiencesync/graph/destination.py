"""Which Graph API a run is for, and whether this process may send its calls (pure).

The command that starts a run checks the token and the audience with its own settings; the
workers send with theirs. A run records its destination (the Graph URL and API version, never
the token) so that a worker pointed elsewhere refuses its chunks instead of sending them to an
environment nobody checked.
"""

from __future__ import annotations

from audiencesync.settings import Settings

EMPTY_TOKEN = (
    "AUDIENCESYNC_ACCESS_TOKEN is empty: set it to a token with ads_management "
    "(the sandbox's is `sandbox-token`)"
)


def destination(settings: Settings) -> str:
    """What a run records: where its calls go. Never the token."""
    return settings.graph_base_url


def refusal(run_destination: str, settings: Settings) -> str | None:
    """Why this worker must not send a call of a run recorded for `run_destination` (a run
    recorded before destinations were, has ""); None when it may."""
    here = destination(settings)
    if run_destination and run_destination != here:
        return (
            f"workers send to {here}, the run was started for {run_destination}: start the "
            "workers with the same AUDIENCESYNC_GRAPH_URL/GRAPH_VERSION"
        )
    if not settings.access_token.get_secret_value():
        return "this worker's " + EMPTY_TOKEN
    return None
