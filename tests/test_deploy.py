"""The deployable parts that cannot run here (no Docker engine, no otelcol binary): prove their inputs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def test_compose_file_validates_against_the_compose_spec() -> None:
    tool = shutil.which("check-jsonschema")
    assert tool, "check-jsonschema is a test dependency: pip install -e '.[test]'"
    done = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_pins_images_and_wires_collectors_to_clickhouse() -> None:
    compose = load("docker-compose.yml")
    services = compose["services"]
    for name, service in services.items():
        if "image" in service:
            assert re.search(r":\d+(\.\d+)+$", service["image"]), f"{name}: pin the image version"
    otelcol = services["otelcol"]
    assert otelcol["image"].startswith("otel/opentelemetry-collector-contrib:")
    mount = next(v for v in otelcol["volumes"] if "otelcol-contrib.yaml" in v)
    assert (ROOT / mount.split(":")[0]).exists()
    assert services["collector"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert otelcol["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    host_ports = [p.split(":")[0] for s in services.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"


def test_otelcol_pipelines_are_complete_and_write_our_schema() -> None:
    config = load("collector/otelcol-contrib.yaml")
    for kind in ("receivers", "processors", "exporters"):
        for pipeline in config["service"]["pipelines"].values():
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{component} used but not defined"
    traces = config["service"]["pipelines"]["traces"]
    metrics = config["service"]["pipelines"]["metrics"]
    assert traces["processors"][0] == metrics["processors"][0] == "memory_limiter"  # first, per its docs
    assert "batch" in traces["processors"]
    clickhouse = config["exporters"]["clickhouse"]
    assert clickhouse["create_schema"] is False  # the schema belongs to `spendscope migrate`
    assert clickhouse["traces_table_name"] == "otel_traces"
    assert traces["exporters"] == ["clickhouse"] and metrics["exporters"] == ["prometheus"]
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")


def test_dockerfile_copies_what_exists() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
