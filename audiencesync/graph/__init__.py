"""Meta Graph API: the client and its payloads, error classification and the retry policy."""

from audiencesync.graph.classify import Usage, classify_error, parse_usage
from audiencesync.graph.client import GraphClient, UploadResult, build_payload
from audiencesync.graph.retry import RetryPolicy

__all__ = [
    "GraphClient",
    "RetryPolicy",
    "UploadResult",
    "Usage",
    "build_payload",
    "classify_error",
    "parse_usage",
]
