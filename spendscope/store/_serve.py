"""The local store server's process: `python -m spendscope.store._serve DATA_DIR --port N [--detach]`.

Started by `spendscope.store.server.start` with `--detach`: the process forks the server and waits
until it serves (exit 0) or fails (its exit status), so that the server is nobody's child. The server
takes the directory's lock for its whole life, writes the engine's config.xml in its working
directory, and runs chdb-core's engine (clickhouse-local, which reads ./config.xml) with a query that
opens the HTTP interface and then blocks while the server serves. Once /ping answers it writes the
state file. On SIGTERM or SIGINT it cancels that query (KILL QUERY), which stops the engine, removes
the state file and exits 0. An error before it serves is one line `error: ...` and a non-zero exit
status (`server.EXIT_*`); the engine prints its own errors (`Code: NNN. DB::Exception: ...`) before
them. Its output goes to `server.log` in its working directory.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spendscope.store import server

# The engine's keep-alive: it blocks (one row a second, no CPU to speak of) until it is killed.
MARK = "spendscope-store-server"
KEEP_ALIVE = (
    "SYSTEM START LISTEN HTTP; "
    "SELECT sleep(1) FROM system.numbers "
    f"SETTINGS max_block_size = 1, function_sleep_max_microseconds_per_block = 0, log_comment = '{MARK}' "
    "FORMAT Null"
)
KILL = f"KILL QUERY WHERE Settings['log_comment'] = '{MARK}' SYNC"
LOCK_ATTEMPTS = 40  # x 50 ms: a client probing the lock holds it for microseconds


class _Refused(Exception):
    def __init__(self, message: str, status: int = server.EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = status


def _lock(directory: Path) -> int:
    fd = os.open(directory / server.LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    for _ in range(LOCK_ATTEMPTS):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            time.sleep(0.05)
    os.close(fd)
    other = server.read_state(directory)
    where = f" (pid {other.pid}, {other.url})" if other is not None else ""
    raise _Refused(f"a store server already runs for {directory}{where}", server.EXIT_RUNNING)


def _engine() -> Any:
    """chdb-core's private query function, checked: the one thing this start relies on."""
    version = server.check_engine()
    try:
        import chdb  # noqa: F401  (loads the engine)
        from chdb import _chdb
    except ImportError as exc:
        raise _Refused(
            f"{server.ENGINE} {version} has no module chdb._chdb ({exc}): the local store server needs it"
        ) from None
    query = getattr(_chdb, "query", None)
    if not callable(query):
        raise _Refused(f"{server.ENGINE} {version} has no chdb._chdb.query: the local store server needs it")
    return query


def _check_port(port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the engine binds
        try:
            probe.bind((server.HOST, port))
        except OSError as exc:
            raise _Refused(
                f"cannot listen on {server.HOST}:{port}: {exc.strerror}", server.EXIT_PORT_TAKEN
            ) from None


def _get(url: str, body: bytes | None = None, timeout: float = 5.0) -> str | None:
    try:
        with urllib.request.urlopen(url, data=body, timeout=timeout) as response:
            return str(response.read().decode())
    except OSError:
        return None


def _write_state(directory: Path, state: server.ServerState) -> None:
    path = directory / server.STATE_FILE
    temporary = path.with_name(f".{server.STATE_FILE}.{os.getpid()}")
    temporary.write_text(state.to_json())
    os.replace(temporary, path)


def serve(directory: Path, port: int, timeout: float = server.START_TIMEOUT) -> int:
    lock = _lock(directory)
    query = _engine()
    _check_port(port)
    run_dir = directory / server.RUN_DIR
    run_dir.mkdir(exist_ok=True)
    (run_dir / "config.xml").write_text(server.config_xml(port))
    os.chdir(run_dir)  # clickhouse-local reads ./config.xml

    engine = threading.Thread(
        target=lambda: query(KEEP_ALIVE, "TabSeparated", path=str(directory)), name="engine", daemon=True
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    engine.start()
    url = f"http://{server.HOST}:{port}"
    deadline = time.monotonic() + timeout
    while _get(f"{url}/ping", timeout=1) is None:
        if not engine.is_alive():
            raise _Refused(f"{server.ENGINE_STOPPED} (its message is above)")
        if stop.is_set() or time.monotonic() > deadline:
            raise _Refused(f"the engine did not answer on {url} within {timeout:g} s")
        time.sleep(0.02)
    version = (_get(url, b"SELECT version()") or "").strip()
    started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    state = server.ServerState(os.getpid(), port, started, version)
    _write_state(directory, state)
    print(f"serving {directory} on {url} (ClickHouse {version}, pid {os.getpid()})", flush=True)

    while not stop.is_set() and engine.is_alive():
        stop.wait(0.5)
    if engine.is_alive():  # stopping: cancel the keep-alive, and the engine stops with it
        _get(url, KILL.encode(), timeout=10)
        engine.join(20)
    if server.read_state(directory) == state:
        (directory / server.STATE_FILE).unlink(missing_ok=True)
    os.close(lock)
    print("stopped", flush=True)
    return 0


def _await(directory: Path, child: int, timeout: float) -> int:
    """In the parent of a detached server: 0 once `child` serves, its exit status if it stops first."""
    deadline = time.monotonic() + timeout + 5  # the child gives up after `timeout` itself
    while time.monotonic() < deadline:
        state = server.read_state(directory)
        if state is not None and state.pid == child:
            return 0
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(child, signal.SIGKILL)
    print(f"error: the server (pid {child}) did not start within {timeout:g} s", flush=True)
    return server.EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spendscope.store._serve")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--detach", action="store_true", help="fork the server; exit once it serves")
    parser.add_argument("--timeout", type=float, default=server.START_TIMEOUT)
    args = parser.parse_args(argv)
    directory = args.directory.resolve()
    if args.detach:
        child = os.fork()  # before the engine is loaded: nothing but this interpreter to copy
        if child:
            return _await(directory, child, args.timeout)
    try:
        return serve(directory, args.port, args.timeout)
    except _Refused as exc:
        print(f"error: {exc}", flush=True)
        return exc.status
    except server.StoreServerError as exc:
        print(f"error: {exc}", flush=True)
        return server.EXIT_ERROR
    except OSError as exc:
        print(f"error: {args.directory}: {exc.strerror or exc}", flush=True)
        return server.EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
