"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine): check them instead."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from audiencesync.cli.main import build_parser
from audiencesync.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = [
    name for name, svc in SERVICES.items() if svc.get("image", "").startswith("audiencesync")
]


def test_the_design_cards_services_are_there():
    assert {"redis", "worker-standard", "worker-critical", "beat", "flower", "sandbox"} <= set(
        SERVICES
    )
    assert len(APP_SERVICES) == 6  # and worker-producer


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_command_is_a_real_audiencesync_command(name):
    args = build_parser().parse_args(SERVICES[name]["command"])
    assert callable(args.func)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_setting_passed_exists(name):
    fields = {f"AUDIENCESYNC_{f.upper()}" for f in Settings.model_fields}
    passed = {k for k in SERVICES[name]["environment"] if k.startswith("AUDIENCESYNC_")}
    assert passed and passed <= fields, passed - fields


def test_redis_is_durable_and_protected():
    command = SERVICES["redis"]["command"]
    assert "--appendonly yes" in command and "--requirepass" in command
    assert "--maxmemory-policy noeviction" in command
    url = SERVICES["worker-critical"]["environment"]["AUDIENCESYNC_REDIS_URL"]
    assert re.match(r"redis://:\$\{REDIS_PASSWORD[^}]*\}@redis:6379/\d+$", url)


def test_flower_needs_basic_auth_and_workers_use_both_queues():
    assert "AUDIENCESYNC_FLOWER_BASIC_AUTH" in SERVICES["flower"]["environment"]
    queues = {tuple(SERVICES[n]["command"]) for n in ("worker-standard", "worker-critical")}
    assert queues == {("worker", "--queues", "standard"), ("worker", "--queues", "critical")}
    # Scalable: no fixed container name or host port on workers.
    for name in ("worker-standard", "worker-critical"):
        assert "container_name" not in SERVICES[name] and "ports" not in SERVICES[name]


def test_dockerfile_copies_every_package_and_installs_the_entry_point():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("audiencesync", "producers", "tasks", "workers"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert 'ENTRYPOINT ["audiencesync"]' in dockerfile
    assert "pip install" in dockerfile


def test_beat_and_the_producer_worker_read_the_same_declared_audiences():
    assert SERVICES["worker-producer"]["command"] == ["worker", "--queues", "producer"]
    files = {
        SERVICES[n]["environment"]["AUDIENCESYNC_AUDIENCES_FILE"]
        for n in ("beat", "worker-producer")
    }
    assert len(files) == 1
    mounted = files.pop()
    for name in ("beat", "worker-producer"):
        assert any(v.endswith(f":{mounted}:ro") for v in SERVICES[name]["volumes"])
    assert "deploy" not in SERVICES["beat"]  # exactly one beat: never replicated
    assert SERVICES["worker-critical"]["environment"]["AUDIENCESYNC_METRICS_PORT"]


def test_mirror_snapshots_live_on_a_named_volume_of_the_producer():
    state_dir = SERVICES["worker-producer"]["environment"]["AUDIENCESYNC_STATE_DIR"]
    mounts = [v.split(":") for v in SERVICES["worker-producer"]["volumes"]]
    assert [m[0] for m in mounts if m[1] == state_dir] == ["mirror-state"]
    assert "mirror-state" in COMPOSE["volumes"]
