"""Every component at once on the default local store: `spendscope collector` on ./spendscope-data
with the demo's workload sending to it, and meanwhile `report`, `invoice`, `margin`, `reprice`,
`export --format json`, `budgets --once` and `reconcile` (against the fake admin API), each a process of
its own, all started together; they all succeed, and the collector keeps ingesting."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spendscope.fake_openai.admin import ADMIN_KEY, FakeAdminAPI
from spendscope.store import server
from tests.monitoring import free_port
from tests.reconcile_helpers import use
from tests.test_readme import clean_env

ROOT = Path(__file__).resolve().parents[1]


def written(url: str) -> float:
    try:
        text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    except OSError:
        return 0.0
    found = re.search(r"^spendscope_collector_written_spans_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def wait_for(what: str, check: object, timeout: float, *logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}: not in {timeout} s\n" + "\n".join(
            log.read_text()[-2000:] for log in logs
        )
        time.sleep(0.2)


def test_every_command_runs_beside_the_collector_on_the_default_store(tmp_path: Path) -> None:
    env = clean_env()
    url = f"http://127.0.0.1:{free_port()}"
    collector_log, demo_log = tmp_path / "collector.log", tmp_path / "demo.log"
    spendscope = [sys.executable, "-m", "spendscope"]
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("w") as out:
            process = subprocess.Popen([*spendscope, *args], cwd=tmp_path, env=env, stdout=out, stderr=out)
        started.append(process)
        return process

    try:
        start(["collector", "--listen", url.removeprefix("http://")], collector_log)
        wait_for("the collector answers", lambda: written(url) == 0 and _up(url), 60, collector_log)
        start(["demo", "--collector", url, "--every", "1s"], demo_log)
        wait_for("a round of the demo is written", lambda: written(url) >= 55, 120, demo_log, collector_log)

        month = datetime.now(UTC).strftime("%Y-%m")
        commands = {
            "report": ["report", "--by", "tenant", "--since", "1d", "--format", "json"],
            "invoice": ["invoice", "--tenant", "talentco", "--month", month, "--format", "json"],
            "margin": ["margin", "--tenant", "brightschool", "--percent", "10"],
            "reprice": ["reprice", "--since", "1d"],
            "export": ["export", "--since", "1d", "--format", "json"],
            "budgets": ["budgets", "--once", "--config", str(ROOT / "prometheus" / "budgets.yaml")],
            "reconcile": ["reconcile", "--format", "json"],
        }
        with FakeAdminAPI() as admin:
            use(admin, datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2))
            admin_env = {**env, "OPENAI_ADMIN_KEY": ADMIN_KEY, "OPENAI_BASE_URL": admin.base_url}
            before = written(url)
            running = {
                name: subprocess.Popen(
                    [*spendscope, *args],
                    cwd=tmp_path,
                    env=admin_env if name == "reconcile" else env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for name, args in commands.items()
            }
            t0 = time.monotonic()
            results = {name: (p.communicate(timeout=180), p.returncode) for name, p in running.items()}
            took = time.monotonic() - t0
        codes = ", ".join(f"{name} {code}" for name, (_, code) in results.items())
        print(
            f"\ntogether: all seven done in {took:.1f} s ({codes}); spans written {before:.0f} -> {written(url):.0f}"
        )
        for name, ((_, err), code) in results.items():
            # reconcile: 3 means it ran and found coverage below --min-coverage (nothing tracked then)
            assert code in ((0, 3) if name == "reconcile" else (0,)), f"{name} exited {code}: {err}"
            assert "Traceback" not in err, (name, err)
        out = {name: stdout for name, ((stdout, _), _) in results.items()}
        assert {row[0] for row in json.loads(out["report"])["rows"]} == {"talentco", "brightschool"}
        assert json.loads(out["invoice"])["rows"] and len(json.loads(out["export"])["rows"]) >= 55
        assert out["margin"].startswith("brightschool: 10% from")
        assert re.match(r"\d+ calls examined", out["reprice"]), out["reprice"]
        assert "spendscope_budget_evaluations_total" in out["budgets"]
        assert json.loads(out["reconcile"])["status"] in ("complete", "partial"), out["reconcile"]
        # the collector kept ingesting meanwhile, and after
        wait_for("ingest goes on", lambda: written(url) >= before + 110, 120, demo_log, collector_log)
        assert "started the store server" in collector_log.read_text()
        assert all("started the store server" not in err for (_, err), _ in results.values())
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert [p.returncode for p in started] == [0, 0], (collector_log.read_text(), demo_log.read_text())
    assert server.running(tmp_path / "spendscope-data") is not None  # stopped by the fixture, after
    assert os.path.isdir(tmp_path / "spendscope-data")


def _up(url: str) -> bool:
    try:
        return json.loads(urllib.request.urlopen(f"{url}/healthz", timeout=5).read())["store"] == "up"
    except OSError:
        return False
