"""Batch API results: one LLM call per request of a batch's output file, priced at the batch rate.

A batch's per-request usage exists only in its output file: one `BatchRequestOutput` per line, whose
`response.body` is the object the synchronous endpoint returns (chat completion, response, embeddings
list), usage included. SpendScope reads it where the app does, in `client.files.content(file_id)`:
when the downloaded file is a batch output, each answered request becomes a span (`spendscope.batch`
= true, timed at the request's `created`, attributed to the `spendscope.attributes()` around the
download) and is priced at the batch rate. Failed requests carry no usage and are not billed.

A file is recorded once per process (its id is remembered, in the `Instrumentation`'s `SeenFiles`),
so polling code that downloads it again does not count it twice. `with_streaming_response` downloads
are not read (the app owns the stream).
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final

from spendscope import names as n
from spendscope._internal import internal_error
from spendscope.attribution import current
from spendscope.instrumentation.telemetry import Lookup, Telemetry
from spendscope.usage import UsageReader, chat_usage, embeddings_usage, responses_usage

# body `object` -> (gen_ai.operation.name, openai.api.type, usage reader)
_BODIES: Final[dict[str, tuple[str, str, UsageReader]]] = {
    "chat.completion": (n.OP_CHAT, "chat_completions", chat_usage),
    "response": (n.OP_CHAT, "responses", responses_usage),
    "list": (n.OP_EMBEDDINGS, "embeddings", embeddings_usage),
    "text_completion": (n.OP_TEXT_COMPLETION, "completions", chat_usage),
}
REMEMBERED_FILES: Final = 10_000

PATCHES: Final = (
    ("openai.resources.files", "Files", "content", False),
    ("openai.resources.files", "AsyncFiles", "content", True),
)


class SeenFiles:
    """The output files already recorded (bounded: the oldest are forgotten first)."""

    def __init__(self, limit: int = REMEMBERED_FILES) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def first_time(self, file_id: str) -> bool:
        with self._lock:
            if file_id in self._ids:
                return False
            self._ids[file_id] = None
            if len(self._ids) > self._limit:
                self._ids.popitem(last=False)
            return True

    def forget(self, file_id: str) -> None:
        with self._lock:
            self._ids.pop(file_id, None)


def is_batch_output(content: bytes) -> bool:
    """Whether a downloaded file is a batch's output (or error) file: its first line is a
    `BatchRequestOutput` object."""
    first = content.lstrip()[:1]
    if first != b"{":
        return False
    line = content.lstrip().split(b"\n", 1)[0]
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    return isinstance(obj, dict) and "custom_id" in obj and "response" in obj


def record_output(telemetry: Telemetry, client: Any, content: bytes) -> int:
    """Record every answered request of a batch output file; returns how many were recorded."""
    attribution = current()
    recorded = 0
    for line in content.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        body = ((item.get("response") or {}) if isinstance(item, dict) else {}).get("body")
        if not isinstance(body, dict):
            continue
        kind = _BODIES.get(str(body.get("object")))
        if kind is None:  # an error body: the request failed and is not billed
            continue
        operation, api_type, read_usage = kind
        created = body.get("created", body.get("created_at"))
        model = body.get("model")
        call = telemetry.start_call(
            operation,
            api_type,
            model if isinstance(model, str) and model else "unknown",
            client,
            attribution=attribution,
            start_ns=int(created * 1_000_000_000) if isinstance(created, int | float) else None,
            batch=True,
        )
        call.note_response(body)
        call.usage = read_usage(body.get("usage"))
        call.finish()
        recorded += 1
    return recorded


def _observe(telemetry: Telemetry, client: Any, file_id: Any, result: Any, seen: SeenFiles) -> None:
    content = getattr(result, "content", None)  # HttpxBinaryResponseContent, or the raw response
    if not isinstance(content, bytes) or not isinstance(file_id, str) or not is_batch_output(content):
        return
    if not seen.first_time(file_id):
        return
    try:
        record_output(telemetry, client, content)
    except Exception:
        seen.forget(file_id)  # not recorded: a later download may try again
        raise


def _file_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("file_id")


def wrap_content(original: Callable[..., Any], *, lookup: Lookup, seen: SeenFiles) -> Any:
    """`Files.content`: the download, returned untouched, then recorded if it is a batch output."""

    @functools.wraps(original)
    def content(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        telemetry = lookup(self._client)
        if telemetry is not None:
            try:
                _observe(telemetry, self._client, _file_id(args, kwargs), result, seen)
            except Exception:
                internal_error("batch_output", telemetry)
        return result

    return content


def wrap_async_content(original: Callable[..., Awaitable[Any]], *, lookup: Lookup, seen: SeenFiles) -> Any:
    @functools.wraps(original)
    async def content(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original(self, *args, **kwargs)
        telemetry = lookup(self._client)
        if telemetry is not None:
            try:
                _observe(telemetry, self._client, _file_id(args, kwargs), result, seen)
            except Exception:
                internal_error("batch_output", telemetry)
        return result

    return content
