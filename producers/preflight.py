"""The one cheap call before a run: Meta's answer about the audience (a module of its own, light
to import, so the upload command asks while the producer's modules load)."""

from __future__ import annotations

from collections.abc import Callable

from audiencesync.errors import ConfigError, PermanentGraphError, RetryableGraphError, TokenError
from audiencesync.graph import GraphClient
from audiencesync.settings import Settings


def read_audience(settings: Settings, audience_id: str, warn: Callable[[str], None]) -> dict | None:
    """One cheap call before reading the source: a bad token or audience costs one call, not a
    run, and the answer's size guards a replace (and a mirror run). An unreachable destination
    is `warn`ed of and left to the uploads' retries (None)."""
    client = GraphClient(settings)
    try:
        return client.get_audience(audience_id)
    except TokenError as exc:
        raise ConfigError(
            f"the access token was rejected ({exc}): set a valid AUDIENCESYNC_ACCESS_TOKEN"
        ) from None
    except PermanentGraphError as exc:
        raise ConfigError(
            f"audience {audience_id} cannot be used ({exc}): check the audience id "
            "(--audience-id, or audience_id in the audiences file) and that the token's user may "
            "manage it"
        ) from None
    except RetryableGraphError as exc:
        warn(f"{exc}; starting anyway, uploads will retry")
        return None
    finally:
        client.close()
