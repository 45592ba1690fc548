"""The sandbox's one settings object (the CLI builds it from its flags)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 8765  # 0 = pick a free port
    token: str = "sandbox-token"  # the only valid access token
    app_secret: str | None = None  # when set, appsecret_proof (+appsecret_time) is required
    latency_ms: float = 0.0  # added to every Graph call
    jitter_ms: float = 0.0  # uniform extra 0..jitter_ms
    latency_per_inflight_ms: float = 0.0  # extra per other Graph call in flight: load slows it
    rate_per_s: float | None = None  # per-ad-account limit on upload calls; None = unlimited
    penalty_s: float = 2.0  # once over the rate, every call of that account is refused this long
    transient_rate: float = 0.0  # share of upload calls answered with a transient error
    fail_batch_seq: int | None = None  # a batch (not a last one) with this batch_seq: error 100
    seed: int | None = None

    def __post_init__(self) -> None:
        # Fail at start-up, not on the first request.
        if not 0.0 <= self.transient_rate <= 1.0:
            raise ValueError(f"transient_rate must be within 0..1, got {self.transient_rate}")
        if min(self.latency_ms, self.jitter_ms, self.latency_per_inflight_ms, self.penalty_s) < 0:
            raise ValueError(
                "latency_ms, jitter_ms, latency_per_inflight_ms and penalty_s must not be negative"
            )
        if self.rate_per_s is not None and self.rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be positive or None, got {self.rate_per_s}")
        if self.fail_batch_seq is not None and self.fail_batch_seq < 1:
            raise ValueError(f"fail_batch_seq must be >= 1 or None, got {self.fail_batch_seq}")
        if not self.token:
            raise ValueError("token must not be empty")
