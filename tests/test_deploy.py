"""The deployable parts that cannot run here (no Docker engine, no otelcol binary, no Grafana): prove
their inputs. docker-compose.yml against the compose specification and the project's rules (pinned
images, localhost ports, healthchecks, restart policies, named volumes, mounts of files that exist),
both Prometheus configs with promtool, the OpenTelemetry Collector's pipelines, Grafana's provisioning
against its mounts, and the healthcheck commands run for real where they can."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from spendscope import names
from spendscope._version import __version__
from spendscope.collector import Collector, CollectorConfig
from spendscope.store import Store
from tests.monitoring import binary, run_tool

ROOT = Path(__file__).resolve().parents[1]
# scripts/install-test-tools installs check-jsonschema here, in a virtual environment of its own.
CHECK_JSONSCHEMA = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "spendscope/check-jsonschema/bin/check-jsonschema"
)
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")
LOCALHOST = "127.0.0.1"
PULLED_IMAGE = re.compile(r"^[\w./-]+:v?\d+(\.\d+)+$")
ONE_SHOT = {"migrate"}
# Long-running services without a healthcheck, and why.
NO_HEALTHCHECK = {
    "otelcol": "the image holds the collector binary alone: no shell or HTTP client to run a check",
    "demo": "a client: it listens nowhere",
}


def load(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """Compose's variable interpolation: `${VAR:-default}`, `${VAR}`, `$$` for a literal `$`."""

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(3)
        return (env or {}).get(name) or match.group(2) or ""

    return _VARIABLE.sub(value, text)


def variables(text: str) -> set[str]:
    return {m.group(1) or m.group(3) for m in _VARIABLE.finditer(text) if m.group(0) != "$$"}


COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(interpolate(COMPOSE_TEXT))  # as compose reads it with no .env
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
LONG_RUNNING = sorted(set(SERVICES) - ONE_SHOT)


def mounts(service: str) -> list[tuple[str, str]]:
    """(source, target) of a service's volumes: `./path` for the repository's files, else a volume."""
    return [(v.split(":")[0], v.split(":")[1]) for v in SERVICES[service].get("volumes", [])]


