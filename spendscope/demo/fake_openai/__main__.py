"""``python -m spendscope.demo.fake_openai --port 8089``: serve the fake API until Ctrl-C.

Prints ``OPENAI_BASE_URL=...`` (the SDK reads that variable) and ``OPENAI_WEBSOCKET_BASE_URL=...``
(the SDK does not read it: pass it as ``OpenAI(websocket_base_url=...)``).
"""

from __future__ import annotations

import argparse
import threading

from spendscope.demo.fake_openai.server import FakeOpenAI


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m spendscope.demo.fake_openai", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    parser.add_argument(
        "--ws-port", type=int, default=0, help="Realtime WebSocket port (default: a free one)"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each HTTP request")
    args = parser.parse_args(argv)
    with FakeOpenAI(args.host, args.port, args.ws_port, log_requests=not args.quiet) as server:
        print(f"OPENAI_BASE_URL={server.base_url}", flush=True)
        print(f"OPENAI_WEBSOCKET_BASE_URL={server.websocket_base_url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)


if __name__ == "__main__":
    main()
