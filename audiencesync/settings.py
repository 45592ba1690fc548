"""The one settings object: the only code that reads the environment (prefix AUDIENCESYNC_)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_CHUNK_IDS = 10_000  # Meta refuses (vaguely) any call with more entries than this.


def default_state_dir(environ: Mapping[str, str]) -> str:
    """$XDG_STATE_HOME/audiencesync, else ~/.local/state/audiencesync (the XDG default)."""
    base = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local/state")
    return os.path.join(base, "audiencesync")


def longest_backoff_s(base_s: float, cap_s: float, max_attempts: int, budget_s: float) -> float:
    """The longest a chunk can spend waiting between its calls (every backoff at its ceiling)."""
    total_s = sum(min(cap_s, base_s * 2**attempt) for attempt in range(max_attempts - 1))
    return min(total_s, budget_s)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIENCESYNC_", extra="ignore")

    # Redis: broker, result backend, staging and run state.
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Meta Graph API (point graph_url at the sandbox for tests and the demo).
    graph_url: str = "https://graph.facebook.com"
    graph_version: str = "v26.0"
    access_token: SecretStr = SecretStr("")
    app_secret: SecretStr | None = None
    ad_account_id: str = ""
    http_timeout_s: float = 60.0
    http_connect_timeout_s: float = 10.0

    # Snowflake (key pair: snowflake_private_key_file instead of the password).
    snowflake_account: str = ""
    snowflake_user: str = ""
    snowflake_password: SecretStr | None = None
    snowflake_private_key_file: str | None = None
    snowflake_private_key_passphrase: SecretStr | None = None
    snowflake_warehouse: str | None = None
    snowflake_database: str | None = None
    snowflake_schema: str | None = None
    snowflake_role: str | None = None
    # Only for proxies and local test servers; Snowflake itself needs none of these.
    snowflake_host: str | None = None
    snowflake_port: int | None = None
    snowflake_protocol: str | None = None
    snowflake_fetch_rows: int = 50_000

    # Pipeline.
    chunk_size: int = Field(MAX_CHUNK_IDS, ge=1, le=MAX_CHUNK_IDS)
    # Chunks staged in Redis and not yet finished, per run; bounds producer and Redis memory.
    # At least 4: Celery reads a lazy chord header up to 3 chunks ahead of what it has
    # published (measured with 5.7), and a producer waiting for room for those would wait forever.
    # 256: two rounds of the in-flight ceiling (128, what calls of 1-2 s need by Little's law),
    # so the next round is read and prepared while one is in flight; a staged chunk holds
    # ~0.8 MB of Redis (raw and prepared), 128 left a 2M-ID run at Meta's pace 0.07 slower.
    staging_window_chunks: int = Field(256, ge=4)
    run_ttl_s: int = 30 * 24 * 3600  # how long run state and reports stay in Redis
    # zlib level for staged payloads: 0 = off. Level 1 saves ~40 % of Redis memory within the
    # window but costs ~10 ms of CPU per chunk (measured): more than normalising it.
    staging_compress_level: int = Field(0, ge=0, le=9)
    # The watchdog (a beat task every watchdog_interval_s) marks a running run `stalled` when no
    # chunk was staged or finished for stall_after_s: longer than a chunk's retry budget.
    stall_after_s: float = Field(3600.0, gt=0)
    watchdog_interval_s: float = Field(60.0, gt=0)

    # Retries of one chunk's upload (throttled and transient errors).
    retry_base_s: float = 1.0
    retry_cap_s: float = 300.0
    # 10 calls: with backoff of at least half its ceiling, a chunk waits out >= 255 s of outage
    # (8 calls with full jitter gave up within a minute's outage about half the time).
    retry_max_attempts: int = 10
    retry_budget_s: float = 1800.0

    # Fleet-wide throttle per ad account (audiencesync/throttle/; docs/throttling.md).
    # The account's upload calls/s (a bucket without bursts). Meta's limits are deep budgets
    # its usage figures show (190,000 calls an hour, 3,000 writes at once), and the budget rule
    # keeps within them, so the rate is no guess at the limit: it only spaces calls out, and
    # sets the calls in flight the destination's pace needs (Little's law). 200/s: at 200 ms a
    # call, 100/s held a 2M-ID run to 0.74 of a lean uploader (64 in flight), 200/s 0.81-0.91.
    throttle_rate_per_s: float = Field(200.0, gt=0)
    throttle_adapt_interval_s: float = Field(1.0, gt=0)  # latency verdicts; a usage figure's age
    # Meta's usage figure the calls in flight may take the account to (it refuses at 100): the
    # rest covers a figure one call's share short (whole percent, rounded down).
    throttle_usage_target_pct: float = Field(95.0, gt=0, lt=100)
    throttle_cooldown_base_s: float = Field(2.0, gt=0)  # when Meta gives no estimate; doubles
    throttle_cooldown_max_s: float = Field(900.0, gt=0)
    # Concurrent calls per account, fleet-wide: rate x the destination's pace (its baseline
    # latency, a low percentile). Before any answer: inflight_start (0.25 s), then growing with
    # the oldest call's age; once a call went alongside another, none more until its answer
    # says whether load slows the destination. The ceiling: what 1-2 s calls need for a fleet's
    # ~100 calls/s (40M IDs a minute: ~70 calls/s).
    throttle_inflight_start: int = Field(2, ge=1)
    throttle_inflight_floor: int = Field(1, ge=1)
    throttle_inflight_ceiling: int = Field(128, ge=1)
    throttle_latency_factor: float = Field(3.0, ge=0)  # x baseline = soft throttling; 0 = off
    throttle_max_wait_s: float = Field(0.5, ge=0, le=1)  # longest wait in a worker thread
    throttle_state_ttl_s: int = Field(604_800, ge=60)  # an idle account's state is forgotten

    # Replace runs: Meta ends a replace session this long after its first batch, replacing the
    # audience with what arrived. A replace still running at window - margin % - one call closes
    # its session and sends the rest with /users adds (the margin scales with the window).
    replace_window_s: float = Field(5400.0, gt=0)
    replace_margin_pct: float = Field(15.0, ge=0, lt=100)

    # Workers.
    # Threads: uploads wait on the network, and calls of 1-2 s need ~100+ in flight to reach
    # the in-flight ceiling from one worker (measured: threads are idle, ~8 MB RSS more per 32).
    critical_concurrency: int = Field(128, ge=1)
    standard_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    worker_max_memory_per_child_kb: int = 300_000
    prepare_time_limit_s: int = 300  # soft: the chunk fails with the reason (hard: +10 %)
    # Redis redelivers a task not acknowledged after this: it must exceed the longest task and
    # every countdown hop (checked below), or a task runs twice while the first still runs. Only
    # a backstop: a dead worker's chunks are re-driven when their lease runs out.
    visibility_timeout_s: int = Field(600, ge=2)
    # A chunk's lease (audiencesync/recovery/): renewed every third of it while its task runs, so
    # a killed worker's chunks are re-driven within about lease_s + lease_s / 6 (a reaper round).
    lease_s: float = Field(30.0, ge=1)
    # Longer countdowns (retries, deferrals) are waited out in hops of at most this.
    countdown_hop_s: float = Field(60.0, ge=1)
    flower_basic_auth: SecretStr | None = None  # "user:password"; Flower refuses to start without

    # Operations: declared audiences, the scheduler, metrics, logs.
    audiences_file: str | None = None  # TOML of declared audiences (beat and producer workers)
    producer_concurrency: int = Field(4, ge=1)  # runs one `producer` worker streams at once
    # An audience's run lock lives this long unless refreshed (every third of it, while the
    # producer streams): a producer that died frees its audience within this time.
    audience_lock_ttl_s: int = Field(300, ge=3)
    # Mirror runs' snapshots (what each audience was last sent): on the producers' host, durable.
    # The user's state directory, never the working directory: the same audience mirrored from
    # two directories would diff against two snapshots.
    state_dir: str = Field(default_factory=lambda: default_state_dir(os.environ))
    metrics_port: int | None = None  # Prometheus exporter of a `critical` worker; off if unset
    log_json: bool = False  # one JSON object per log line (workers and CLI)

    @model_validator(mode="after")
    def _tasks_fit_visibility(self) -> Settings:
        # The longest a message is held: a countdown hop, then one call that may take the whole
        # timeout (connecting included).
        call_s = self.http_timeout_s + self.http_connect_timeout_s
        if self.countdown_hop_s + call_s >= self.visibility_timeout_s:
            raise ValueError(
                "AUDIENCESYNC_COUNTDOWN_HOP_S + AUDIENCESYNC_HTTP_TIMEOUT_S + _CONNECT_TIMEOUT_S "
                "must stay below AUDIENCESYNC_VISIBILITY_TIMEOUT_S, or a retried upload would be "
                "delivered twice"
            )
        if self.prepare_hard_limit_s >= self.visibility_timeout_s:
            raise ValueError(
                "AUDIENCESYNC_PREPARE_TIME_LIMIT_S + 10 % must stay below "
                "AUDIENCESYNC_VISIBILITY_TIMEOUT_S, or a slow prepare would be delivered twice"
            )
        if self.lease_s < 3 * self.throttle_max_wait_s or self.lease_s > self.visibility_timeout_s:
            raise ValueError(
                "AUDIENCESYNC_LEASE_S must lie between 3 x AUDIENCESYNC_THROTTLE_MAX_WAIT_S and "
                "AUDIENCESYNC_VISIBILITY_TIMEOUT_S"
            )
        return self

    @model_validator(mode="after")
    def _stall_after_retries(self) -> Settings:
        # A chunk still retrying is no stall: the watchdog must wait out its longest backoff.
        waits_s = longest_backoff_s(
            self.retry_base_s, self.retry_cap_s, self.retry_max_attempts, self.retry_budget_s
        )
        if self.stall_after_s <= waits_s:
            raise ValueError(
                f"AUDIENCESYNC_STALL_AFTER_S must exceed a chunk's longest backoff ({waits_s:.0f}s "
                "with the RETRY_* settings), or a run still retrying would be marked stalled"
            )
        return self

    @model_validator(mode="after")
    def _throttle_ranges(self) -> Settings:
        inflight = (
            self.throttle_inflight_floor,
            self.throttle_inflight_start,
            self.throttle_inflight_ceiling,
        )
        if list(inflight) != sorted(inflight):
            raise ValueError("AUDIENCESYNC_THROTTLE_INFLIGHT_* need floor <= start <= ceiling")
        return self

    @property
    def redis_connections(self) -> int:
        """A worker's Redis pools' size: room for every thread of its largest pool, plus its
        own threads (heartbeat, reaper). redis-py's default, 100, refuses the 101st at once."""
        return max(self.critical_concurrency, self.standard_concurrency, 64) + 16

    @property
    def prepare_hard_limit_s(self) -> int:
        """The backstop after the soft limit: the pool kills the process, no outcome recorded."""
        return self.prepare_time_limit_s + max(1, self.prepare_time_limit_s // 10)

    @property
    def graph_base_url(self) -> str:
        return f"{self.graph_url.rstrip('/')}/{self.graph_version}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
