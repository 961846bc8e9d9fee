"""Wrappers around the SDK methods: telemetry is kept apart from the call of the original method,
whose result and exceptions pass through untouched."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from spendscope._internal import internal_error
from spendscope.instrumentation.endpoints import Endpoint
from spendscope.instrumentation.streams import observe_async_stream, observe_stream
from spendscope.instrumentation.telemetry import LLMCall, Lookup, Telemetry

# Set while an instrumented call runs, so an SDK method calling another one is recorded once.
_in_call: ContextVar[bool] = ContextVar("spendscope_in_call", default=False)


def _model(kwargs: Mapping[str, Any]) -> str:
    model = kwargs.get("model")
    return model if isinstance(model, str) and model else "unknown"


def _begin(
    telemetry: Telemetry, endpoint: Endpoint, client: Any, kwargs: dict[str, Any]
) -> tuple[LLMCall | None, dict[str, Any]]:
    try:
        stream = kwargs.get("stream") is True
        tier = kwargs.get("service_tier")
        call = telemetry.start_call(
            endpoint.operation,
            endpoint.api_type,
            _model(kwargs),
            client,
            stream=stream,
            service_tier=tier if isinstance(tier, str) else None,
        )
        if stream and endpoint.inject_stream_usage and telemetry.inject_stream_usage:
            kwargs, call.hide_usage_chunk = _ask_for_usage(kwargs)
        return call, kwargs
    except Exception:
        internal_error("start", telemetry)
        return None, kwargs


def _ask_for_usage(kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Ask for the stream's usage chunk unless the caller did; True when we asked (so it is hidden).

    Without `stream_options` from the caller it goes in `extra_body`: the same request body, but the
    SDK does not run its typed-parameter transform over one more field.
    """
    options = kwargs.get("stream_options")
    extra = kwargs.get("extra_body")
    body: Mapping[str, Any] = extra if isinstance(extra, Mapping) else {}
    sent = body.get("stream_options")
    if isinstance(sent, Mapping):  # extra_body wins over stream_options in the request body
        if sent.get("include_usage"):
            return kwargs, False
        return {**kwargs, "extra_body": {**body, "stream_options": {**sent, "include_usage": True}}}, True
    if isinstance(options, Mapping):
        if options.get("include_usage"):
            return kwargs, False
        return {**kwargs, "stream_options": {**options, "include_usage": True}}, True
    if extra is None or (isinstance(extra, Mapping) and "stream_options" not in extra):
        return {**kwargs, "extra_body": {**body, "stream_options": {"include_usage": True}}}, True
    return {**kwargs, "stream_options": {"include_usage": True}}, True


class SDKTypes:
    """The openai classes results are told apart by; imported when instrumenting, not at import."""

    def __init__(self) -> None:
        from openai import AsyncStream, Stream
        from openai._legacy_response import LegacyAPIResponse
        from openai._response import APIResponse, AsyncAPIResponse

        self.stream = Stream
        self.async_stream = AsyncStream
        self.legacy_response = LegacyAPIResponse
        self.api_response = APIResponse
        self.async_api_response = AsyncAPIResponse


def _observe(result: Any, call: LLMCall, endpoint: Endpoint, types: SDKTypes) -> None:
    """Attach telemetry to what the call returned; never raises."""
    try:
        if isinstance(result, types.stream):
            observe_stream(result, call, endpoint.stream_handler, endpoint.read_usage)
        elif isinstance(result, types.async_stream):
            observe_async_stream(result, call, endpoint.stream_handler, endpoint.read_usage)
        elif isinstance(result, types.legacy_response):
            # `with_raw_response`: parse() is cached by the SDK, so the caller gets the same object.
            _observe(result.parse(), call, endpoint, types)
        elif isinstance(result, types.api_response):
            _observe_streamed_response(result, call, endpoint, types)
        elif isinstance(result, types.async_api_response):
            _observe_async_streamed_response(result, call, endpoint, types)
        else:
            call.note_response(result)
            if endpoint.background:
                call.note_background(result)
            call.usage = endpoint.read_usage(getattr(result, "usage", None))
            call.end()
    except Exception:
        internal_error("observe", call.telemetry)
        call.finish()


def _observe_streamed_response(result: Any, call: LLMCall, endpoint: Endpoint, types: SDKTypes) -> None:
    """`with_streaming_response`: usage is known if and when the caller parses the body."""
    parse, close = result.parse, result.close

    def parse_and_observe(**kwargs: Any) -> Any:
        parsed = parse(**kwargs)
        _observe(parsed, call, endpoint, types)
        return parsed

    def close_and_finish() -> None:
        try:
            close()
        finally:
            call.end()

    result.parse, result.close = parse_and_observe, close_and_finish


def _observe_async_streamed_response(result: Any, call: LLMCall, endpoint: Endpoint, types: SDKTypes) -> None:
    parse, close = result.parse, result.close

    async def parse_and_observe(**kwargs: Any) -> Any:
        parsed = await parse(**kwargs)
        _observe(parsed, call, endpoint, types)
        return parsed

    async def close_and_finish() -> None:
        try:
            await close()
        finally:
            call.end()

    result.parse, result.close = parse_and_observe, close_and_finish


def wrap_sync(original: Callable[..., Any], *, endpoint: Endpoint, lookup: Lookup, types: SDKTypes) -> Any:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        telemetry = lookup(self._client)
        if telemetry is None or _in_call.get():
            return original(self, *args, **kwargs)
        call, kwargs = _begin(telemetry, endpoint, self._client, kwargs)
        token = _in_call.set(True)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            if call is not None:
                call.finish(error=exc, responded=False)
            raise
        finally:
            _in_call.reset(token)
        if call is not None:
            _observe(result, call, endpoint, types)
        return result

    return wrapper


def wrap_async(
    original: Callable[..., Awaitable[Any]], *, endpoint: Endpoint, lookup: Lookup, types: SDKTypes
) -> Any:
    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        telemetry = lookup(self._client)
        if telemetry is None or _in_call.get():
            return await original(self, *args, **kwargs)
        call, kwargs = _begin(telemetry, endpoint, self._client, kwargs)
        token = _in_call.set(True)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            if call is not None:
                call.finish(error=exc, responded=False)
            raise
        finally:
            _in_call.reset(token)
        if call is not None:
            _observe(result, call, endpoint, types)
        return result

    return wrapper