def strings(value: Any) -> list[str]:
    """Every string in a parsed YAML value."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def healthcheck_command(service: str) -> list[str]:
    test = SERVICES[service]["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), (service, test)
    return list(test)


# --- the compose file --------------------------------------------------------------------------------
def test_compose_file_validates_against_the_compose_spec() -> None:
    if not CHECK_JSONSCHEMA.exists():
        pytest.fail(f"{CHECK_JSONSCHEMA} is missing: run scripts/install-test-tools", pytrace=False)
    done = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_whole_stack_is_there() -> None:
    assert set(SERVICES) == {
        "clickhouse", "migrate", "collector", "otelcol", "budgets", "reconciler",
        "prometheus", "alertmanager", "grafana", "demo",
    }  # fmt: skip
    assert [name for name, s in SERVICES.items() if s.get("profiles")] == ["demo"]
    assert SERVICES["demo"]["profiles"] == ["demo"]


def test_every_image_is_pinned_and_ours_is_built_once() -> None:
    for name, service in SERVICES.items():
        if "build" in service:
            # one image for all of SpendScope's services, tagged with the package's version
            assert service["build"] == "." and service["image"] == f"spendscope:{__version__}", name
        else:
            assert PULLED_IMAGE.match(service["image"]), f"{name}: pin {service['image']} to a version"
    assert re.search(r"^FROM python:\d+\.\d+", (ROOT / "Dockerfile").read_text(), re.M)


def test_ports_are_published_on_localhost_only_unless_configured() -> None:
    published = []
    for name, service in SERVICES.items():
        assert "network_mode" not in service, name
        for port in service.get("ports", []):
            host, host_port, _container_port = port.split(":")
            assert host == LOCALHOST, f"{name} publishes {port} beyond localhost"
            published.append(int(host_port))
    assert len(published) == len(set(published)), "two services publish the same host port"
    assert sorted(published) == [3000, 4317, 4318, 4328, 8123, 9090, 9093]
    # configured: SPENDSCOPE_BIND_ADDRESS moves every published port, and nothing else
    moved = yaml.safe_load(interpolate(COMPOSE_TEXT, {"SPENDSCOPE_BIND_ADDRESS": "0.0.0.0"}))
    hosts = {p.split(":")[0] for s in moved["services"].values() for p in s.get("ports", [])}
    assert hosts == {"0.0.0.0"}


def test_long_running_services_have_healthchecks_and_restart() -> None:
    for name in LONG_RUNNING:
        service = SERVICES[name]
        assert service["restart"] == "unless-stopped", name
        if name in NO_HEALTHCHECK:
            assert "healthcheck" not in service, f"{name} has a healthcheck now: drop the exemption"
        else:
            healthcheck_command(name)
    for name in ONE_SHOT:
        assert SERVICES[name]["restart"] == "no"
    # everything that touches the schema waits for the one-shot migration, which waits for ClickHouse
    assert SERVICES["migrate"]["depends_on"] == {"clickhouse": {"condition": "service_healthy"}}
    for name in ("collector", "otelcol", "budgets", "reconciler"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["demo"]["depends_on"]["collector"]["condition"] == "service_healthy"


def test_data_lives_in_named_volumes() -> None:
    declared = set(COMPOSE["volumes"])
    used: dict[str, str] = {}
    for name in SERVICES:
        for source, target in mounts(name):
            if not source.startswith("./"):
                assert source in declared, f"{name}: {source} is neither ./file nor a named volume"
                used[f"{name}:{target}"] = source
    assert used == {
        "clickhouse:/var/lib/clickhouse": "clickhouse-data",
        "collector:/var/lib/spendscope": "spool",
        "prometheus:/prometheus": "prometheus-data",
        "alertmanager:/alertmanager": "alertmanager-data",
        "grafana:/var/lib/grafana": "grafana-data",
    }
    assert set(used.values()) == declared
    # the collector's spool is inside its volume, and the image lets its user write there
    assert "/var/lib/spendscope/spool" in SERVICES["collector"]["command"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "chown nobody:nogroup /var/lib/spendscope" in dockerfile and "USER nobody" in dockerfile
    # Prometheus keeps the 30 days the rolling cost rules add up, and more
    retention = next(a for a in SERVICES["prometheus"]["command"] if "retention.time" in a)
    assert int(re.fullmatch(r"--storage\.tsdb\.retention\.time=(\d+)d", retention).group(1)) > 31  # type: ignore[union-attr]


def test_mounts_are_repository_files_the_commands_read() -> None:
    for name in SERVICES:
        for source, target in mounts(name):
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
                assert target.startswith("/"), (name, target)
    read = {
        "otelcol": ("--config=/etc/otelcol-contrib/config.yaml", "collector/otelcol-contrib.yaml"),
        "prometheus": ("--config.file=/etc/prometheus/prometheus.yml", "prometheus/prometheus.compose.yml"),
        "alertmanager": ("--config.file=/etc/alertmanager/alertmanager.yml", "alertmanager/alertmanager.yml"),
        "budgets": ("/etc/spendscope/budgets.yaml", "prometheus/budgets.yaml"),
    }
    for name, (argument, repo_file) in read.items():
        assert argument in SERVICES[name]["command"], name
        path = argument.split("=")[-1]
        # the file is mounted itself, or its directory is
        source = next(
            s + path.removeprefix(t) for s, t in mounts(name) if path == t or path.startswith(t + "/")
        )
        assert (ROOT / source).resolve() == (ROOT / repo_file).resolve(), name
    rules = dict((t, s) for s, t in mounts("prometheus"))["/etc/prometheus/rules"]
    assert rules == "./prometheus/rules"


def test_grafana_mounts_match_its_provisioning() -> None:
    grafana = SERVICES["grafana"]
    targets = {t: s for s, t in mounts("grafana")}
    assert targets["/etc/grafana/provisioning"] == "./grafana/provisioning"
    assert targets["/var/lib/grafana/dashboards"] == "./grafana/dashboards"
    assert all(v.endswith(":ro") for v in grafana["volumes"] if v.startswith("./"))
    provisioning = ROOT / "grafana/provisioning"
    providers = [
        p
        for f in (provisioning / "dashboards").glob("*.y*ml")
        for p in yaml.safe_load(f.read_text())["providers"]
    ]
    assert [p["options"]["path"] for p in providers] == ["/var/lib/grafana/dashboards"]
    assert list((ROOT / "grafana/dashboards").glob("*.json")), "no dashboards to load"
    sources_text = "\n".join(f.read_text() for f in (provisioning / "datasources").glob("*.y*ml"))
    sources = {s["type"]: s for s in yaml.safe_load(sources_text)["datasources"]}
    assert sources["prometheus"]["url"] == "http://prometheus:9090"
    clickhouse = sources["grafana-clickhouse-datasource"]["jsonData"]
    assert (clickhouse["host"], clickhouse["port"], clickhouse["protocol"]) == ("clickhouse", 8123, "http")
    assert clickhouse["defaultDatabase"] == "spendscope"
    # every ${VAR} the data sources read (Grafana interpolates values, not comments) is in its environment
    read = {v for source in sources.values() for text in strings(source) for v in variables(text)}
    assert read and read <= set(grafana["environment"]), read
    assert (
        grafana["environment"]["CLICKHOUSE_USER"] == SERVICES["clickhouse"]["environment"]["CLICKHOUSE_USER"]
    )
    # the plugin, pinned, by the mechanism this Grafana has (preinstall_sync: Grafana 12.1 and later)
    plugin, version = grafana["environment"]["GF_PLUGINS_PREINSTALL_SYNC"].split("@")
    assert plugin == "grafana-clickhouse-datasource" and re.fullmatch(r"\d+\.\d+\.\d+", version)
    major, minor = map(int, re.search(r":(\d+)\.(\d+)", grafana["image"]).groups())  # type: ignore[union-attr]
    assert (major, minor) >= (12, 1)


def test_env_example_lists_every_variable_the_compose_file_reads() -> None:
    example = {
        line.split("=")[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert variables(COMPOSE_TEXT) == example - {"COMPOSE_PROFILES"}
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    # secrets reach the services from the environment, not from the command line
    for name, service in SERVICES.items():
        command = " ".join(service.get("command") or [])
        assert "spendscope:spendscope" not in command and "OPENAI_ADMIN_KEY=" not in command, name


# --- SpendScope's services in the image --------------------------------------------------------------
def test_spendscope_services_run_commands_that_exist() -> None:
    from typer.main import get_command

    from spendscope.cli import app

    cli = get_command(app)
    assert "'.[demo]'" in (ROOT / "Dockerfile").read_text()  # the demo service runs the demo extra
    for name, service in SERVICES.items():
        if service.get("image", "").startswith("spendscope:") and service.get("entrypoint") is None:
            command, *args = service["command"]
            options = {o for p in cli.commands[command].params for o in p.opts}  # type: ignore[attr-defined]
            for arg in args:
                assert not arg.startswith("--") or arg in options, (
                    f"{name}: spendscope {command} has no {arg}"
                )
    script = SERVICES["reconciler"]["command"][0]
    assert "exec spendscope reconcile --watch" in script and "--metrics-listen 0.0.0.0:9466" in script
    done = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_collector_healthcheck_passes_with_and_without_its_token(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    """The healthcheck's own Python, run against a real collector (its address swapped in)."""
    kind, python, flag, code = healthcheck_command("collector")
    assert (kind, python, flag) == ("CMD", "python", "-c") and "127.0.0.1:4318" in code
    compile(code, "healthcheck", "exec")
    for token in (None, "s3cret"):
        config = CollectorConfig.resolve(
            listen="127.0.0.1:0", store=store_dsn, spool=str(tmp_path / "spool"), token=token
        )
        with Collector(config, store=store) as collector:
            check = code.replace("http://127.0.0.1:4318", collector.url)
            env = {k: v for k, v in os.environ.items() if k != "SPENDSCOPE_COLLECTOR_TOKEN"}
            if token:
                refused = subprocess.run(
                    [sys.executable, "-c", check], env=env, capture_output=True, timeout=30
                )
                assert refused.returncode == 1 and b"401" in refused.stderr
                env["SPENDSCOPE_COLLECTOR_TOKEN"] = token
            done = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, timeout=30)
            assert done.returncode == 0, done.stderr


