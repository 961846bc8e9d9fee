"""The local store server killed (SIGKILL) in the middle of ingest, twice, under a steady load from a
real collector process: the collector spools, starts the server again, replays, and every span it
acknowledged is stored exactly once, in `llm_usage FINAL` and in every grain of the `usage` view once
the rollups are built; what was written before a kill is kept."""

from __future__ import annotations

import http.client
import os
import random
import re
import signal
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spendscope import names as n
from spendscope.store import open_store, server
from spendscope.store.rollups import build_rollups
from tests.test_collector import wait_for
from tests.test_collector_process import Running

SPANS_PER_REQUEST = 250
MODEL = "gpt-4o-mini-2024-07-18"


def _kv(key: str, value: str | int) -> KeyValue:
    any_value = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    return KeyValue(key=key, value=any_value)


def request_body(rnd: random.Random, now: datetime) -> tuple[bytes, list[str]]:
    """An OTLP request of SPANS_PER_REQUEST calls, each with ids of its own, started over the last 30
    hours (so that hourly and daily rollup buckets are built); and their span ids."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(_kv("service.name", "fault-app"))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "spendscope"
    ids = []
    for _ in range(SPANS_PER_REQUEST):
        span = scope.spans.add()
        span.trace_id = rnd.randbytes(16)
        span.span_id = rnd.randbytes(8)
        ids.append(span.span_id.hex())
        start = now - timedelta(hours=2, seconds=rnd.randrange(28 * 3600))
        span.start_time_unix_nano = int(start.timestamp() * 1e9)
        span.end_time_unix_nano = span.start_time_unix_nano + 500_000_000
        span.name = f"chat {MODEL}"
        span.kind = 3
        span.attributes.extend(
            [
                _kv(n.OPERATION_NAME, n.OP_CHAT),
                _kv(n.PROVIDER_NAME, n.PROVIDER_OPENAI),
                _kv(n.REQUEST_MODEL, "gpt-4o-mini"),
                _kv(n.RESPONSE_MODEL, MODEL),
                _kv(n.USAGE_INPUT_TOKENS, rnd.randint(10, 5000)),
                _kv(n.USAGE_OUTPUT_TOKENS, rnd.randint(1, 900)),
                _kv(n.USAGE_STATE, n.USAGE_STATE_REPORTED),
                _kv(n.USER_ID, f"u-{rnd.randrange(50)}"),
                _kv(n.TENANT, rnd.choice(["acme", "globex"])),
            ]
        )
    return request.SerializeToString(), ids


class Load:
    """Sends requests back to back from a thread; a span counts as acknowledged once its request is
    answered 200 (a 503 or a broken connection is sent again, as an exporter retries)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.acknowledged: list[str] = []
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self.connection.close()

    def _run(self) -> None:
        rnd, now = random.Random(7), datetime.now(UTC)
        body, ids = request_body(rnd, now)
        while not self._stop.is_set():
            try:
                self.connection.request(
                    "POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"}
                )
                response = self.connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                self.connection.close()
                time.sleep(0.2)
                continue
            if response.status == 200:
                self.acknowledged += ids
                body, ids = request_body(rnd, now)
            else:
                self.refused += 1
                time.sleep(float(response.headers.get("Retry-After", "1")))


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def kill_the_server(directory: Path) -> server.ServerState:
    state = server.running(directory)
    assert state is not None
    os.kill(state.pid, signal.SIGKILL)
    return state


