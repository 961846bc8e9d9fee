"""The local store server: ClickHouse serving its HTTP interface on 127.0.0.1 for one data directory,
from chdb-core's engine, in a process of its own (`python -m spendscope.store._serve DIR --port N`).

Every component reaches it as it reaches a ClickHouse server, through clickhouse-connect over HTTP, so
any number of processes use one local store at once. It has no access control (user `default`, no
password): it listens on the loopback interface only.

Files it keeps in the data directory, beside the engine's own:

    spendscope-server.lock   held (flock) by the server process for its whole life
    spendscope-server.json   {"pid", "http_port", "started_at", "engine"}: written once it answers,
                             removed when it stops cleanly (left behind by a killed server: stale)
    spendscope-server/       its working directory: config.xml (what the engine reads), server.log

`start` launches it detached (not a child of the process that started it, which may exit); `stop` sends
SIGTERM and waits for the lock to be let go: the server cancels the query that keeps the engine
serving, and the engine stops (in about a second; up to 5 s more while clients hold connections, after
which it exits on its own, as ClickHouse does). A second server on a directory is refused, naming the
first one's pid and address. The start relies on chdb-core's private `chdb._chdb` module: the range of
chdb-core it is tested with is `TESTED`, checked before starting.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from spendscope.store.errors import StoreError

HOST = "127.0.0.1"
STATE_FILE = "spendscope-server.json"
LOCK_FILE = "spendscope-server.lock"
RUN_DIR = "spendscope-server"
LOG_FILE = "server.log"
ENGINE = "chdb-core"
# The chdb-core releases the start is tested with (tests/test_store_server.py): >= 26.9, < 26.10.
TESTED = ((26, 9), (26, 10))
TESTED_TEXT = ">=26.9,<26.10"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

# The server process's exit statuses that mean something to the starter.
EXIT_ERROR = 1  # its last line says why
EXIT_RUNNING = 3  # another server holds the directory
EXIT_PORT_TAKEN = 4
ENGINE_STOPPED = "the engine stopped before it served"


class StoreServerError(StoreError):
    """The local store server cannot be started, stopped or found: one line that says why."""


@dataclass(frozen=True, slots=True)
class ServerState:
    """A running server, as its state file records it."""

    pid: int
    http_port: int
    started_at: str  # ISO 8601, UTC
    engine: str  # ClickHouse's version() in that server

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def to_json(self) -> str:
        return json.dumps(asdict(self)) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ServerState | None:
        """The state in `text`, or None if it is not a state file's."""
        try:
            data = json.loads(text)
            pid, port = int(data["pid"]), int(data["http_port"])
            state = cls(pid, port, str(data["started_at"]), str(data["engine"]))
        except (ValueError, KeyError, TypeError):
            return None
        return state if state.pid > 0 and 0 < state.http_port < 65536 else None


def config_xml(port: int) -> str:
    """The engine's config.xml: HTTP on `port`, on the loopback interface only. Idle connections are
    closed after 2 s (clickhouse-connect opens another when it needs one): on stop, the engine waits
    for open connections to close (5 s at most) before it exits."""
    return (
        "<clickhouse>\n"
        f"    <http_port>{int(port)}</http_port>\n"
        f"    <listen_host>{HOST}</listen_host>\n"
        "    <keep_alive_timeout>2</keep_alive_timeout>\n"
        "</clickhouse>\n"
    )


def engine_supported(version: str) -> bool:
    """Whether chdb-core `version` is in the tested range."""
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    low, high = TESTED
    return len(major_minor) == 2 and low <= major_minor < high


def check_engine() -> str:
    """chdb-core's version, if it is one the start is tested with; else StoreServerError."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version(ENGINE)
    except PackageNotFoundError:
        raise StoreServerError(
            f"the local store server needs {ENGINE} ({TESTED_TEXT}): pip install 'spendscope[collector]'"
        ) from None
    if not engine_supported(found):
        raise StoreServerError(
            f"{ENGINE} {found} is not a release the local store server is tested with ({TESTED_TEXT}): "
            f"pip install '{ENGINE}{TESTED_TEXT}'"
        )
    return found


# --- what the data directory says --------------------------------------------------------------------
def read_state(directory: Path) -> ServerState | None:
    """The state file's contents (whether its server still runs or not), or None."""
    try:
        return ServerState.from_json((directory / STATE_FILE).read_text())
    except OSError:
        return None


def lock_held(directory: Path) -> bool:
    """Whether a server process holds the directory's lock (it does while it runs, even if killed
    before it could write its state, and never after it has died)."""
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing lets go of the shared lock, if taken
    return False


def running(directory: Path) -> ServerState | None:
    """The server serving `directory`, once it answers; None if there is none (or its state file is a
    dead one's)."""
    state = read_state(directory)
    if state is None or not lock_held(directory) or not _alive(state.pid):
        return None
    return state


