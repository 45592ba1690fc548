"""Meta Graph API: the client, error classification and the retry policy."""

from audiencesync.graph.classify import Usage, classify_error, parse_usage
from audiencesync.graph.client import GraphClient, UploadResult
from audiencesync.graph.retry import RetryPolicy

__all__ = [
    "GraphClient",
    "RetryPolicy",
    "UploadResult",
    "Usage",
    "classify_error",
    "parse_usage",
]