def test_other_healthchecks_use_what_their_images_have() -> None:
    for name in LONG_RUNNING:
        if name in NO_HEALTHCHECK or name == "collector":
            continue
        test = healthcheck_command(name)
        image = SERVICES[name]["image"]
        if image.startswith("spendscope:"):  # python:3.11-slim: python and sh
            code = test[-1].split('python -c "')[-1].rstrip('"') if test[0] == "CMD-SHELL" else test[-1]
            compile(code, name, "exec")
            port = re.search(r"127\.0\.0\.1:(\d+)/metrics", code).group(1)  # type: ignore[union-attr]
            assert f"0.0.0.0:{port}" in " ".join(SERVICES[name]["command"]), name
        else:  # busybox (Prometheus, Alertmanager, Grafana's Alpine) and ClickHouse's Ubuntu have wget
            assert test[:2] == ["CMD", "wget"] and "--spider" in test, name
    # the idle reconciler (no admin key) is healthy; with a key its /metrics must answer
    shell = healthcheck_command("reconciler")[1]
    for key, status in (("", 0), ("sk-admin-x", 1)):
        done = subprocess.run(["sh", "-c", shell.replace("python", shlex.quote(sys.executable))],
                              env={**os.environ, "OPENAI_ADMIN_KEY": key}, capture_output=True, timeout=30)  # fmt: skip
        assert done.returncode == status, done.stderr  # nothing listens on 9466 here


