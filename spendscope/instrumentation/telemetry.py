"""Spans and metrics for LLM calls: one `Telemetry` per (tracer provider, meter provider), one `LLMCall`
per OpenAI call. Instruments are created once, in `Telemetry.__init__`.

This module knows nothing of what wraps the SDK: the `Instrumentation` that creates a `Telemetry` hands
it the registry where calls of background responses wait (`Pending`), and each call gets it from there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from spendscope import names as n
from spendscope._internal import internal_error
from spendscope._version import __version__
from spendscope.attribution import Attribution, current
from spendscope.instrumentation.client_info import ClientInfo, ClientInfos
from spendscope.instrumentation.counters import SummedCounter
from spendscope.usage import TokenUsage

if TYPE_CHECKING:  # genai-prices and pydantic are loaded when instrumenting, not when importing
    from spendscope.pricing import Pricer


def _service_name(tracer_provider: Any, configured: str | None) -> str:
    """The provider's resource's service.name, else the `service_name` setting (OTEL_SERVICE_NAME)."""
    resource = getattr(tracer_provider, "resource", None)
    name = resource.attributes.get("service.name") if resource is not None else None
    if isinstance(name, str) and name:
        return name
    return configured or "unknown_service"


class Pending(Protocol):
    """Where a call whose response runs on in the background waits for its usage
    (`background.PendingCalls`)."""

    def park(self, response_id: str, call: LLMCall) -> None: ...


class UserLabels:
    """Caps the distinct values of the `user` metric label; later users share `__other__`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def label(self, user: str) -> str | None:
        """The label for `user`, or None when it overflows the cap."""
        if user in self._seen:
            return user
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(user)
                return user
        return None


