"""The collector's HTTP stack: the bearer token on every route (compared in constant time), body size
limits, graceful shutdown (in flight answered, the queue drained), the OpenAPI description of the
reports API and its docs page."""

from __future__ import annotations

import gzip
import hmac
import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from spendscope.collector import Collector
from spendscope.collector import _access as access_module
from spendscope.store import Store, open_store
from tests.test_collector import (
    PROTOBUF,
    config,
    make_spans,
    metric,
    payload,
    request,
    rows,
    status_message,
    wait_for,
)
from tests.test_collector_process import Running

REPORT_ROUTES = {
    "/api/usage/summary": {"since", "until", "by", "where"},
    "/api/usage/stats": {"since", "until", "where"},
    "/api/usage/users": {"since", "until", "limit", "offset", "sort", "order", "search", "where"},
    "/api/usage/monthly": {"since", "until", "by", "where"},
    "/api/usage/breakdown": {"by", "by2", "since", "until", "where"},
    "/api/usage/billing": {"by", "by2", "since", "until", "month", "where", "format"},
    "/api/usage/users/{user}": {"user", "month"},
    "/api/usage/endpoints": {"since", "until", "where"},
    "/api/usage/daily": {"since", "until", "by", "where"},
    "/api/usage/export.csv": {"since", "until", "where"},
    "/api/usage/report": {"by", "since", "until", "where", "format"},
}


