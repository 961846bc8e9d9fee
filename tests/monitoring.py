"""Real Prometheus and Alertmanager (Debian's binaries) for the tests, on 127.0.0.1 and free ports, in
fresh directories, each stopped on exit; plus a webhook receiver. A missing binary fails the test
with the command that installs it (`.ci/run` does).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from spendscope import names as n
from spendscope.collector import _telemetry

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "prometheus"
ALERTMANAGER_DIR = REPO / "alertmanager"
INSTALL = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"

T = TypeVar("T")


def binary(name: str) -> str:
    """The path of `name`, or a failed test saying how to install it (never a skip)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian: {INSTALL}; .ci/run installs it)", pytrace=False)
    return path


def run_tool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool/amtool; fail the test with its output when it exits non-zero."""
    done = subprocess.run(
        [binary(args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}", pytrace=False
        )
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], T | None], timeout: float, log: Path | None = None) -> T:
    """Poll `check` until it returns something truthy; fail with `what` (and the log's tail) after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last, result = exc, None
        if result:
            return result
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    pytest.fail(
        f"timed out after {timeout:g}s waiting for {what} (last error: {last})\n{tail}", pytrace=False
    )


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def post_json(url: str, body: Any) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except urllib.error.HTTPError as exc:  # 503 while starting: close its body, or its socket leaks
        exc.close()
        raise


@contextmanager
def _process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class Prometheus:
    url: str
    log: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = get_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


@contextmanager
def running_prometheus(config: dict[str, Any], workdir: Path) -> Iterator[Prometheus]:
    """Prometheus with `config` (written as YAML), fresh storage in `workdir`, lifecycle API on and a
    1 s alert resend delay; ready on return."""
    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = workdir / "prometheus.log"
    args = [
        binary("prometheus"),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--rules.alert.resend-delay=1s",
    ]
    with _process(args, log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_for(
            "Prometheus to be ready", lambda: process.poll() is None and _ready(f"{url}/-/ready"), 15, log
        )
        yield Prometheus(url, log)


@dataclass
class Alertmanager:
    url: str
    log: Path

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode([("filter", f'{k}="{v}"') for k, v in filters.items()])
        result: list[dict[str, Any]] = get_json(f"{self.url}/api/v2/alerts?{query}")
        return result


@contextmanager
def running_alertmanager(config: dict[str, Any], workdir: Path) -> Iterator[Alertmanager]:
    """Alertmanager with `config`, fresh storage in `workdir`, clustering off; ready on return."""
    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = workdir / "alertmanager.log"
    args = [
        binary("prometheus-alertmanager"),
        f"--config.file={config_file}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with _process(args, log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_for(
            "Alertmanager to be ready", lambda: process.poll() is None and _ready(f"{url}/-/ready"), 15, log
        )
        yield Alertmanager(url, log)


@dataclass
class Webhook:
    """Alertmanager webhook notifications received, by path."""

    url: str
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alerts(self, path: str) -> list[dict[str, Any]]:
        """Every alert of every notification posted to `path`."""
        with self.lock:
            return [alert for p, body in self.received if p == path for alert in body["alerts"]]


@contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    hook = Webhook("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            with hook.lock:
                hook.received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def known_metrics() -> set[str]:
    """Every Prometheus series name SpendScope emits: the PROM_* names of spendscope/names.py and the
    collector's health metrics (with their counter and histogram suffixes), and Prometheus' own `up`."""
    known = {"up"}
    constants = [v for k, v in vars(n).items() if k.startswith("PROM_") and isinstance(v, str)]
    constants += [v for v in vars(_telemetry).values() if isinstance(v, str) and v.startswith("spendscope_")]
    for name in constants:
        known |= {name, f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return known