_SEMCONV_CACHE_LIMIT = 4096
# the statuses of a Responses API response that has ended (usage, if any, is final)
BACKGROUND_DONE = frozenset({"completed", "incomplete", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class SemconvAttributes:
    duration: dict[str, Any]
    input_tokens: dict[str, Any]
    output_tokens: dict[str, Any]

    @classmethod
    def build(
        cls, operation: str, provider: str, request_model: str, response_model: str | None
    ) -> SemconvAttributes:
        base: dict[str, Any] = {
            n.OPERATION_NAME: operation,
            n.PROVIDER_NAME: provider,
            n.REQUEST_MODEL: request_model,
        }
        if response_model:
            base[n.RESPONSE_MODEL] = response_model
        return cls(
            base,
            {**base, n.TOKEN_TYPE: n.TOKEN_TYPE_INPUT},
            {**base, n.TOKEN_TYPE: n.TOKEN_TYPE_OUTPUT},
        )


class Telemetry:
    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
        *,
        pricer: Pricer,
        user_label_limit: int,
        pending: Pending,
        inject_stream_usage: bool = True,
        service_name: str | None = None,
        raise_internal_errors: bool = False,
    ) -> None:
        self.raise_internal_errors = raise_internal_errors  # spendscope/_internal.py
        self.tracer = trace.get_tracer(
            "spendscope", __version__, tracer_provider, schema_url=n.SEMCONV_SCHEMA_URL
        )
        meter = metrics.get_meter("spendscope", __version__, meter_provider, schema_url=n.SEMCONV_SCHEMA_URL)
        self.pricer = pricer
        self.pending = pending
        self.inject_stream_usage = inject_stream_usage
        self.users = UserLabels(user_label_limit)
        self.clients = ClientInfos()
        self._semconv: dict[tuple[str, str, str, str | None], SemconvAttributes] = {}
        self.service = _service_name(tracer_provider or trace.get_tracer_provider(), service_name)
        self.cost = SummedCounter(
            meter,
            n.METRIC_COST,
            unit="{USD}",
            description="Cost of LLM calls in US dollars, as priced by SpendScope.",
        )
        self.tokens = SummedCounter(
            meter,
            n.METRIC_TOKENS,
            unit="{token}",
            description="Tokens used by LLM calls, by type; types overlap (cached_input is within input).",
        )
        self.unpriced_tokens = SummedCounter(
            meter,
            n.METRIC_UNPRICED_TOKENS,
            unit="{token}",
            description="Tokens of calls whose model has no known price (their cost is unknown, not zero).",
        )
        self.usage_unavailable = SummedCounter(
            meter,
            n.METRIC_USAGE_UNAVAILABLE,
            unit="{call}",
            description="Calls that got a response but no usage (for example a stream abandoned early).",
        )
        self.errors = SummedCounter(
            meter,
            n.METRIC_INSTRUMENTATION_ERRORS,
            unit="{error}",
            description="Failures inside SpendScope; the instrumented calls were not affected.",
        )
        self.user_overflow = SummedCounter(
            meter,
            n.METRIC_USER_LABEL_OVERFLOW,
            unit="{call}",
            description="Calls whose user label was replaced by __other__ (user label cardinality cap).",
        )
        self.token_usage = meter.create_histogram(
            n.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(n.TOKEN_BUCKETS),
        )
        self.duration = meter.create_histogram(
            n.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(n.DURATION_BUCKETS),
        )

    def semconv_attributes(
        self, operation: str, provider: str, request_model: str, response_model: str | None
    ) -> SemconvAttributes:
        """The semconv histograms' attribute sets for one model pair, built once: the SDK copies what
        it is given, so the same dicts serve every call."""
        key = (operation, provider, request_model, response_model)
        cached = self._semconv.get(key)
        if cached is None:
            cached = SemconvAttributes.build(*key)
            if len(self._semconv) >= _SEMCONV_CACHE_LIMIT:
                self._semconv.clear()
            self._semconv[key] = cached
        return cached

    def count_error(self, where: str) -> None:
        self.errors.add(1, ((n.LABEL_WHERE, where), (n.LABEL_SERVICE, self.service)))

    def start_call(
        self,
        operation: str,
        api_type: str,
        request_model: str,
        client: Any,
        *,
        stream: bool = False,
        service_tier: str | None = None,
        attribution: Attribution | None = None,
        start_ns: int | None = None,
        batch: bool = False,
    ) -> LLMCall:
        return LLMCall(
            self,
            operation,
            api_type,
            request_model,
            self.clients.get(client),
            attribution if attribution is not None else current(),
            pending=self.pending,
            stream=stream,
            service_tier=service_tier,
            start_ns=start_ns,
            batch=batch,
        )


# The telemetry an SDK call records to, from the call's client: None when it is not instrumented.
Lookup = Callable[[Any], Telemetry | None]


class LLMCall:
    """The telemetry of one call: a CLIENT span opened at the start, closed exactly once by `finish`."""

    __slots__ = (
        "_done",
        "attribution",
        "batch",
        "client",
        "first_chunk_ns",
        "hide_usage_chunk",
        "in_background",
        "operation",
        "pending",
        "request_model",
        "response_id",
        "response_model",
        "service_tier",
        "span",
        "start_ns",
        "telemetry",
        "usage",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        operation: str,
        api_type: str,
        request_model: str,
        client: ClientInfo,
        attribution: Attribution,
        *,
        pending: Pending,
        stream: bool,
        service_tier: str | None,
        start_ns: int | None,
        batch: bool = False,
    ) -> None:
        self.telemetry = telemetry
        self.pending = pending
        self.batch = batch
        self.operation = operation
        self.request_model = request_model
        self.client = client
        self.attribution = attribution
        self.start_ns = start_ns if start_ns is not None else time.time_ns()
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.service_tier: str | None = None
        self.usage: TokenUsage | None = None
        self.hide_usage_chunk = False
        self.in_background = False  # a background Response still running at OpenAI (see `end`)
        self.first_chunk_ns: int | None = None
        self._done = False
        attributes: dict[str, Any] = {
            n.OPERATION_NAME: operation,
            n.PROVIDER_NAME: client.provider,
            n.REQUEST_MODEL: request_model,
            n.OPENAI_API_TYPE: api_type,
            **client.attributes,
        }
        if stream:
            attributes[n.REQUEST_STREAM] = True
        if batch:
            attributes[n.BATCH] = True
        if service_tier and service_tier != "auto":
            attributes[n.OPENAI_REQUEST_SERVICE_TIER] = service_tier
        if attribution.user is not None:
            attributes[n.USER_ID] = attribution.user
        if attribution.endpoint is not None:
            attributes[n.ENDPOINT] = attribution.endpoint
        if attribution.tenant is not None:
            attributes[n.TENANT] = attribution.tenant
        for key, value in attribution.extra.items():
            attributes[n.EXTRA_PREFIX + key] = value
        for key, quantity in attribution.quantities.items():
            attributes[n.QUANTITY_PREFIX + key] = quantity
        self.span = telemetry.tracer.start_span(
            f"{operation} {request_model}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=self.start_ns,
        )

    def note_response(self, obj: Any) -> None:
        """Take model, id and service tier from a response, chunk or event payload (or its JSON)."""
        if isinstance(obj, dict):
            model, response_id, tier = obj.get("model"), obj.get("id"), obj.get("service_tier")
        else:
            model = getattr(obj, "model", None)
            response_id = getattr(obj, "id", None)
            tier = getattr(obj, "service_tier", None)
        if isinstance(model, str) and model:
            self.response_model = model
        if isinstance(response_id, str) and response_id:
            self.response_id = response_id
        if isinstance(tier, str) and tier:
            self.service_tier = tier

    def note_background(self, response: Any) -> None:
        """A Responses API response (or event's): whether it runs on in the background, unfinished."""
        if getattr(response, "background", None) is True:
            self.in_background = getattr(response, "status", None) not in BACKGROUND_DONE

    def end(self, error: BaseException | None = None) -> None:
        """The caller is done with the call's result (read, broken, closed or collected): finish it,
        unless it is a background response still running at OpenAI without usage yet, whose call then
        waits in `pending` for the retrieve, cancel or resumed stream that sees it end (background.py)."""
        if self.in_background and self.usage is None and self.response_id and not self._done:
            self.pending.park(self.response_id, self)
        else:
            self.finish(error=error)

    def finish(self, *, error: BaseException | None = None, responded: bool = True) -> None:
        """End the span and record metrics, once. `responded` is False when the request itself failed."""
        if self._done:
            return
        self._done = True
        try:
            self._record(error, responded)
        except Exception:
            try:
                internal_error("finish", self.telemetry)
            finally:
                if self.span.is_recording():  # not ended yet
                    self.span.end()

    def _record(self, error: BaseException | None, responded: bool) -> None:
        t = self.telemetry
        # A batch request ran at `start_ns` for a time OpenAI does not report: no duration is made up.
        end_ns = self.start_ns if self.batch else time.time_ns()
        model = self.response_model or self.request_model
        attribution = self.attribution
        semconv = t.semconv_attributes(
            self.operation, self.client.provider, self.request_model, self.response_model
        )
        end: dict[str, Any] = {}  # span attributes, set in one call
        if self.response_model:
            end[n.RESPONSE_MODEL] = self.response_model
        if self.response_id:
            end[n.RESPONSE_ID] = self.response_id
        if self.service_tier:
            end[n.OPENAI_RESPONSE_SERVICE_TIER] = self.service_tier
        if self.first_chunk_ns is not None:
            end[n.RESPONSE_TIME_TO_FIRST_CHUNK] = (self.first_chunk_ns - self.start_ns) / 1e9

        duration_attrs = semconv.duration
        if error is not None:
            error_type = type(error).__qualname__
            duration_attrs = {**duration_attrs, n.ERROR_TYPE: error_type}
            end[n.ERROR_TYPE] = error_type
            status_code = getattr(error, "status_code", None)
            if isinstance(status_code, int):
                end[n.HTTP_RESPONSE_STATUS_CODE] = status_code
            self.span.set_status(Status(StatusCode.ERROR, f"{error_type}: {error}"[:1024]))
        if not self.batch:
            t.duration.record((end_ns - self.start_ns) / 1e9, duration_attrs)

        labels = (
            (n.LABEL_MODEL, model),
            (n.LABEL_OPERATION, self.operation),
            (n.LABEL_ENDPOINT, attribution.endpoint or ""),
            (n.LABEL_TENANT, attribution.tenant or ""),
            (n.LABEL_SERVICE, t.service),
        )
        usage = self.usage
        if usage is None:
            end[n.USAGE_STATE] = n.USAGE_STATE_UNAVAILABLE
            if responded:
                t.usage_unavailable.add(1, labels)
            self.span.set_attributes(end)
            self.span.end(end_ns)
            return

        end.update(_usage_attributes(usage))
        end[n.USAGE_STATE] = n.USAGE_STATE_REPORTED
        t.tokens.add_all((count, (*labels, (n.LABEL_TYPE, kind))) for kind, count in _token_counts(usage))
        if usage.audio_seconds is None:
            t.token_usage.record(usage.input, semconv.input_tokens)
            t.token_usage.record(usage.output, semconv.output_tokens)

        at = datetime.fromtimestamp(self.start_ns / 1e9, UTC)
        price = t.pricer.price(
            model, usage, at=at, service_tier=self.service_tier, batch=self.batch, fallback=self.request_model
        )
        if price is None:
            if usage.input or usage.output:
                t.unpriced_tokens.add(usage.input + usage.output, labels)
        else:
            # an exact decimal string: the store compares it with its own price of the call
            end[n.COST_USD] = format(price.cost_usd.normalize(), "f")
            end[n.PRICE_VERSION] = price.version
            if price.model != model:
                end[n.PRICE_MODEL] = price.model
            t.cost.add(float(price.cost_usd), (*labels, (n.LABEL_USER, self._user_label())))
        self.span.set_attributes(end)
        self.span.end(end_ns)

    def _user_label(self) -> str:
        user = self.attribution.user
        if user is None:
            return ""
        label = self.telemetry.users.label(user)
        if label is None:
            self.telemetry.user_overflow.add(1, ((n.LABEL_SERVICE, self.telemetry.service),))
            return n.USER_OVERFLOW_VALUE
        return label


def _usage_attributes(usage: TokenUsage) -> dict[str, Any]:
    if usage.audio_seconds is not None:
        return {n.USAGE_AUDIO_SECONDS: usage.audio_seconds}
    attributes: dict[str, Any] = {
        n.USAGE_INPUT_TOKENS: usage.input,
        n.USAGE_OUTPUT_TOKENS: usage.output,
        n.USAGE_CACHE_READ_INPUT_TOKENS: usage.cached_input,
        n.USAGE_REASONING_OUTPUT_TOKENS: usage.reasoning,
    }
    if usage.cache_write_input:
        attributes[n.USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write_input
    if usage.input_audio:
        attributes[n.USAGE_AUDIO_INPUT_TOKENS] = usage.input_audio
    if usage.cached_input_audio:
        attributes[n.USAGE_AUDIO_CACHE_READ_INPUT_TOKENS] = usage.cached_input_audio
    if usage.output_audio:
        attributes[n.USAGE_AUDIO_OUTPUT_TOKENS] = usage.output_audio
    return attributes


def _token_counts(usage: TokenUsage) -> list[tuple[str, int]]:
    counts = [(n.TOKEN_TYPE_INPUT, usage.input), (n.TOKEN_TYPE_OUTPUT, usage.output)]
    for token_type, count in (
        (n.TOKEN_TYPE_CACHED_INPUT, usage.cached_input),
        (n.TOKEN_TYPE_CACHE_WRITE_INPUT, usage.cache_write_input),
        (n.TOKEN_TYPE_REASONING, usage.reasoning),
        (n.TOKEN_TYPE_INPUT_AUDIO, usage.input_audio),
        (n.TOKEN_TYPE_OUTPUT_AUDIO, usage.output_audio),
    ):
        if count:
            counts.append((token_type, count))
    return counts
