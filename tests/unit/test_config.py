"""Settings checks and the Celery configuration derived from them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from audiencesync.settings import Settings
from workers.app import TASK_ROUTES, celery_config, restore_interval_s


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"visibility_timeout_s": 10, "retry_cap_s": 5, "http_timeout_s": 5}, "RETRY_CAP_S"),
        ({"visibility_timeout_s": 10, "retry_cap_s": 1, "http_timeout_s": 3}, "PREPARE_TIME"),
    ],
)
def test_every_task_and_countdown_must_fit_in_the_visibility_timeout(overrides, named):
    with pytest.raises(ValidationError, match=named):
        Settings(**overrides)


def test_a_short_visibility_timeout_is_fine_when_everything_fits():
    settings = Settings(
        visibility_timeout_s=10, retry_cap_s=1, http_timeout_s=3, prepare_time_limit_s=5
    )
    transport = celery_config(settings)["broker_transport_options"]
    assert transport["visibility_timeout"] == 10
    # Lost tasks come back within about 1.1 x the timeout, not kombu's default 100 s sweep.
    assert (transport["unacked_restore_interval"], transport["unacked_restore_throttle"]) == (1, 1)


@pytest.mark.parametrize(("visibility_s", "interval_s"), [(2, 1), (10, 1), (300, 30), (7200, 60)])
def test_restore_interval_is_a_tenth_of_the_timeout_within_bounds(visibility_s, interval_s):
    assert restore_interval_s(visibility_s) == interval_s


def test_watchdog_is_on_beat_routed_and_expires():
    config = celery_config(Settings(watchdog_interval_s=30))
    entry = config["beat_schedule"]["watchdog"]
    assert entry["task"] in TASK_ROUTES and entry["schedule"] == 30
    queues = {q.name for q in config["task_queues"]}
    assert entry["options"]["queue"] in queues and entry["options"]["expires"] == 30


def test_kombu_channels_reuse_one_redis_client_per_pool(redis_url):
    from kombu import Connection

    with Connection(redis_url) as conn:
        channel = conn.default_channel
        client = channel._create_client()
        assert channel._create_client() is client  # not a new redis.Redis per ack or publish
        assert client.ping()
        channel._pool = None  # what kombu does on a disconnect: the next client gets a new pool
        fresh = channel._create_client()
        assert fresh is not client and fresh.connection_pool is channel.pool and fresh.ping()
