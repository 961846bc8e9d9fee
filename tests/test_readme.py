"""The README's five-minute path, its collector example and its code samples run as written.

What the tests change, and nothing else: the `openai` client reaches the fake OpenAI server through
the OPENAI_BASE_URL and OPENAI_API_KEY environment variables it reads; the collector listens on a free
port instead of 4318 (another process may hold 4318 on a shared machine); and the collector example's
store is a temporary directory instead of /var/lib/spendscope. The store servers the collectors start
are stopped after each test (tests/store_fixtures.py)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from spendscope.demo.fake_openai import FakeOpenAI, Reply
from spendscope.store import server
from tests.helpers import GPT_4O_MINI, M, chat_body
from tests.monitoring import free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FIVE_MINUTES = "Instrument your app in five minutes"
API_KEY = "sk-proj-readme00000000000000000000"
DEFAULT_LISTEN = "127.0.0.1:4318"


def readme_section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README.read_text(), re.M | re.S)
    assert match, f"the README has no section {title!r}"
    return match.group(1)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)


def five_minute_blocks() -> dict[str, str]:
    """The path's blocks by step: install, collector, app, run, numbers."""
    blocks = code_blocks(readme_section(FIVE_MINUTES))
    assert [language for language, _ in blocks] == ["bash", "bash", "python", "bash", "bash"], blocks
    return dict(zip(("install", "collector", "app", "run", "numbers"), (b for _, b in blocks), strict=True))


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without settings that would steer SpendScope, OpenTelemetry or the openai
    client elsewhere, and with this interpreter's scripts (`spendscope`, `python`) first on PATH."""
    steering = ("SPENDSCOPE_", "OTEL_", "OPENAI_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(steering)}
    env["SPENDSCOPE_RAISE_INTERNAL_ERRORS"] = "1"  # a failure inside SpendScope fails the test
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def wait_for(what: str, check: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not in {timeout} s\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return None


def csv_tables(text: str, headers: tuple[str, ...]) -> dict[str, list[dict[str, str]]]:
    """CSV reports printed one after another, each starting with its header row (first column in
    `headers`)."""
    tables: dict[str, list[dict[str, str]]] = {}
    columns: list[str] = []
    for row in csv.reader(io.StringIO(text)):
        if row and row[0] in headers:
            columns = row
            tables[row[0]] = []
        elif row:
            tables[columns[0]].append(dict(zip(columns, row, strict=True)))
    return tables


def test_readme_python_sample_runs_and_records_cost() -> None:
    with FakeOpenAI() as server:
        env = clean_env(
            OPENAI_BASE_URL=server.base_url,
            OPENAI_API_KEY=API_KEY,
            OTEL_SERVICE_NAME="readme-app",
            OTEL_TRACES_EXPORTER="console",
            OTEL_METRICS_EXPORTER="none",
        )
        done = subprocess.run(
            [sys.executable, "-c", five_minute_blocks()["app"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    span = json.loads(done.stdout)
    assert span["name"] == "chat gpt-4o-mini"
    attributes = span["attributes"]
    assert attributes["spendscope.endpoint"] == "cv-parsing" and attributes["spendscope.attr.job_id"] == "J-7"
    assert Decimal(attributes["spendscope.cost.usd"]) > 0  # an exact decimal string
    assert span["resource"]["attributes"]["service.name"] == "readme-app"


def test_readme_install_step_names_what_exists() -> None:
    """The install step is not run (the test environment has it); what it names must exist."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    lines = five_minute_blocks()["install"].strip().splitlines()
    assert lines and all(line.startswith("pip install ") for line in lines), lines
    for line in lines:
        words = shlex.split(line)
        for i, word in enumerate(words):
            if word == "-c":
                assert (ROOT / words[i + 1]).is_file(), words[i + 1]
            if found := re.fullmatch(r"\.\[([\w,-]+)\]", word):
                assert set(found.group(1).split(",")) <= set(extras), word


class Terminal:
    """bash in one directory and environment, running what a user would type."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env

    def run(self, *lines: str) -> str:
        script = "\n".join(lines)
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    @contextmanager
    def collector(self, script: str, listen: str, data: Path) -> Iterator[Path]:
        """`script` started in a terminal of its own until the collector answers on `listen` with the
        server for its store `data` running; stopped with Ctrl-C, which must stop it cleanly (and leave
        the store's server running)."""
        log = self.cwd / "collector.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                ["bash", "-e", "-c", script],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:

                def ready() -> bool:
                    assert process.poll() is None, log.read_text()
                    return server.running(data) is not None and get(f"http://{listen}/healthz") is not None

                wait_for("the collector answers", ready, 30, log)
                yield log
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in its terminal
                stopped = process.wait(30)
        assert stopped == 0, log.read_text()
        assert server.running(data) is not None  # the store's server keeps running


def test_readme_five_minute_path_works_as_written(tmp_path: Path) -> None:
    """Collector, app and reports as the README runs them, in a fresh directory; the reports show the
    call with the tokens the server answered and their price."""
    blocks = five_minute_blocks()
    listen = f"127.0.0.1:{free_port()}"

    def on_free_port(block: str) -> str:
        assert DEFAULT_LISTEN in block, block
        return block.replace(DEFAULT_LISTEN, listen)

    (tmp_path / "app.py").write_text(blocks["app"])
    with FakeOpenAI() as server:
        server.enqueue("/v1/chat/completions", Reply(json=chat_body(19, 10)))
        terminal = Terminal(tmp_path, clean_env(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY=API_KEY))
        with terminal.collector(
            on_free_port(blocks["collector"]), listen, tmp_path / "spendscope-data"
        ) as log:
            terminal.run(on_free_port(blocks["run"]))
            assert [r.path for r in server.requests] == ["/v1/chat/completions"]

            def written() -> bool:
                metrics = get(f"http://{listen}/metrics") or ""
                found = re.search(r"^spendscope_collector_written_spans_total (\S+)$", metrics, re.M)
                return found is not None and float(found.group(1)) >= 1

            wait_for("the collector writes the span", written, 20, log)
            printed = terminal.run(blocks["numbers"])

    cost = (19 * GPT_4O_MINI["input"] + 10 * GPT_4O_MINI["output"]) / M  # 19 prompt, 10 completion tokens
    reports = csv_tables(printed, ("user", "endpoint"))
    assert [(r["user"], r["calls"], r["input_tokens"], r["output_tokens"]) for r in reports["user"]] == [
        ("u-42", "1", "19", "10")
    ]
    assert Decimal(reports["user"][0]["cost_usd"]) == cost
    assert [(r["endpoint"], r["calls"], Decimal(r["cost_usd"])) for r in reports["endpoint"]] == [
        ("cv-parsing", "1", cost)
    ]
    calls = list(csv.DictReader(io.StringIO((tmp_path / "calls.csv").read_text())))
    assert [(c["user"], c["tenant"], c["endpoint"], c["service"]) for c in calls] == [
        ("u-42", "acme", "cv-parsing", "cv-app")
    ]
    assert Decimal(calls[0]["cost_usd"]) == cost and json.loads(calls[0]["attributes"]) == {"job_id": "J-7"}


def readme_commands(text: str) -> list[list[str]]:
    """The commands of the bash blocks in `text`: continuations joined, comments, redirections,
    `sudo`, `export` and leading VAR=value assignments dropped, `a && b` split."""
    found: list[list[str]] = []
    for language, block in code_blocks(text):
        if language != "bash":
            continue
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words:
                command = words[: words.index("&&")] if "&&" in words else words
                words = words[len(command) + 1 :]
                command = command[: command.index(">")] if ">" in command else command
                while command and (command[0] in ("sudo", "export") or re.fullmatch(r"\w+=\S*", command[0])):
                    command = command[1:]
                if command:
                    found.append(command)
    return found


def test_readme_spendscope_commands_exist() -> None:
    """Every `spendscope` command in the README names a command and options the CLI has."""
    from typer.main import get_command

    from spendscope.cli import app

    cli = get_command(app)
    commands = [c for c in readme_commands(README.read_text()) if c[0] == "spendscope"]
    assert len(commands) >= 20, commands
    for _, name, *args in commands:
        assert name in cli.commands, name  # type: ignore[attr-defined]
        command = cli.commands[name]  # type: ignore[attr-defined]
        if hasattr(command, "commands") and args and args[0] in command.commands:  # a group: its command
            command, args = command.commands[args[0]], args[1:]
        params = command.params
        options = {o for p in params for o in (*p.opts, *p.secondary_opts)}
        assert {a.split("=")[0] for a in args if a.startswith("--")} <= options, (name, args)


def test_readme_collector_example_uses_one_store() -> None:
    """The collector example names its store once, for the collector and every command after it."""
    section = readme_section("Collector and store")
    first = next(line for _, block in code_blocks(section) for line in block.splitlines())
    assert re.match(r"export SPENDSCOPE_STORE=\S+", first), first
    for title in ("Collector and store", "Reports, exports, invoices and margins"):
        for command in readme_commands(readme_section(title)):
            assert not any(a.startswith("--store") for a in command), command


def test_readme_collector_example_works_as_written(tmp_path: Path) -> None:
    """The collector example with its store in a temporary directory: reports, exports, invoices,
    margins and repricing while the collector runs, all on that one store."""
    (start, local) = (
        b for language, b in code_blocks(readme_section("Collector and store")) if language == "bash"
    )
    assert "/var/lib/spendscope" in start
    start = start.replace("/var/lib/spendscope", f"{tmp_path}/store")
    store_line = start.splitlines()[0]
    ((_, reports),) = code_blocks(readme_section("Reports, exports, invoices and margins"))
    lines = [line for line in reports.splitlines() if line.strip()]
    assert len(lines) == 5, lines
    listen = f"127.0.0.1:{free_port()}"
    (tmp_path / "app.py").write_text(five_minute_blocks()["app"])
    with FakeOpenAI() as server:
        env = clean_env(
            OPENAI_BASE_URL=server.base_url,
            OPENAI_API_KEY=API_KEY,
            SPENDSCOPE_COLLECTOR_LISTEN=listen,  # the example's default port, made free
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{listen}",
        )
        terminal = Terminal(tmp_path, env)
        with terminal.collector(start, listen, tmp_path / "store") as log:
            terminal.run("python app.py")
            reported = lambda: "u-42" in terminal.run(store_line, lines[0])  # noqa: E731
            wait_for("the call is reported", reported, 20, log)
            printed = terminal.run(store_line, *lines)
            status = terminal.run(store_line, *local.splitlines()[1:2])  # spendscope store status
        terminal.run(store_line, "spendscope store stop", "spendscope store status || test $? -eq 3")
    assert "u-42" in printed and (tmp_path / "calls.csv").read_text().count("u-42") == 1
    assert status.startswith(f"the store server for {tmp_path / 'store'} runs: pid ")
