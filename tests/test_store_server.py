"""The local store server (spendscope/store/server.py): the engine's start, which relies on chdb-core's
private `chdb._chdb` module; start, status and stop; a second server, a taken port, a directory another
engine holds, an engine outside the tested range, each one line; a killed server's data and port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

import clickhouse_connect
import pytest
from typer.testing import CliRunner

from spendscope.cli import app
from spendscope.store import StoreError, open_store, server
from spendscope.store import _serve as serve

MOVED = (
    "the local store server no longer starts with chdb-core {version}: it runs "
    "chdb._chdb.query(<SYSTEM START LISTEN HTTP; keep-alive>, 'TabSeparated', path=DIR) from a working "
    "directory holding config.xml (spendscope/store/_serve.py). See the server's log above, and pin "
    "chdb-core to a release where this works (pyproject.toml)."
)


def spendscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spendscope", *args], capture_output=True, text=True, timeout=120
    )


# --- pure parts ------------------------------------------------------------------------------------------
def test_config_state_and_the_tested_range() -> None:
    assert server.config_xml(18123) == (
        "<clickhouse>\n"
        "    <http_port>18123</http_port>\n"
        "    <listen_host>127.0.0.1</listen_host>\n"
        "    <keep_alive_timeout>2</keep_alive_timeout>\n"
        "</clickhouse>\n"
    )
    state = server.ServerState(4242, 41234, "2026-11-03T10:00:00Z", "26.9.2.1")
    assert server.ServerState.from_json(state.to_json()) == state
    assert state.url == "http://127.0.0.1:41234"
    for bad in ("", "{", '{"pid": 1}', '{"pid": 0, "http_port": 1, "started_at": "", "engine": ""}', "[]"):
        assert server.ServerState.from_json(bad) is None, bad
    assert [server.engine_supported(v) for v in ("26.9.0", "26.9.3", "26.10.0", "26.8.1", "27.1", "x")] == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]
    assert server.engine_supported(version(server.ENGINE))  # what is installed is what is tested
    assert server.free_port() not in (8123, 9000)


# --- the engine's start ------------------------------------------------------------------------------------
def test_the_engine_still_starts_as_a_clickhouse_http_server(tmp_path: Path) -> None:
    """Fails, saying what moved, when a chdb-core release changes what the start relies on."""
    installed = version(server.ENGINE)
    from chdb import _chdb

    assert callable(getattr(_chdb, "query", None)), MOVED.format(version=installed)
    try:
        started = server.start(tmp_path)
    except StoreError as exc:
        log = (tmp_path / server.RUN_DIR / server.LOG_FILE).read_text()
        pytest.fail(f"{exc}\n{log}\n{MOVED.format(version=installed)}")
    try:
        client = clickhouse_connect.get_client(host=server.HOST, port=started.state.http_port)
        assert client.command("SELECT version()") == started.state.engine
        assert started.state.engine.startswith("26.9."), MOVED.format(version=installed)
        client.command("CREATE TABLE default.t (x UInt64) ENGINE = MergeTree ORDER BY x")
        client.insert("default.t", [[1], [2]], column_names=["x"])
        assert client.query("SELECT sum(x) FROM default.t").result_rows == [(3,)]
        client.close()
        with urllib.request.urlopen(f"{started.state.url}/ping", timeout=5) as ping:
            assert ping.read() == b"Ok.\n"
    finally:
        server.stop(tmp_path)
    assert (tmp_path / server.RUN_DIR / server.LOG_FILE).read_text().endswith("stopped\n")  # cleanly


def test_it_listens_on_the_loopback_interface_only(tmp_path: Path) -> None:
    started = server.start(tmp_path)
    try:
        listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
        port = f"{started.state.http_port:04X}"
        local = [line.split()[1] for line in listening if line.split()[3] == "0A"]  # LISTEN
        assert [a for a in local if a.endswith(f":{port}")] == [f"0100007F:{port}"]  # 127.0.0.1 only
        assert (tmp_path / server.RUN_DIR / "config.xml").read_text() == server.config_xml(
            started.state.http_port
        )
    finally:
        server.stop(tmp_path)


# --- start, status and stop --------------------------------------------------------------------------------
def test_start_status_and_stop_through_the_cli_and_a_second_server_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    started = spendscope("store", "start", "--store", str(directory))  # the directory is made
    state = server.running(directory)
    assert state is not None and started.returncode == 0
    assert started.stdout == (
        f"started the store server for {directory} (pid {state.pid}, {state.url}); it keeps running: "
        "`spendscope store stop` stops it\n"
    )
    assert sorted(p.name for p in directory.iterdir() if p.name.startswith("spendscope")) == [
        "spendscope-server",
        "spendscope-server.json",
        "spendscope-server.lock",
    ]
    again = spendscope("store", "start", "--store", str(directory))
    assert again.stdout == f"the store server for {directory} already runs (pid {state.pid}, {state.url})\n"
    status = spendscope("store", "status", "--store", str(directory))
    assert status.stdout.startswith(
        f"the store server for {directory} runs: pid {state.pid}, {state.url}, ClickHouse 26.9."
    )
    second = subprocess.run(
        [sys.executable, "-m", "spendscope.store._serve", str(directory), "--port", str(server.free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (second.returncode, second.stdout) == (
        server.EXIT_RUNNING,
        f"error: a store server already runs for {directory} (pid {state.pid}, {state.url})\n",
    )
    stopped = spendscope("store", "stop", "--store", str(directory))
    assert stopped.stdout == f"stopped the store server for {directory} (pid {state.pid}, {state.url})\n"
    assert not (directory / server.STATE_FILE).exists() and not server.lock_held(directory)
    assert "stopped" in (directory / server.RUN_DIR / server.LOG_FILE).read_text()
    status = spendscope("store", "status", "--store", str(directory))
    assert (status.returncode, status.stdout) == (3, f"no store server runs for {directory}\n")
    assert spendscope("store", "stop", "--store", str(directory)).stdout == (
        f"no store server runs for {directory}\n"
    )
    server_store = spendscope("store", "start", "--store", "http://127.0.0.1:9/x")
    assert (server_store.returncode, server_store.stderr) == (
        1,
        "error: http://127.0.0.1:9/x is a ClickHouse server: a store server runs for a local store (a directory)\n",
    )


def test_a_command_starts_the_server_of_an_existing_store_and_says_so(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    migrated = CliRunner().invoke(app, ["migrate", "--store", str(directory)])
    assert migrated.exit_code == 0, migrated.output
    state = server.running(directory)
    assert state is not None
    assert migrated.stderr == (
        f"started the store server for {directory} (pid {state.pid}, {state.url}); it keeps running: "
        "`spendscope store stop` stops it\n"
    )
    server.stop(directory)
    reported = CliRunner().invoke(app, ["report", "--store", str(directory)])  # reads: starts it again
    assert reported.exit_code == 0, reported.output
    assert reported.stderr.startswith("started the store server for") and server.running(directory)
    quiet = CliRunner().invoke(app, ["report", "--store", str(directory)])  # it runs: nothing to say
    assert (quiet.exit_code, quiet.stderr) == (0, "")


# --- what cannot start says why in one line ---------------------------------------------------------------
def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((server.HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = spendscope("store", "start", "--store", str(tmp_path), "--port", str(port))
    assert (done.returncode, done.stderr) == (
        1,
        f"error: the store server for {tmp_path} did not start: cannot listen on 127.0.0.1:{port}: "
        "Address already in use\n",
    )
    assert not server.lock_held(tmp_path)


HOLD = """
import sys, chdb
connection = chdb.connect(sys.argv[1])  # chdb in this process holds the directory
print("held", flush=True)
sys.stdin.readline()
"""


def test_a_directory_another_engine_holds_is_one_line(tmp_path: Path) -> None:
    """chdb used in-process elsewhere (an older SpendScope, a notebook) holds the directory's `status`
    lock: the engine's own message, on one line."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        done = spendscope("store", "start", "--store", str(tmp_path))
    finally:
        holder.communicate("\n", timeout=30)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        f"error: the store server for {tmp_path} did not start: Code: 76. DB::Exception: Cannot lock file "
        f"{tmp_path}/status. Another server instance in same directory is already running."
    ), done.stderr


