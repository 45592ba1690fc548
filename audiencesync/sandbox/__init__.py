"""A local fake of Meta's Graph API (Custom Audiences) over real HTTP, enforcing Meta's rules.

It is the executable form of docs/meta-api.md: tests, the demo and benchmarks talk to it
exactly as to graph.facebook.com. Modules: config (settings), faults (error answers), rules
(pure request checks), state (audiences, sessions, counters), budget (the rate-limit models:
one-second bucket, rolling window, score), limits (the models in force and the usage headers),
core (shared state, requests), app and uploads (Graph routes), inspection (/_sandbox/
endpoints), server (HTTP).
"""

from audiencesync.sandbox.config import SandboxConfig
from audiencesync.sandbox.server import serve, start_in_thread

__all__ = ["SandboxConfig", "serve", "start_in_thread"]