# --- Prometheus in compose and without it ------------------------------------------------------------
def scrape_jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_both_prometheus_configs_pass_promtool(tmp_path: Path) -> None:
    run_tool("promtool", "check", "config", str(ROOT / "prometheus/prometheus.yml"))
    # the compose one as it sits in the container: rules beside it, the token file compose mounts
    shutil.copy(ROOT / "prometheus/prometheus.compose.yml", tmp_path / "prometheus.yml")
    (tmp_path / "rules").symlink_to(ROOT / "prometheus/rules")
    (tmp_path / "collector-token").write_text("no-token")
    out = run_tool("promtool", "check", "config", str(tmp_path / "prometheus.yml")).stdout
    assert f"{len(list((ROOT / 'prometheus/rules').glob('*.yml')))} rule files found" in out


def test_compose_prometheus_scrapes_the_same_jobs_at_the_compose_services() -> None:
    local = load("prometheus/prometheus.yml")
    compose = load("prometheus/prometheus.compose.yml")
    assert {k: v for k, v in local.items() if k not in ("scrape_configs", "alerting")} == {
        k: v for k, v in compose.items() if k not in ("scrape_configs", "alerting")
    }  # same globals and rule files
    local_jobs, compose_jobs = scrape_jobs(local), scrape_jobs(compose)
    expected = {names.JOB_COLLECTOR, names.JOB_APPS, names.JOB_BUDGETS, names.JOB_RECONCILER}
    assert set(local_jobs) == set(compose_jobs) == expected
    rules_text = "\n".join(f.read_text() for f in (ROOT / "prometheus/rules").glob("*.yml"))
    assert set(re.findall(r'job="([^"]+)"', rules_text)) <= expected
    for job, config in compose_jobs.items():
        assert config.get("scrape_interval") == local_jobs[job].get("scrape_interval"), job
        if job == names.JOB_APPS:  # the OpenTelemetry Collector labels each app's series: keep them
            assert config["honor_labels"] is True
        else:
            assert config.get("honor_labels") == local_jobs[job].get("honor_labels"), job
    listens = {
        # job: (service, its port in the compose network)
        names.JOB_COLLECTOR: ("collector", "4318"),
        names.JOB_APPS: ("otelcol", load("collector/otelcol-contrib.yaml")["exporters"]["prometheus"]["endpoint"].split(":")[-1]),
        names.JOB_BUDGETS: ("budgets", "9465"),
        names.JOB_RECONCILER: ("reconciler", "9466"),
    }  # fmt: skip
    for job, (service, port) in listens.items():
        assert compose_jobs[job]["static_configs"] == [{"targets": [f"{service}:{port}"]}], job
        assert service in SERVICES
        if service != "otelcol":
            assert f"0.0.0.0:{port}" in " ".join(SERVICES[service]["command"]), service
    assert compose["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    # the collector's token: compose mounts it where the config reads it (relative to the config file)
    assert compose_jobs[names.JOB_COLLECTOR]["authorization"] == {"credentials_file": "collector-token"}
    assert SERVICES["prometheus"]["configs"] == [
        {"source": "collector-token", "target": "/etc/prometheus/collector-token"}
    ]
    assert COMPOSE["configs"]["collector-token"]["content"]  # compose cannot mount an empty config
    token_set = yaml.safe_load(interpolate(COMPOSE_TEXT, {"SPENDSCOPE_COLLECTOR_TOKEN": "tok"}))
    assert token_set["configs"]["collector-token"]["content"] == "tok"
    assert token_set["services"]["collector"]["environment"]["SPENDSCOPE_COLLECTOR_TOKEN"] == "tok"
    assert (
        token_set["services"]["demo"]["environment"]["OTEL_EXPORTER_OTLP_HEADERS"]
        == "Authorization=Bearer tok"
    )


# --- the OpenTelemetry Collector ---------------------------------------------------------------------
def test_otelcol_pipelines_are_complete_and_write_our_schema() -> None:
    config = load("collector/otelcol-contrib.yaml")
    for kind in ("receivers", "processors", "exporters"):
        for pipeline in config["service"]["pipelines"].values():
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{component} used but not defined"
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"], f"{extension} used but not defined"
    traces = config["service"]["pipelines"]["traces"]
    metrics = config["service"]["pipelines"]["metrics"]
    assert traces["processors"][0] == metrics["processors"][0] == "memory_limiter"  # first, per its docs
    assert "batch" in traces["processors"]
    clickhouse = config["exporters"]["clickhouse"]
    assert clickhouse["create_schema"] is False  # the schema belongs to `spendscope migrate`
    assert clickhouse["traces_table_name"] == "otel_traces"
    assert traces["exporters"] == ["clickhouse"] and metrics["exporters"] == ["prometheus"]
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    # every ${env:VAR} it reads is set on the compose service
    wanted = set(re.findall(r"\$\{env:(\w+)\}", (ROOT / "collector/otelcol-contrib.yaml").read_text()))
    assert wanted and wanted <= set(SERVICES["otelcol"]["environment"])
    assert SERVICES["otelcol"]["environment"]["CLICKHOUSE_ENDPOINT"].startswith("tcp://clickhouse:9000")


def test_dockerfile_copies_what_exists() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


# --- the README's "Run the full stack" and "Without Docker" ----------------------------------------
def readme_section(title: str) -> str:
    match = re.search(
        rf"^## {re.escape(title)}\n(.*?)(?=^## )", (ROOT / "README.md").read_text(), re.M | re.S
    )
    assert match, f"the README has no section {title!r}"
    return match.group(1)


def readme_commands(text: str) -> list[list[str]]:
    """The commands of a section's bash blocks: continuations joined, comments, `sudo` and leading
    VAR=value assignments dropped, `a && b` split."""
    found: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words:
                command = words[: words.index("&&")] if "&&" in words else words
                words = words[len(command) + 1 :]
                while command and (command[0] == "sudo" or re.fullmatch(r"\w+=\S*", command[0])):
                    command = command[1:]
                if command:
                    found.append(command)
    return found


def test_readme_full_stack_section_describes_the_compose_file() -> None:
    text = readme_section("Run the full stack")
    for name in SERVICES:
        assert f"| `{name}` |" in text, f"the README's table lacks {name}"
    for port in (p.split(":")[1] for s in SERVICES.values() for p in s.get("ports", [])):
        assert f"localhost:{port}" in text, port
    example = (ROOT / ".env.example").read_text()
    for variable in re.findall(r"^(\w+)=", example, re.M):
        assert f"`{variable}`" in text, variable
    for name, service in SERVICES.items():  # the versions it names are the pinned ones
        if "build" not in service:
            version = service["image"].split(":")[1].lstrip("v")
            assert ".".join(version.split(".")[:2]) in text, (name, version)
    assert SERVICES["grafana"]["environment"]["GF_PLUGINS_PREINSTALL_SYNC"].split("@")[1] in text
    assert f"`spendscope {' '.join(SERVICES['demo']['command'])}`" in text
    retention = next(a for a in SERVICES["prometheus"]["command"] if "retention" in a).split("=")[1]
    assert f"{retention.removesuffix('d')} days kept" in text
    assert readme_commands(text) == [["cp", ".env.example", ".env"], ["docker", "compose", "up", "-d"]]


def test_readme_without_docker_commands_exist() -> None:
    from typer.main import get_command

    from spendscope.cli import app

    cli = get_command(app)
    text = readme_section("Without Docker")
    commands = readme_commands(text)
    seen = {c[0] for c in commands}
    assert {"spendscope", "prometheus", "prometheus-alertmanager"} <= seen, seen
    helps: dict[str, str] = {}
    for command in commands:
        program, *args = command
        flags = [a.split("=")[0] for a in args if a.startswith("--")]
        if program == "spendscope":
            options = {o for p in cli.commands[args[0]].params for o in p.opts}  # type: ignore[attr-defined]
            assert set(flags) <= options, command
        elif program.startswith("prometheus"):
            if program not in helps:
                done = subprocess.run([binary(program), "--help"], capture_output=True, text=True, timeout=60)
                helps[program] = done.stdout + done.stderr
            assert all(f"{flag}=" in helps[program] for flag in flags), command
        for value in (a.split("=")[-1] for a in args):
            if re.fullmatch(r"[\w-]+/[\w./-]+\.ya?ml", value):
                assert (ROOT / value).exists(), value
    # the addresses it names are prometheus.yml's targets, and it keeps as many days as compose
    for job in load("prometheus/prometheus.yml")["scrape_configs"]:
        port = job["static_configs"][0]["targets"][0].split(":")[1]
        assert port in text, (job["job_name"], port)
    compose_retention = next(a for a in SERVICES["prometheus"]["command"] if "retention" in a)
    assert any(compose_retention in c for c in commands)
