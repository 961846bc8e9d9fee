"""`spendscope demo --collector URL`: the demo's workload, instrumented as in the demo, sent over
OTLP/HTTP to a collector that is already running (docker compose's) instead of one the demo starts on
a store of its own. With `every`, the same two services run it again and again until stopped, so the
counters Prometheus scrapes keep growing (a process that exports once shows Prometheus no increase).
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

from opentelemetry.util.re import parse_env_headers

from spendscope.demo import workload
from spendscope.demo.fake_openai import FakeOpenAI
from spendscope.demo.services import DemoServices
from spendscope.settings._types import seconds


class CollectorUnreachable(Exception):
    """The collector refused or did not answer an empty OTLP export."""


def parse_every(raw: str) -> float:
    """`30s`, `0.5s`, `5m` as seconds (at most an hour), read as the settings' durations are."""
    try:
        every = float(seconds(raw))
    except ValueError:
        every = 0.0
    if not 0 < every <= 3600:
        raise ValueError(f"bad --every {raw!r}: use a duration such as 30s or 5m (at most 1h)")
    return every


def check_collector(url: str, timeout: float = 5.0) -> None:
    """Send an empty OTLP/HTTP export with the exporters' headers: a wrong address or token fails
    here, where the OTLP exporters would only log and drop."""
    headers = dict(parse_env_headers(os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""), liberal=True))
    request = urllib.request.Request(
        f"{url}/v1/traces", data=b"{}", headers={**headers, "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        hint = " (OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>)" if exc.code == 401 else ""
        raise CollectorUnreachable(f"the collector at {url} answered {exc.code}{hint}") from None
    except (OSError, ValueError) as exc:
        raise CollectorUnreachable(f"no collector at {url}: {exc}") from None


def send_rounds(
    url: str,
    *,
    seed: int,
    every: float | None,
    stop: threading.Event,
    echo: Callable[[str], None],
) -> int:
    """Run the workload once, or every `every` seconds until `stop` is set, from the demo's two
    instrumented services exporting to `url`; returns the calls made."""
    calls = rounds = 0
    with FakeOpenAI() as server, DemoServices(url) as services:
        while True:
            outcome = workload.run(server, seed=seed + rounds, on_client=services.instrument)
            services.flush()  # export now, not at the next metric interval
            rounds += 1
            calls += outcome.calls
            echo(f"round {rounds}: {outcome.calls} calls ({len(outcome.errors)} failed) sent to {url}")
            if every is None or stop.wait(every):
                break
    return calls