def test_a_store_server_killed_mid_ingest_loses_and_doubles_nothing(tmp_path: Path) -> None:
    collector = Running(tmp_path, "collector", "--batch-spans", "2000")
    data = collector.data
    first = server.running(data)
    assert first is not None
    with Load(collector.url) as load:
        wait_for(lambda: metric(collector.url, "spendscope_collector_written_spans_total") >= 5000, 60)
        with open_store(str(data)) as store:
            kept = {row[0] for row in store.query("SELECT lower(span_id) FROM llm_usage FINAL").rows}
        killed = [kill_the_server(data)]
        wait_for(lambda: metric(collector.url, "spendscope_collector_spooled_spans_total") > 0, 30)
        wait_for(lambda: (s := server.running(data)) is not None and s.pid != killed[-1].pid, 60)
        wait_for(lambda: collector.get("/healthz")["store"] == "up", 60)
        time.sleep(2)  # ingest again, then a second kill, while the first spool may still replay
        killed.append(kill_the_server(data))
        wait_for(lambda: (s := server.running(data)) is not None and s.pid != killed[-1].pid, 60)
        time.sleep(3)
    acknowledged = set(load.acknowledged)
    assert len(acknowledged) == len(load.acknowledged)  # ids of their own
    wait_for(lambda: collector.get("/healthz")["store"] == "up", 60)
    wait_for(lambda: (h := collector.get("/healthz"))["queue_spans"] == 0 and h["spool_batches"] == 0, 60)
    spooled = metric(collector.url, "spendscope_collector_spooled_spans_total")
    replayed = metric(collector.url, "spendscope_collector_replayed_spans_total")
    collector.terminate()
    last = server.running(data)
    assert last is not None and last.http_port == first.http_port  # started again on its port

    with open_store(str(data)) as store:
        stored = {row[0] for row in store.query("SELECT lower(span_id) FROM llm_usage FINAL").rows}
        [[calls, distinct, cost]] = store.query(
            "SELECT count(), uniqExact(trace_id, span_id), sum(cost_usd) FROM llm_usage FINAL"
        ).rows
        [[raw]] = store.query("SELECT count() FROM otel_traces").rows
        build_rollups(store, lag=timedelta(0))
        window = {"since": datetime.now(UTC) - timedelta(days=3), "until": datetime.now(UTC)}
        grains = {
            grain: tuple(
                store.query(
                    "SELECT sum(calls), sum(cost_usd) FROM usage(grain = {g:String}, "
                    "since = {since:DateTime64(6, 'UTC')}, until = {until:DateTime64(6, 'UTC')})",
                    {"g": grain, **window},
                ).rows[0]
            )
            for grain in ("hour", "day", "user_day", "job_day")
        }
        [[built]] = store.query("SELECT count() FROM rollup_builds").rows
        # every bucket of every grain, as its latest published build holds it, against llm_usage
        rollups = {
            (str(grain), bucket): (int(c), cost)
            for grain, bucket, c, cost in store.query(
                "SELECT grain, bucket, sum(calls), sum(cost_usd) FROM llm_usage_rollup WHERE (grain, bucket, "
                "build_id) IN (SELECT grain, bucket, max(build_id) FROM rollup_builds GROUP BY grain, bucket) "
                "GROUP BY grain, bucket"
            ).rows
        }
        buckets = {
            (grain, bucket): (int(c), cost)
            for grain, bucket, c, cost in store.query(
                "SELECT 'hour', toDateTime(toStartOfHour(time), 'UTC') AS b, count(), sum(cost_usd) "
                "FROM llm_usage FINAL GROUP BY b UNION ALL "
                "SELECT 'day', toDateTime(toStartOfDay(time), 'UTC') AS b, count(), sum(cost_usd) "
                "FROM llm_usage FINAL GROUP BY b UNION ALL "
                "SELECT 'user_day', toDateTime(toStartOfDay(time), 'UTC') AS b, count(), sum(cost_usd) "
                "FROM llm_usage FINAL GROUP BY b UNION ALL "
                "SELECT 'job_day', toDateTime(toStartOfDay(time), 'UTC') AS b, count(), sum(cost_usd) "
                "FROM llm_usage FINAL GROUP BY b"
            ).rows
        }
    doubled = calls - distinct
    print(
        f"\nfault: {len(acknowledged)} spans acknowledged, {calls} stored in llm_usage FINAL, {doubled} "
        f"doubled, {len(acknowledged - stored)} lost; {raw - calls} extra raw copies in otel_traces; "
        f"{spooled:.0f} spooled, {replayed:.0f} replayed; {len(kept)} stored before the first kill; "
        f"{len(killed)} kills; {load.refused} requests answered 503"
    )
    assert stored == acknowledged and calls == distinct == len(acknowledged)
    assert kept and kept <= stored  # what was written before the kill survived it
    assert spooled > 0 and replayed > 0 and raw >= calls
    assert built > 0 and grains == {g: (calls, cost) for g in ("hour", "day", "user_day", "job_day")}
    assert rollups == buckets and {g for g, _ in rollups} == {"hour", "day", "user_day", "job_day"}
    log = collector.log_path.read_text()
    assert log.count("had died; started it again") == len(killed), log