def open_request(url: str, body: bytes, sent: int) -> socket.socket:
    """A POST /v1/traces whose body is cut after `sent` bytes (the rest comes later)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {PROTOBUF}\r\nContent-Length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body[:sent])
    return sock


def finish(sock: socket.socket, body: bytes, sent: int) -> int:
    """Send the rest of the body; the status of the answer."""
    with sock:
        sock.sendall(body[sent:])
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


# --- the bearer token ---------------------------------------------------------------------------------------
def test_a_token_guards_every_route_and_is_compared_in_constant_time(
    tmp_path: Path, store_dsn: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(access_module.hmac, "compare_digest", compare_digest)
    with Collector(config(tmp_path, store_dsn, token="s3cret"), store=store) as guarded:
        paths = [
            *REPORT_ROUTES,
            "/v1/traces",
            "/v1/metrics",
            "/metrics",
            "/healthz",
            "/openapi.json",
            "/docs",
            "/",
            "/users",
            "/tenants",
            "/billing",
        ]
        for path in [*paths, "/nowhere"]:
            for method in ("GET", "POST"):
                status, headers, _ = request(
                    guarded.url, method, path.replace("{user}", "u-1"), b"", {"Authorization": "Bearer s3cre"}
                )
                assert status == 401 and headers["www-authenticate"] == 'Bearer realm="spendscope"', path
        # the collector's token, then the store's (none here: a hash compared with a dummy one all the same)
        assert compared and {expected for _, expected in compared} == {b"s3cret", b"0" * 64}
        compared.clear()
        status, _, _ = request(
            guarded.url, "GET", "/openapi.json", headers={"Authorization": "Bearer s3cret"}
        )
        assert status == 200 and compared == [(b"s3cret", b"s3cret")]


# --- body limits --------------------------------------------------------------------------------------------
def test_bodies_over_the_limit_are_refused_before_reading_and_once_decompressed(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    with Collector(config(tmp_path, store_dsn, max_body_bytes=4096), store=store) as small:
        body = payload(make_spans(2))
        assert len(body) <= 4096
        status, _, _ = request(small.url, "POST", "/v1/traces", body, {"Content-Type": PROTOBUF})
        assert status == 200
        status, headers, answer = request(
            small.url, "POST", "/v1/traces", body + bytes(4097 - len(body)), {"Content-Type": PROTOBUF}
        )
        assert (status, headers["connection"]) == (413, "close")
        assert "body of 4097 bytes is over the limit of 4096" in status_message(answer)
        bomb = gzip.compress(body + bytes(8000))
        assert len(bomb) < 4096
        status, _, answer = request(
            small.url, "POST", "/v1/traces", bomb, {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}
        )
        assert status == 413 and "larger than 4096 bytes once decompressed" in status_message(answer)
        assert metric(small, "spendscope_collector_requests_total", path="/v1/traces", code="413") == 2
        wait_for(lambda: rows(store) == 2)


# --- graceful shutdown --------------------------------------------------------------------------------------
def test_stopping_answers_requests_in_flight_then_drains_the_queue(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    settings = config(tmp_path, store_dsn, flush_interval=3600, batch_spans=10_000)
    running = Collector(settings, store=store).start()
    body = payload(make_spans(30))
    queued = payload(make_spans(20))
    status, _, _ = request(running.url, "POST", "/v1/traces", queued, {"Content-Type": PROTOBUF})
    assert status == 200 and rows(store) == 0  # queued: the batch waits for 10,000 spans or an hour
    in_flight = open_request(running.url, body, len(body) // 2)
    stopping = threading.Thread(target=running.stop)
    stopping.start()
    time.sleep(0.5)
    assert stopping.is_alive()  # waiting for the request in flight
    with pytest.raises(OSError):  # and taking no new connection
        request(running.url, "GET", "/healthz")
    assert finish(in_flight, body, len(body) // 2) == 200
    stopping.join(30)
    assert not stopping.is_alive()
    assert rows(store) == 50  # everything answered 200 was written before stop() returned


def test_sigterm_answers_the_request_in_flight_and_writes_what_was_accepted(tmp_path: Path) -> None:
    collector = Running(tmp_path, "sigterm", "--batch-spans", "100000", "--queue-spans", "100000")
    collector.export(12)
    body = payload(make_spans(40))
    in_flight = open_request(collector.url, body, 100)
    collector.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert collector.process.poll() is None
    assert finish(in_flight, body, 100) == 200
    assert collector.process.wait(30) == 0
    collector.log.close()
    with open_store(str(collector.data)) as stored:  # its server keeps running
        assert stored.query("SELECT count() FROM otel_traces").rows == [[52]]
    assert not list((tmp_path / "spool").glob("*.batch"))


# --- OpenAPI and docs ---------------------------------------------------------------------------------------
def test_openapi_describes_every_reports_route_with_its_parameters(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    with Collector(config(tmp_path, store_dsn), store=store) as running:
        status, headers, body = request(running.url, "GET", "/openapi.json")
        assert status == 200 and headers["content-type"] == "application/json"
        document: dict[str, Any] = json.loads(body)
        assert document["openapi"].startswith("3.")
        assert set(document["paths"]) == set(REPORT_ROUTES)  # OTLP, /metrics, /healthz: not in it
        for path, parameters in REPORT_ROUTES.items():
            operation = document["paths"][path]["get"]
            assert {p["name"] for p in operation["parameters"]} == parameters, path
            assert {"200", "400", "401", "403", "503"} <= set(operation["responses"]), path
        report = {p["name"]: p for p in document["paths"]["/api/usage/report"]["get"]["parameters"]}
        assert report["by"]["required"] and report["format"]["schema"]["enum"] == ["json", "csv"]
        users = {p["name"]: p for p in document["paths"]["/api/usage/users"]["get"]["parameters"]}
        assert users["limit"]["schema"] == {
            "type": "integer",
            "maximum": 1000,
            "minimum": 1,
            "description": "users per page",
            "default": 10,
            "title": "Limit",
        }
        assert users["sort"]["schema"]["enum"] == [
            "user",
            "calls",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "unpriced_calls",
            "error_calls",
        ]
        assert document["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
        assert document["security"] == [{}, {"bearer": []}]  # no token set: optional


def test_the_docs_page_loads_everything_from_the_collector(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    with Collector(config(tmp_path, store_dsn), store=store) as running:
        status, headers, body = request(running.url, "GET", "/docs")
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    for path in REPORT_ROUTES:
        assert f"<code>{path}</code>" in page
    assert "href='/openapi.json'" in page
    assert "http:" not in page and "https:" not in page and "//" not in page.replace("://", "")
    assert "<script" not in page and "src=" not in page
