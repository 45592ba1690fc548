"""Settings checks and the Celery configuration derived from them."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from audiencesync.settings import Settings
from workers.app import TASK_ROUTES, celery_config, restore_interval_s


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"visibility_timeout_s": 10, "countdown_hop_s": 5, "http_timeout_s": 5}, "HOP_S"),
        (
            {
                "visibility_timeout_s": 10,
                "countdown_hop_s": 1,
                "http_connect_timeout_s": 1,
                "http_timeout_s": 3,
            },
            "PREPARE_TIME",
        ),
        ({"visibility_timeout_s": 200, "prepare_time_limit_s": 5, "lease_s": 220}, "LEASE_S"),
        ({"stall_after_s": 500}, "STALL_AFTER_S"),  # 10 calls, backoff up to 511 s
        ({"retry_cap_s": 60, "retry_max_attempts": 3, "stall_after_s": 2}, "STALL_AFTER_S"),
    ],
)
def test_every_task_and_countdown_must_fit_in_the_visibility_timeout(overrides, named):
    with pytest.raises(ValidationError, match=named):
        Settings(**overrides)


def test_a_short_visibility_timeout_is_fine_when_everything_fits():
    settings = Settings(
        visibility_timeout_s=40,
        countdown_hop_s=5,
        http_timeout_s=3,
        http_connect_timeout_s=1,
        prepare_time_limit_s=5,
        lease_s=10,
    )
    transport = celery_config(settings)["broker_transport_options"]
    assert transport["visibility_timeout"] == 40
    # Lost tasks come back within about 1.1 x the timeout, not kombu's default 100 s sweep.
    assert (transport["unacked_restore_interval"], transport["unacked_restore_throttle"]) == (4, 1)


def test_the_defaults_hold_together_and_outlast_a_minute_of_outage():
    from audiencesync.settings import longest_backoff_s

    settings = Settings()
    assert settings.visibility_timeout_s <= 600  # minutes, not hours: leases do the recovery
    # Each backoff is at least half its ceiling: a chunk's retries span at least this long.
    least_s = (
        longest_backoff_s(
            settings.retry_base_s, settings.retry_cap_s, settings.retry_max_attempts, 1e9
        )
        / 2
    )
    assert least_s > 60 * 2
    assert settings.stall_after_s > 2 * least_s


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


def test_the_mirror_state_directory_does_not_depend_on_where_the_command_runs(tmp_path):
    from audiencesync.settings import default_state_dir

    assert default_state_dir({"XDG_STATE_HOME": "/var/state"}) == "/var/state/audiencesync"
    home = default_state_dir({})
    assert os.path.isabs(home) and home.endswith(".local/state/audiencesync")
    here = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert Settings().state_dir == Settings(_env_file=None).state_dir
        assert os.path.isabs(Settings().state_dir)
    finally:
        os.chdir(here)
