"""A real upload with a known token, app secret and MAIDs; then every place an operator (or an
attacker) can read is searched for them: worker and beat logs (at DEBUG), the command's output,
every key and message left in Redis (results, chord state, the report), and every task event,
which is what Flower shows (task arguments included)."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
import zlib

import redis
from celery import Celery

from audiencesync.cli import devstack

_MAID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


class TaskEvents:
    """Captures every Celery event, as Flower does, from the moment it is listening."""

    def __init__(self, broker_url: str):
        self.events: list[dict] = []
        self._app = Celery("eavesdropper", broker=broker_url, set_as_current=False)
        self._receiver = None
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with self._app.connection() as conn:
            self._receiver = self._app.events.Receiver(conn, handlers={"*": self.events.append})
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> TaskEvents:
        self._thread.start()
        r = redis.Redis.from_url(self._app.conf.broker_url)
        deadline = time.monotonic() + 20
        while not self._bound(r):  # events published before the binding exists are lost
            assert time.monotonic() < deadline, "event receiver never bound its queue"
            time.sleep(0.05)
        return self

    def _bound(self, r: redis.Redis) -> bool:
        queue = self._receiver.queue.name if self._receiver else None
        return bool(queue) and any(
            queue.encode() in m for m in r.smembers("_kombu.binding.celeryev")
        )

    def __exit__(self, *exc: object) -> None:
        self._receiver.should_stop = True
        self._thread.join(timeout=10)


def finalize_succeeded(events: list[dict]) -> bool:
    finalize = {e["uuid"] for e in list(events) if e.get("name") == "audiencesync.finalize"}
    return any(e["type"] == "task-succeeded" and e["uuid"] in finalize for e in list(events))


def redis_dump(r: redis.Redis) -> str:
    """Every key and value, with kombu message bodies (base64) and zlib payloads unpacked."""
    out = []
    for key in r.scan_iter(count=1000):
        kind = r.type(key).decode()
        values = {
            "string": lambda k: [r.get(k)],
            "hash": lambda k: [b for kv in r.hgetall(k).items() for b in kv],
            "list": lambda k: r.lrange(k, 0, -1),
            "set": lambda k: list(r.smembers(k)),
            "zset": lambda k: r.zrange(k, 0, -1),
        }.get(kind, lambda k: [])(key)
        out.append(key.decode())
        out.extend(unpacked(v) for v in values if v is not None)
    return "\n".join(out)


def unpacked(blob: bytes) -> str:
    try:
        return zlib.decompress(blob).decode("utf-8", "replace")
    except zlib.error:
        pass
    text = blob.decode("utf-8", "replace")
    for body in re.findall(r'"body": ?"([A-Za-z0-9+/=]{8,})"', text):  # kombu messages
        text += "\n" + base64.b64decode(body).decode("utf-8", "replace")
    return text


def test_no_token_app_secret_or_maid_is_left_anywhere(private, tmp_path):
    maids = [str(uuid.uuid4()) for _ in range(3_000)]
    rows = maids[:2_000] + [m.upper() for m in maids[2_000:]] + ["junk", ""]
    audience = private.new_audience()
    with TaskEvents(private.redis_url) as events:
        run = private.upload(tmp_path / "a.csv", rows, audience)
        code, report, err = run.finish()
        # The last events are in flight when the report is written: up to finalize's end.
        devstack.wait_until(lambda: finalize_succeeded(events.events), 30, "finalize's events")
    assert code == 0, err
    assert private.members(audience) == set(maids)  # Meta checked the appsecret_proof

    logs = {p.name: p.read_text(errors="replace") for p in private.logs.glob("*.log")}
    assert run.run_id in "".join(logs.values())  # the search reads what the run wrote
    places = {
        **logs,
        "command output": json.dumps(report) + err,
        "redis": redis_dump(private.redis()),
        "task events": json.dumps(events.events, default=str),
    }
    for where, text in places.items():
        assert private.token not in text, f"token in {where}"
        assert private.app_secret not in text, f"app secret in {where}"
        leaked = {m.lower() for m in _MAID.findall(text)} & set(maids)
        assert not leaked, f"{len(leaked)} MAIDs in {where}"
    assert run.run_id in places["redis"] and run.run_id in places["task events"]
    # The search saw what Flower would show: every task, with its arguments.
    received = [e for e in events.events if e["type"] == "task-received"]
    assert {e["name"] for e in received} >= {"audiencesync.prepare", "audiencesync.upload"}
    assert all(run.run_id in e["args"] for e in received if "prepare" in e["name"])