def stale(directory: Path) -> ServerState | None:
    """The state a server that died without stopping (SIGKILL, a crash) left behind, or None."""
    state = read_state(directory)
    if state is None or running(directory) is not None:
        return None
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_free(port: int) -> bool:
    """Whether the server could listen on `port` (as it binds: a connection of a killed server's still
    closing there does not stop it)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nothing listens on now, from the system's ephemeral range (so never 8123, 9000)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


# --- start and stop ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Started:
    """What `ensure` found or started: the server, and whether this process started it."""

    state: ServerState
    started: bool


def prepare(directory: Path, *, create: bool) -> Started:
    """A local store's server, started if none runs. The directory is made only with `create`: a
    command that only reads never creates a store."""
    if not directory.is_dir():
        if not create:
            raise StoreServerError(f"no store at {directory}: the directory does not exist")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreServerError(f"cannot create the store directory {directory}: {exc.strerror}") from None
    return ensure(directory)


def ensure(directory: Path, *, port: int | None = None, timeout: float = START_TIMEOUT) -> Started:
    """The server for `directory` (which must exist): the running one, else a new one, detached."""
    state = running(directory)
    if state is not None:
        return Started(state, False)
    return start(directory, port=port, timeout=timeout)


def start(directory: Path, *, port: int | None = None, timeout: float = START_TIMEOUT) -> Started:
    """Start a server for `directory` (which must exist) on `port` (default: the port a killed server
    used, if it is free, else a free one); StoreServerError if it cannot start. If another process
    starts one at the same moment, that one is returned."""
    check_engine()
    if not directory.is_dir():
        raise StoreServerError(f"no store at {directory}: the directory does not exist")
    previous = stale(directory)
    chosen = port
    if chosen is None and previous is not None and _port_free(previous.http_port):
        chosen = previous.http_port
    for _ in range(3):
        status = _launch(directory, chosen or free_port(), timeout)
        if status == 0:
            state = running(directory)
            if state is not None:
                return Started(state, True)
        elif status == EXIT_RUNNING:  # another start won: use that server
            return Started(_wait_running(directory, timeout), False)
        elif status != EXIT_PORT_TAKEN or port is not None:
            break
        chosen = None  # taken between choosing it and binding it: another free port
    raise StoreServerError(f"the store server for {directory} did not start: {_why(directory)}")


def _launch(directory: Path, port: int, timeout: float) -> int:
    """Run `python -m spendscope.store._serve --detach`, which forks the server and exits once it
    serves (0) or has failed (its status): the server is no child of this process."""
    run_dir = directory / RUN_DIR
    try:
        run_dir.mkdir(exist_ok=True)
        log = (run_dir / LOG_FILE).open("wb")
    except OSError as exc:
        raise StoreServerError(f"cannot write to the store directory {directory}: {exc.strerror}") from None
    command = [sys.executable, "-m", "spendscope.store._serve", str(directory), "--port", str(port)]
    with log:
        process = subprocess.Popen(
            [*command, "--detach", "--timeout", str(timeout)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=run_dir,
            start_new_session=True,  # not stopped by the Ctrl-C or the SIGTERM of the process that started it
        )
    try:
        return process.wait(timeout + 10)
    except BaseException:  # an interrupt (Ctrl-C): the server, if it comes up, runs on as if started
        process.kill()
        process.wait()
        raise


def _wait_running(directory: Path, timeout: float) -> ServerState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = running(directory)
        if state is not None:
            return state
        if not lock_held(directory):
            break
        time.sleep(0.05)
    raise StoreServerError(f"the store server for {directory} did not start: {_why(directory)}")


def _why(directory: Path) -> str:
    """Why the server did not start, from its log: the engine's own error (`Code: NNN. DB::Exception:
    ...`) if it stopped, else the server's last line (`error: ...`)."""
    try:
        lines = (directory / RUN_DIR / LOG_FILE).read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    own = next((line.removeprefix("error: ") for line in reversed(lines) if line.startswith("error: ")), None)
    engine = next((line.strip() for line in reversed(lines) if "DB::Exception" in line), None)
    if engine is not None and (own is None or own.startswith(ENGINE_STOPPED)):
        return engine[:500]
    return own or f"see {directory / RUN_DIR / LOG_FILE}"


def stop(directory: Path, *, timeout: float = STOP_TIMEOUT) -> ServerState | None:
    """Stop the server for `directory` (SIGTERM; SIGKILL if it has not stopped within `timeout`);
    returns what it was, or None if none ran. A stale state file is removed."""
    state = running(directory)
    if state is None and lock_held(directory):  # starting: stop it once it serves
        with contextlib.suppress(StoreServerError):  # or it did not start
            state = _wait_running(directory, START_TIMEOUT)
    if state is None:
        if read_state(directory) is not None:
            (directory / STATE_FILE).unlink(missing_ok=True)
        return None
    if not _is_server(state.pid):
        raise StoreServerError(
            f"{directory / STATE_FILE} names pid {state.pid}, which is not a store server: remove the file"
        )
    _signal(state.pid, signal.SIGTERM)
    if not _wait_released(directory, timeout):
        _signal(state.pid, signal.SIGKILL)
        if not _wait_released(directory, 10.0):
            raise StoreServerError(f"the store server for {directory} (pid {state.pid}) did not stop")
    current = read_state(directory)
    if current is not None and current.pid == state.pid:
        (directory / STATE_FILE).unlink(missing_ok=True)
    return state


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_released(directory: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while lock_held(directory):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _is_server(pid: int) -> bool:
    """Whether `pid` runs a store server (where /proc tells; elsewhere, trusted)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    return b"spendscope.store._serve" in command