def test_an_engine_outside_the_tested_range_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "26.10.1")
    with pytest.raises(server.StoreServerError) as refused:
        server.check_engine()
    assert str(refused.value) == (
        "chdb-core 26.10.1 is not a release the local store server is tested with (>=26.9,<26.10): "
        "pip install 'chdb-core>=26.9,<26.10'"
    )


# --- a killed server ----------------------------------------------------------------------------------------
def test_a_killed_server_keeps_its_data_and_starts_again_on_its_port(tmp_path: Path) -> None:
    first = server.start(tmp_path).state
    with open_store(str(tmp_path), database="default") as store:
        store.command("CREATE TABLE default.kept (x UInt64) ENGINE = MergeTree ORDER BY x")
        store.command("INSERT INTO default.kept SELECT number FROM numbers(100000)")
    os.kill(first.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.lock_held(tmp_path):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert server.running(tmp_path) is None and server.stale(tmp_path) == first
    with pytest.raises(StoreError, match="no store server runs for"):
        open_store(str(tmp_path), database="default")
    again = server.ensure(tmp_path).state
    assert again.pid != first.pid and again.http_port == first.http_port
    with open_store(str(tmp_path), database="default") as store:
        assert store.query("SELECT count(), sum(x) FROM default.kept").rows == [[100000, 4999950000]]
    server.stop(tmp_path)


def test_serve_refuses_without_the_lock_before_loading_the_engine(tmp_path: Path) -> None:
    """The lock (another server) is checked first: nothing else is touched, the engine is not loaded."""
    with (tmp_path / server.LOCK_FILE).open("w") as held:
        import fcntl

        fcntl.flock(held, fcntl.LOCK_EX)
        code = serve.main([str(tmp_path), "--port", "1"])
    assert code == server.EXIT_RUNNING
    assert sorted(p.name for p in tmp_path.iterdir()) == [server.LOCK_FILE]
