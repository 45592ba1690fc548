"""The one settings object: the only code that reads the environment (prefix AUDIENCESYNC_)."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_CHUNK_IDS = 10_000  # Meta refuses (vaguely) any call with more entries than this.


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
    staging_window_chunks: int = Field(32, ge=2)
    run_ttl_s: int = 30 * 24 * 3600  # how long run state and reports stay in Redis
    # The watchdog (a beat task every watchdog_interval_s) marks a running run `stalled` when no
    # chunk was staged or finished for stall_after_s: longer than a chunk's retry budget.
    stall_after_s: float = Field(3600.0, gt=0)
    watchdog_interval_s: float = Field(60.0, gt=0)

    # Retries of one chunk's upload (throttled and transient errors).
    retry_base_s: float = 1.0
    retry_cap_s: float = 300.0
    retry_max_attempts: int = 8
    retry_budget_s: float = 1800.0

    # Workers.
    critical_concurrency: int = Field(32, ge=1)  # threads: uploads wait on the network
    standard_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    worker_max_memory_per_child_kb: int = 300_000
    prepare_time_limit_s: int = 300
    # Redis redelivers a task not acknowledged after this: it must exceed the longest task and
    # every retry countdown (checked below), or a task runs twice while the first still runs.
    visibility_timeout_s: int = Field(7200, ge=2)
    flower_basic_auth: SecretStr | None = None  # "user:password"; Flower refuses to start without

    @model_validator(mode="after")
    def _tasks_fit_visibility(self) -> Settings:
        # The longest upload: a retry countdown, then one call that may take the whole timeout.
        if self.retry_cap_s + self.http_timeout_s >= self.visibility_timeout_s:
            raise ValueError(
                "AUDIENCESYNC_RETRY_CAP_S + AUDIENCESYNC_HTTP_TIMEOUT_S must stay below "
                "AUDIENCESYNC_VISIBILITY_TIMEOUT_S, or a retried upload would be delivered twice"
            )
        if self.prepare_time_limit_s >= self.visibility_timeout_s:
            raise ValueError(
                "AUDIENCESYNC_PREPARE_TIME_LIMIT_S must stay below "
                "AUDIENCESYNC_VISIBILITY_TIMEOUT_S, or a slow prepare would be delivered twice"
            )
        return self

    @property
    def graph_base_url(self) -> str:
        return f"{self.graph_url.rstrip('/')}/{self.graph_version}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
