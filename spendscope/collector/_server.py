"""Serving an ASGI app with uvicorn from a thread of this process, and stopping it gracefully.

The socket is bound here, before uvicorn starts, so that a taken port or an address this machine
does not have is a one-line error at start (and port 0 gives its port at once). `stop()` stops
accepting connections, closes idle ones, lets the requests in flight finish and send their answers
(up to `grace` seconds), and returns once the server thread has ended: after it, no request is being
handled. Signals are the caller's (uvicorn installs no handlers outside the main thread).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

_log = logging.getLogger("spendscope.collector")
IDLE_TIMEOUT_S = 75  # longer than the OTLP exporters' 60 s metric interval, so connections are reused
GRACE_S = 10.0
BACKLOG = 128


class HttpServer:
    """`app` served on (host, port) in a daemon thread."""

    def __init__(self, app: Any, host: str, port: int, *, grace: float = GRACE_S) -> None:
        """Binds the socket: raises OSError if it cannot."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
            self._socket.listen(BACKLOG)
        except OSError:
            self._socket.close()
            raise
        config = uvicorn.Config(
            app,
            log_config=None,  # the process's logging, as configured by the CLI (or the tests)
            access_log=False,
            lifespan="off",
            timeout_keep_alive=IDLE_TIMEOUT_S,
            timeout_graceful_shutdown=int(grace),
            backlog=BACKLOG,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    def start(self, timeout: float = 30.0) -> None:
        """Serve from a thread; returns once uvicorn accepts connections. RuntimeError if it cannot."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="spendscope-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise RuntimeError("the HTTP server did not start (see the log)")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop gracefully (see the module's docstring); safe before start and twice."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._socket.close()
