"""The rate-limit models in force (budget.py) per ad account, and Meta's usage headers.

Several models may be in force at once (Meta has a per-account budget and a score); a call is
refused by the first that refuses it, then every model records the outcome. The usage header
reports the highest figure of the models in force, in whole percent, and appears only once the
account has made more than `usage_header_after_calls` Graph calls (Meta sends it "once enough
calls have been made").
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from audiencesync.sandbox import faults
from audiencesync.sandbox.budget import Bucket, Model, RollingWindow, Score, regain_minutes
from audiencesync.sandbox.config import SandboxConfig
from audiencesync.sandbox.faults import GraphFault


@dataclass(frozen=True)
class Admission:
    admitted: bool
    in_penalty: bool = False  # refused because an earlier refusal's block is still running
    by: str | None = None  # the model that refused: bucket, window or score

    def fault(self) -> GraphFault:
        return faults.score_throttled() if self.by == "score" else faults.throttled()


def _models(config: SandboxConfig) -> dict[str, tuple[tuple[Any, ...], Model]]:
    """Each model in force with the parameters it was built from (kept while they stay)."""
    models: dict[str, tuple[tuple[Any, ...], Model]] = {}
    if config.rate_per_s is not None:
        bucket = (config.rate_per_s, config.penalty_s)
        models["bucket"] = (bucket, Bucket(*bucket))
    if config.budget_calls is not None:
        window = (config.budget_calls, config.budget_window_s)
        models["window"] = (window, RollingWindow(*window))
    if config.score_max is not None:
        score = (
            config.score_max, config.score_decay_s, config.write_points, config.block_s,
            config.read_points,
        )  # fmt: skip
        models["score"] = (score, Score(*score))
    return models


class Limits:
    def __init__(self, config: SandboxConfig) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, tuple[tuple[Any, ...], Model]] = {}
        self._calls: Counter[str] = Counter()
        self.configure(config)

    def configure(self, config: SandboxConfig) -> None:
        """A model whose parameters did not change keeps its state; a changed one starts fresh."""
        with self._lock:
            fresh = _models(config)
            for name, (key, _) in list(fresh.items()):
                if name in self._models and self._models[name][0] == key:
                    fresh[name] = self._models[name]
            self._models = fresh
            self.header_after_calls = config.usage_header_after_calls

    def reset(self) -> None:
        with self._lock:
            self._models = {name: (key, type(m)(*key)) for name, (key, m) in self._models.items()}
            self._calls = Counter()

    def admit(self, account: str, now_s: float, *, read: bool = False) -> Admission:
        """An upload (or a read of an audience: `read`) of the account, admitted or refused."""
        with self._lock:
            models = {name: model for name, (_, model) in self._models.items()}
            refused_by = next(
                (n for n, m in models.items() if not m.check(account, now_s, read=read)), None
            )
            in_penalty = refused_by is not None and models[refused_by].blocked(account, now_s)
            for name, model in models.items():
                admitted, here = refused_by is None, name == refused_by
                model.record(account, now_s, admitted=admitted, refused_here=here, read=read)
        return Admission(refused_by is None, in_penalty, refused_by)

    def count_call(self, account: str) -> None:
        """Every Graph call naming the account counts towards the header's first appearance."""
        with self._lock:
            self._calls[account] += 1

    def _usage(self, account: str, now_s: float) -> tuple[int, float]:
        models = [model for _, model in self._models.values()]
        pct = max((m.usage_pct(account, now_s) for m in models), default=0)
        return pct, max((m.regain_s(account, now_s) for m in models), default=0.0)

    def usage_by_account(self, now_s: float) -> dict[str, int]:
        """Each account's figure as its header would give it, for inspection: no call spent."""
        with self._lock:
            return {account: self._usage(account, now_s)[0] for account in self._calls}

    def business_usage(self, account: str | None, now_s: float) -> dict[str, Any] | None:
        """The X-Business-Use-Case-Usage value: {} when the call names no known account, None
        (no header) while the account has made too few calls."""
        if account is None:
            return {}
        with self._lock:
            if self._calls[account] <= self.header_after_calls:
                return None
            pct, regain_s = self._usage(account, now_s)
        entry = {
            "type": "custom_audience",
            "call_count": pct,
            "total_cputime": pct,
            "total_time": pct,
            "estimated_time_to_regain_access": regain_minutes(regain_s),
            "ads_api_access_tier": "standard_access",
        }
        return {account: [entry]}

    def app_usage(self, now_s: float) -> dict[str, int]:
        """The X-App-Usage value: the busiest account's share (the sandbox has one app)."""
        with self._lock:
            pct = max((self._usage(a, now_s)[0] for a in list(self._calls)), default=0)
        pct = min(pct, 100)
        return {"call_count": pct, "total_cputime": pct, "total_time": pct}
