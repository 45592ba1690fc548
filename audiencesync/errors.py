"""Every error audiencesync raises derives from AudienceSyncError.

AudienceSyncError                 str(e) is one line that says what to do
├── ConfigError                   bad settings or command-line use
├── SourceError                   unreadable file, missing column, failed query
├── RedisUnavailable              Redis cannot be reached
├── Deferred                      not a failure: the throttle gate says come back in wait_s
└── GraphError                    Meta answered with an error (or never answered)
    ├── RetryableGraphError       worth another try after a delay
    │   ├── ThrottledError        rate limited: back off (retry_after_s when Meta says)
    │   └── TransientError        5xx, codes 1/2/368, timeouts: the call may have been applied
    └── PermanentGraphError       retrying cannot help: fail the chunk with Meta's message
        └── TokenError            code 190/102: stop the whole run, a new token is needed
"""

from __future__ import annotations


class AudienceSyncError(Exception):
    """Base of every error audiencesync raises on purpose."""


class ConfigError(AudienceSyncError):
    pass


class SourceError(AudienceSyncError):
    pass


class RedisUnavailable(AudienceSyncError):
    pass


class Deferred(AudienceSyncError):
    """The ad account is cooling down or busy: re-enqueue the call, never sleep for long."""

    def __init__(self, wait_s: float, reason: str, budget_waited_s: float = 0.0) -> None:
        super().__init__(f"throttle gate: {reason}, come back in {wait_s:.2f}s")
        self.wait_s = wait_s
        self.reason = reason
        self.budget_waited_s = budget_waited_s  # already waited for Meta's budget, in-thread


class GraphError(AudienceSyncError):
    """An error answer (or no answer) from the Graph API, with Meta's own fields."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        http_status: int | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.http_status = http_status
        self.fbtrace_id = fbtrace_id

    def __str__(self) -> str:
        where = f"code {self.code}" if self.code is not None else f"HTTP {self.http_status}"
        if self.subcode:
            where += f"/{self.subcode}"
        return f"{self.message} ({where})" if self.code or self.http_status else self.message


class RetryableGraphError(GraphError):
    pass


class ThrottledError(RetryableGraphError):
    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


class TransientError(RetryableGraphError):
    pass


class PermanentGraphError(GraphError):
    pass


class TokenError(PermanentGraphError):
    pass
