"""The sandbox's one settings object (the CLI builds it from its flags; /_sandbox/config changes
it at run time). The defaults give Meta's headers and sessions and no rate limit at all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 8765  # 0 = pick a free port
    token: str = "sandbox-token"  # the only valid access token
    app_secret: str | None = None  # when set, appsecret_proof (+appsecret_time) is required
    latency_ms: float = 0.0  # added to every Graph call
    jitter_ms: float = 0.0  # uniform extra 0..jitter_ms (Meta's 1-2 s: 1000 + 0..1000)
    latency_per_inflight_ms: float = 0.0  # extra per other Graph call in flight: load slows it
    # The lab's one-second bucket: upload calls per second per ad account; None = none.
    rate_per_s: float | None = None
    penalty_s: float = 2.0  # once over the rate, every call of that account is refused this long
    # Meta's custom_audience budget: calls (uploads and reads) per rolling window per account,
    # refused ones counted; None = none.
    budget_calls: int | None = None
    budget_window_s: float = 3600.0
    # Meta's score model: points per account, decaying linearly by score_max per score_decay_s;
    # each write adds write_points, each read read_points; going over blocks the account for
    # block_s. None = none.
    score_max: float | None = None
    score_decay_s: float = 300.0
    write_points: float = 3.0
    read_points: float = 1.0
    block_s: float = 60.0
    usage_header_after_calls: int = 3  # an account's first N calls carry no usage header
    replace_window_s: float = 5400.0  # a replace session never closed ends this long after batch 1
    transient_rate: float = 0.0  # share of upload calls answered with a transient error
    fail_batch_seq: int | None = None  # a batch (not a last one) with this batch_seq: error 100
    seed: int | None = None

    def __post_init__(self) -> None:
        # Fail at start-up, not on the first request.
        if not 0.0 <= self.transient_rate <= 1.0:
            raise ValueError(f"transient_rate must be within 0..1, got {self.transient_rate}")
        never_negative = (
            "latency_ms", "jitter_ms", "latency_per_inflight_ms", "penalty_s", "block_s",
            "usage_header_after_calls", "read_points",
        )  # fmt: skip
        for name in never_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        always_positive = ("budget_window_s", "score_decay_s", "write_points", "replace_window_s")
        for name in always_positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("rate_per_s", "budget_calls", "score_max"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive or None, got {getattr(self, name)}")
        if self.score_max is not None and self.write_points > self.score_max:
            raise ValueError("write_points must not exceed score_max: no write could ever pass")
        if self.fail_batch_seq is not None and self.fail_batch_seq < 1:
            raise ValueError(f"fail_batch_seq must be >= 1 or None, got {self.fail_batch_seq}")
        if not self.token:
            raise ValueError("token must not be empty")
