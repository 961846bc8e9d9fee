"""Measure one subject's per-call overhead on the openai client, inside one virtualenv.

python worker.py --subject baseline|spendscope|otel-genai|openllmetry|openlit --calls N --repeats R
                 [--interleave [--block B]]

Prints one JSON object on stdout (anything the subject prints is sent to stderr).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

SUBJECTS = ("baseline", "otel-floor", "spendscope", "otel-genai", "openllmetry", "openlit")
DISTRIBUTIONS = {
    "spendscope": "spendscope",
    "otel-genai": "opentelemetry-instrumentation-genai-openai",
    "openllmetry": "opentelemetry-instrumentation-openai",
    "openlit": "openlit",
}
MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
PROMPT_TOKENS, COMPLETION_TOKENS, CACHED_TOKENS = 19, 10, 6
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name three primary colours."},
]
TEXT_PIECES = ["Red", ",", " blue", " and", " yellow", "."]
USAGE = {
    "prompt_tokens": PROMPT_TOKENS,
    "completion_tokens": COMPLETION_TOKENS,
    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
HEADERS = {
    "x-request-id": "req_bench0000000000000000000000",
    "openai-organization": "org-bench",
    "openai-processing-ms": "212",
    "openai-version": "2020-10-01",
}
# OpenLIT's price format: USD per 1K tokens.
OPENLIT_PRICE = {"promptPrice": 0.00015, "completionPrice": 0.0006, "cacheReadPrice": 0.000075}


def _completion_body() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1735689600,
            "model": RESPONSE_MODEL,
            "system_fingerprint": "fp_0000000000",
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(TEXT_PIECES), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    ).encode()


def _sse_events(include_usage: bool) -> bytes:
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1735689600,
        "model": RESPONSE_MODEL,
        "system_fingerprint": "fp_0000000000",
        "service_tier": "default",
    }
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
    deltas += [{"content": piece} for piece in TEXT_PIECES[:-1]]
    chunks = [
        {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}], **extra}
        for d in deltas
    ]
    last = {"content": TEXT_PIECES[-1]}
    chunks.append(
        {**base, "choices": [{"index": 0, "delta": last, "logprobs": None, "finish_reason": "stop"}], **extra}
    )
    if include_usage:
        chunks.append({**base, "choices": [], "usage": USAGE})
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


class FakeOpenAI:
    """httpx2 MockTransport handler: a fixed chat completion, or its SSE stream."""

    def __init__(self) -> None:
        self.completion = _completion_body()
        self.stream = {flag: _sse_events(flag) for flag in (False, True)}
        self.last_include_usage: bool | None = None

    def __call__(self, request: Any) -> Any:
        import httpx2

        body = json.loads(request.content)
        if not body.get("stream"):
            headers = {**HEADERS, "content-type": "application/json"}
            return httpx2.Response(200, content=self.completion, headers=headers)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.last_include_usage = include_usage
        headers = {**HEADERS, "content-type": "text/event-stream"}
        return httpx2.Response(200, content=self.stream[include_usage], headers=headers)


class Telemetry:
    """The same in-memory OTel SDK setup for every subject, set globally."""

    def __init__(self) -> None:
        from opentelemetry import _logs, metrics, trace
        from opentelemetry.sdk import _logs as sdk_logs
        from opentelemetry.sdk._logs import export as logs_export
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.logs = logs_export.InMemoryLogRecordExporter()
        self.logger_provider = sdk_logs.LoggerProvider()
        self.logger_provider.add_log_record_processor(logs_export.SimpleLogRecordProcessor(self.logs))
        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(self.meter_provider)
        _logs.set_logger_provider(self.logger_provider)

    def clear(self) -> None:
        self.spans.clear()
        self.logs.clear()

    def metric_names(self) -> list[str]:
        data = self.reader.get_metrics_data()
        names = {
            m.name
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
        return sorted(names)


# What SpendScope records for this call (its span's attributes, its semconv histogram attribute sets),
# as constants: the "otel-floor" subject makes only these SDK calls.
FLOOR_START = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": MODEL,
    "openai.api.type": "chat_completions",
    "server.address": "bench.invalid",
    "server.port": 80,
    "openai.api_key.redacted": "sk-proj-...0000",
}
FLOOR_END = {
    "gen_ai.response.model": RESPONSE_MODEL,
    "gen_ai.response.id": "chatcmpl-bench",
    "openai.response.service_tier": "default",
    "gen_ai.usage.input_tokens": PROMPT_TOKENS,
    "gen_ai.usage.output_tokens": COMPLETION_TOKENS,
    "gen_ai.usage.cache_read.input_tokens": CACHED_TOKENS,
    "gen_ai.usage.reasoning.output_tokens": 0,
    "spendscope.usage.state": "reported",
    "spendscope.cost.usd": 5.55e-6,
    "spendscope.price.version": "genai-prices",
}
FLOOR_SEMCONV = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": MODEL,
    "gen_ai.response.model": RESPONSE_MODEL,
}


def install_floor(tel: Telemetry) -> None:
    """The OpenTelemetry SDK work SpendScope does per call and nothing else: one span with its
    attributes (constants), the three semantic-convention histogram records. No parsing, pricing,
    counters or stream handling (a stream's span ends when the call returns): what an instrumentation
    that records this much cannot go below with this SDK."""
    from openai.resources.chat.completions import Completions
    from opentelemetry.trace import SpanKind

    tracer = tel.tracer_provider.get_tracer("otel-floor")
    meter = tel.meter_provider.get_meter("otel-floor")
    tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    token_attrs = [{**FLOOR_SEMCONV, "gen_ai.token.type": kind} for kind in ("input", "output")]
    original = Completions.create

    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        span = tracer.start_span(f"chat {MODEL}", kind=SpanKind.CLIENT, attributes=FLOOR_START)
        result = original(self, *args, **kwargs)
        duration.record(0.001, FLOOR_SEMCONV)
        tokens.record(PROMPT_TOKENS, token_attrs[0])
        tokens.record(COMPLETION_TOKENS, token_attrs[1])
        span.set_attributes(FLOOR_END)
        span.end()
        return result

    Completions.create = create  # type: ignore[method-assign]


def instrument(subject: str, tel: Telemetry) -> None:
    providers = {"tracer_provider": tel.tracer_provider, "meter_provider": tel.meter_provider}
    if subject == "baseline":
        return  # A/A run: the "instrumented" phase is uninstrumented again; shows the noise floor.
    if subject == "otel-floor":
        install_floor(tel)
        return
    if subject == "spendscope":
        import spendscope

        spendscope.instrument_openai(**providers)
    elif subject == "otel-genai":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(**providers, logger_provider=tel.logger_provider)
    elif subject == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as TraceloopInstrumentor

        TraceloopInstrumentor().instrument(**providers, logger_provider=tel.logger_provider)
    elif subject == "openlit":
        import openlit

        # openlit.init() takes no providers; it reuses the global SDK ones set above. A local price
        # file stops its fetch of pricing.json from GitHub at init.
        prices = Path(tempfile.mkdtemp()) / "pricing.json"
        prices.write_text(json.dumps({"chat": {MODEL: OPENLIT_PRICE, RESPONSE_MODEL: OPENLIT_PRICE}}))
        openlit.init(capture_message_content=False, pricing_json=str(prices), disable_batch=True)
    else:
        raise ValueError(f"unknown subject {subject!r}")


def make_client(handler: FakeOpenAI) -> Any:
    import httpx2
    import openai

    return openai.OpenAI(
        api_key="sk-proj-bench0000",
        base_url="http://bench.invalid/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )


def workloads(client: Any) -> dict[str, Callable[[], object]]:
    # `create` is looked up on every call, so that --interleave can swap the class attribute.
    def non_stream() -> object:
        return client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.2)

    def stream() -> object:
        last = None
        for chunk in client.chat.completions.create(
            model=MODEL, messages=MESSAGES, temperature=0.2, stream=True
        ):
            last = chunk
        return last

    return {"non-stream": non_stream, "stream": stream}


def timed(fn: Callable[[], object], calls: int, tel: Telemetry) -> float:
    """Microseconds per call over one repeat of `calls` calls."""
    tel.clear()
    gc.collect()
    # CPU time of the whole process (every thread), not wall time: other processes on a shared
    # machine then barely move the figures, and work an instrumentation does in its own threads counts.
    start = time.process_time_ns()
    for _ in range(calls):
        fn()
    return (time.process_time_ns() - start) / calls / 1000


def warm_up(fn: Callable[[], object], calls: int) -> None:
    for _ in range(max(50, calls // 10)):
        fn()


def measure(fn: Callable[[], object], calls: int, repeats: int, tel: Telemetry) -> list[float]:
    warm_up(fn, calls)
    return [timed(fn, calls, tel) for _ in range(repeats)]


class Swap:
    """Puts the original or the instrumented `Completions.create` on the class (for --interleave)."""

    def __init__(self) -> None:
        from openai.resources.chat.completions import Completions

        self.owner = Completions
        self.original = vars(Completions)["create"]
        self.instrumented = self.original

    def __call__(self, instrumented: bool) -> None:
        self.owner.create = self.instrumented if instrumented else self.original


def timed_pair(
    fn: Callable[[], object], calls: int, block: int, tel: Telemetry, swap: Swap
) -> dict[bool, float]:
    """Microseconds per call, baseline and instrumented, over one repeat of `calls` calls each, run in
    alternating blocks of `block` calls (AB, BA, ...): both sides see the same moments of the machine."""
    tel.clear()
    gc.collect()
    spent = {False: 0, True: 0}
    clock = time.process_time_ns
    for b in range(max(1, calls // block)):
        for instrumented in (False, True) if b % 2 == 0 else (True, False):
            swap(instrumented)
            start = clock()
            for _ in range(block):
                fn()
            spent[instrumented] += clock() - start
    n = max(1, calls // block) * block
    return {side: ns / n / 1000 for side, ns in spent.items()}


def measure_interleaved(
    fn: Callable[[], object], calls: int, repeats: int, tel: Telemetry, swap: Swap, block: int
) -> tuple[list[float], list[float]]:
    """Alternate baseline and instrumented blocks within each repeat so drift in the machine hits both."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for instrumented in (False, True):
        swap(instrumented)
        warm_up(fn, calls)
    for _ in range(repeats):
        for side, us in timed_pair(fn, calls, block, tel, swap).items():
            times[side].append(us)
    swap(True)
    return times[False], times[True]


def _is_tokens(key: str, kind: str) -> bool:
    k = key.lower()
    if "cache" in k or "reasoning" in k or "total" in k or not ("token" in k and "usage" in k):
        return False
    return (kind == "in" and ("input" in k or "prompt" in k)) or (
        kind == "out" and ("output" in k or "completion" in k)
    )


def capture(fn: Callable[[], object], tel: Telemetry, handler: FakeOpenAI) -> dict[str, Any]:
    """What the subject records for one call: span attribute keys, token counts, cost, cached."""
    tel.clear()
    handler.last_include_usage = None
    fn()
    spans = list(tel.spans.get_finished_spans())
    attrs: dict[str, Any] = {}
    for span in spans:
        attrs.update(dict(span.attributes or {}))
    tokens_in = [v for k, v in attrs.items() if _is_tokens(k, "in")]
    tokens_out = [v for k, v in attrs.items() if _is_tokens(k, "out")]
    if not tokens_in or not tokens_out:
        tokens = "no"
    elif PROMPT_TOKENS in tokens_in and COMPLETION_TOKENS in tokens_out:
        tokens = "exact"
    else:
        tokens = f"estimated ({tokens_in[0]}/{tokens_out[0]} vs {PROMPT_TOKENS}/{COMPLETION_TOKENS})"
    costs = {k: v for k, v in attrs.items() if "cost" in k.lower() and isinstance(v, int | float) and v > 0}
    cached = {k: v for k, v in attrs.items() if "cache" in k.lower() and v == CACHED_TOKENS}
    return {
        "spans": [s.name for s in spans],
        "attribute_keys": sorted(attrs),
        "log_records": len(tel.logs.get_finished_logs()),
        "tokens": tokens,
        "cost": costs,
        "cached": sorted(cached),
        "injected_include_usage": handler.last_include_usage,
    }


def run(subject: str, calls: int, repeats: int, interleave: bool, block: int) -> dict[str, Any]:
    result: dict[str, Any] = {"subject": subject, "calls": calls, "repeats": repeats}
    result["interleaved"] = interleave
    result["block"] = block if interleave else None
    versions = {}
    for dist in ("openai", "httpx2", "opentelemetry-sdk", DISTRIBUTIONS.get(subject)):
        if dist:
            try:
                versions[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                versions[dist] = None
    result["versions"] = versions
    result["python"] = platform.python_version()
    tel = Telemetry()
    handler = FakeOpenAI()
    swap = Swap() if interleave else None  # takes the original create before instrumenting
    base: dict[str, list[float]] = {}
    if swap is None:
        base = {
            name: measure(fn, calls, repeats, tel) for name, fn in workloads(make_client(handler)).items()
        }
    try:
        instrument(subject, tel)
        loads = workloads(make_client(handler))
        captured = {name: capture(fn, tel, handler) for name, fn in loads.items()}
        if subject != "baseline" and not captured["non-stream"]["spans"]:
            raise RuntimeError("instrumented, but a chat.completions.create call recorded no span")
        if swap is None:
            instr = {name: measure(fn, calls, repeats, tel) for name, fn in loads.items()}
        else:
            swap.instrumented = vars(swap.owner)["create"]
            swap(False)
            if capture(loads["non-stream"], tel, handler)["spans"]:
                raise RuntimeError("--interleave: still records spans with Completions.create unpatched")
            pairs = {
                name: measure_interleaved(fn, calls, repeats, tel, swap, block) for name, fn in loads.items()
            }
            base = {name: pair[0] for name, pair in pairs.items()}
            instr = {name: pair[1] for name, pair in pairs.items()}
    except Exception as exc:  # a peer that breaks on openai 3.x is a result, not a crash
        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        result["baseline_repeats_us"] = base
        return result
    result["metric_names"] = tel.metric_names()
    result["workloads"] = {}
    for name in loads:
        # The fastest repeat is the one least disturbed by the rest of the machine.
        b, i = min(base[name]), min(instr[name])
        paired = sorted(y - x for x, y in zip(base[name], instr[name], strict=True))
        result["workloads"][name] = {
            "baseline_us": round(b, 2),
            "instrumented_us": round(i, 2),
            "added_us": round(i - b, 2),
            "ratio": round(i / b, 3),
            "added_us_median_of_repeats": round(paired[len(paired) // 2], 2),
            "baseline_repeats_us": [round(x, 2) for x in base[name]],
            "instrumented_repeats_us": [round(x, 2) for x in instr[name]],
            "captured": captured[name],
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subject", choices=SUBJECTS, required=True)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="after instrumenting, alternate uninstrumented and instrumented blocks of calls by swapping "
        "Completions.create (default: all baseline repeats first, then all instrumented ones)",
    )
    parser.add_argument("--block", type=int, default=10, help="--interleave: calls per block (default 10)")
    args = parser.parse_args()
    # Keep content capture off everywhere; no network: anything that tries fails fast.
    os.environ["TRACELOOP_TRACE_CONTENT"] = "false"
    os.environ.pop("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", None)
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"):
        os.environ.pop(var, None)
    socket.setdefaulttimeout(3)
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever a subject prints goes to stderr; stdout carries only our JSON
    try:
        result = run(args.subject, args.calls, args.repeats, args.interleave, args.block)
    except Exception as exc:
        traceback.print_exc()
        result = {"subject": args.subject, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    sys.stdout.flush()
    out.write(json.dumps(result) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
