"""docker/compose.yaml runs the same servers and versions as ``scripts/stack.sh``.

No docker engine runs here: Debian's ``docker-compose`` (installed by ``scripts/stack.sh up``) validates the file
with ``docker-compose config``, and the resolved file's images, build arguments, ports and topics are compared
with ``scripts/stack/versions.env``, the one place where the versions are pinned. The connector's JSON is the one
file that both register.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
VERSIONS = ROOT / "scripts" / "stack" / "versions.env"
CONNECTOR = ROOT / "docker" / "connect" / "points-outbox.json"
STACK_SH = ROOT / "scripts" / "stack.sh"


@cache
def versions() -> dict[str, str]:
    """versions.env's KEY=VALUE lines; a value written ${VAR:-default} counts as its default."""
    values: dict[str, str] = {}
    for line in VERSIONS.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        default = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
        values[key] = default.group(1) if default else value
    return values


@cache
def compose() -> dict[str, Any]:
    """The file as docker-compose resolves it (interpolated, normalised), after docker-compose validated it."""
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is missing: scripts/stack.sh up installs it (Debian's docker-compose package)"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    done = subprocess.run(
        [tool, "-f", str(COMPOSE), "config"], capture_output=True, text=True, timeout=60, env=environment
    )
    assert done.returncode == 0, f"docker-compose config refused {COMPOSE}:\n{done.stderr}"
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def service(name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    assert name in services, f"compose.yaml has no service {name}"
    return services[name]


def published(name: str) -> set[str]:
    return {str(port).removesuffix("/tcp") for port in service(name).get("ports", [])}


def test_compose_file_is_valid_and_has_every_server() -> None:
    assert set(compose()["services"]) >= {"mariadb", "redis", "kafka", "connect", "opensearch", "api"}


def test_images_are_the_versions_of_the_scripts() -> None:
    v = versions()
    assert service("mariadb")["image"] == f"mariadb:{v['MARIADB_VERSION']}"
    assert service("redis")["image"] == f"redis:{v['REDIS_VERSION']}"
    assert service("kafka")["image"] == f"apache/kafka:{v['KAFKA_VERSION']}"
    assert service("kafka-topics")["image"] == f"apache/kafka:{v['KAFKA_VERSION']}"
    assert service("opensearch")["image"] == f"opensearchproject/opensearch:{v['OPENSEARCH_VERSION']}"
    args = service("connect")["build"]["args"]
    assert args == {"KAFKA_VERSION": v["KAFKA_VERSION"], "DEBEZIUM_VERSION": v["DEBEZIUM_VERSION"]}


def test_build_defaults_and_maven_pom_are_the_same_versions() -> None:
    v = versions()
    dockerfile = (ROOT / "docker" / "connect" / "Dockerfile").read_text()
    assert f"ARG KAFKA_VERSION={v['KAFKA_VERSION']}\n" in dockerfile
    assert f"ARG DEBEZIUM_VERSION={v['DEBEZIUM_VERSION']}\n" in dockerfile
    assert f"maven-dependency-plugin:{v['MAVEN_DEPENDENCY_PLUGIN_VERSION']}:copy" in dockerfile
    pom = (ROOT / "scripts" / "stack" / "kafka-pom.xml").read_text()
    for tag, key in [
        ("kafka.version", "KAFKA_VERSION"),
        ("slf4j.version", "SLF4J_VERSION"),
        ("debezium.version", "DEBEZIUM_VERSION"),
        ("opensearch.version", "OPENSEARCH_VERSION"),
    ]:
        assert f"<{tag}>{v[key]}</{tag}>" in pom
    assert f"<version>{v['MAVEN_DEPENDENCY_PLUGIN_VERSION']}</version>" in pom


def test_servers_are_published_on_the_ports_of_the_scripts() -> None:
    v = versions()
    host = v["STACK_HOST"]
    for name, key in [
        ("mariadb", "MARIADB_PORT"),
        ("redis", "REDIS_PORT"),
        ("kafka", "KAFKA_PORT"),
        ("connect", "CONNECT_PORT"),
        ("opensearch", "OPENSEARCH_PORT"),
    ]:
        assert f"{host}:{v[key]}:{v[key]}" in published(name), (name, published(name))
    assert "127.0.0.1:8000:8000" in published("api")


def test_topics_are_made_as_the_scripts_make_them() -> None:
    v = versions()
    script = "\n".join(service("kafka-topics")["command"])
    assert f"--partitions {v['POINTS_EVENTS_PARTITIONS']} " in script
    assert f"{v['POINTS_EVENTS_TOPIC']}:{v['POINTS_EVENTS_RETENTION_MS']}" in script
    assert f"{v['POINTS_EVENTS_DLQ_TOPIC']}:{v['POINTS_EVENTS_DLQ_RETENTION_MS']}" in script


def test_one_connector_file_registered_by_both() -> None:
    v = versions()
    connector = json.loads(CONNECTOR.read_text())
    assert connector["connector.class"] == "io.debezium.connector.mariadb.MariaDbConnector"
    assert connector["transforms.outbox.type"] == "io.debezium.transforms.outbox.EventRouter"
    assert connector["transforms.outbox.route.topic.replacement"] == v["POINTS_EVENTS_TOPIC"]
    assert connector["table.include.list"] == "points.point_event_outbox"
    # Compose mounts the file and PUTs it; stack.sh PUTs the same file.
    register = service("connect-register")
    assert any(str(volume).startswith(f"{CONNECTOR}:") for volume in register["volumes"]), register["volumes"]
    assert f"connectors/{v['CONNECTOR_NAME']}/config" in register["command"][-1]
    assert "docker/connect/points-outbox.json" in STACK_SH.read_text()
    # Its ${env:NAME} placeholders are set in both workers' environments.
    names = set(re.findall(r"\$\{env:(\w+)\}", CONNECTOR.read_text()))
    assert names
    assert names <= set(service("connect")["environment"]), names
    for name in names:
        assert f"{name}=" in STACK_SH.read_text(), name


def test_api_image_serves_the_stack_profile() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "\nFROM python:3.11-slim\n" in dockerfile
    assert "uv sync --frozen --no-dev" in dockerfile
    assert "POINTS_PROFILE=stack" in dockerfile
    assert 'CMD ["python", "-m", "app", "serve"]' in dockerfile
    api = service("api")
    assert api["environment"]["POINTS_PROFILE"] == "stack"
    assert api["build"]["dockerfile"] == "docker/Dockerfile"


def test_debian_packages_are_the_pinned_versions() -> None:
    """The stack's MariaDB and Redis come from Debian: what is installed is what versions.env says."""
    v = versions()
    mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    assert Path(mariadbd).exists(), "mariadbd is missing: scripts/stack.sh up installs it"
    out = subprocess.run([mariadbd, "--version"], capture_output=True, text=True, check=True).stdout
    assert re.search(rf"Ver {re.escape(v['MARIADB_VERSION'])}\.\d+-MariaDB", out), out
    redis = shutil.which("redis-server")
    assert redis, "redis-server is missing: scripts/stack.sh up installs it"
    out = subprocess.run([redis, "--version"], capture_output=True, text=True, check=True).stdout
    assert re.search(rf"v={re.escape(v['REDIS_VERSION'])}\.\d+", out), out
