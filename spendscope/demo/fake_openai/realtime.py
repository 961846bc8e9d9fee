"""The fake Realtime API: a ``websockets`` sync server speaking the GA event protocol.

Usage on ``response.done`` is the next enqueued usage, else deterministic from the conversation:
input text tokens = ``text_tokens`` of the session instructions plus every item's text so far,
input audio tokens = ``ceil(audio bytes / 4800)`` (10 tokens a second of 24 kHz PCM16),
output text tokens = ``text_tokens`` of the reply transcript, output audio tokens = 3x that when audio
is an output modality; nothing is cached.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from spendscope.demo.fake_openai.synth import text_tokens

REPLY_TRANSCRIPT = "Hello from the fake realtime server."
AUDIO_BYTES_PER_TOKEN = 4800
JSONObject = dict[str, Any]


@dataclass(frozen=True)
class RealtimeConnect:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(10)


def _item_text(item: Mapping[str, Any]) -> str:
    parts = item.get("content") or []
    return "".join(
        str(p.get(k) or "") for p in parts if isinstance(p, Mapping) for k in ("text", "transcript")
    )


def realtime_usage(text_in: int, audio_in: int, text_out: int, audio_out: int) -> JSONObject:
    """A ``realtime.response`` usage object shaped like the API's."""
    return {
        "total_tokens": text_in + audio_in + text_out + audio_out,
        "input_tokens": text_in + audio_in,
        "output_tokens": text_out + audio_out,
        "input_token_details": {
            "text_tokens": text_in,
            "audio_tokens": audio_in,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
    }


class Session:
    """One connection's conversation state; ``handle`` maps a client event to the server events."""

    def __init__(self, model: str, next_usage: Callable[[], JSONObject | None]) -> None:
        self.config: JSONObject = {
            "type": "realtime",
            "object": "realtime.session",
            "id": _id("sess_"),
            "model": model,
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}},
        }
        self.conversation_id = _id("conv_")
        self.items: list[JSONObject] = []
        self.buffered_audio = 0
        self.audio_bytes = 0
        self._next_usage = next_usage

    def handle(self, event: Mapping[str, Any]) -> list[JSONObject]:
        kind = event.get("type")
        if kind == "session.update":
            self.config |= {k: v for k, v in (event.get("session") or {}).items() if k != "type"}
            return [self.event("session.updated", session=self.config)]
        if kind == "conversation.item.create":
            return self._add_item({"id": _id("item_"), "status": "completed"} | dict(event.get("item") or {}))
        if kind == "input_audio_buffer.append":
            self.buffered_audio += len(base64.b64decode(event.get("audio") or ""))
            return []  # the API does not acknowledge appends
        if kind == "input_audio_buffer.commit":
            return self._commit()
        if kind == "input_audio_buffer.clear":
            self.buffered_audio = 0
            return [self.event("input_audio_buffer.cleared")]
        if kind == "response.create":
            return self._respond(event.get("response") or {})
        if kind == "response.cancel":
            return []
        return [
            self.error(f"Invalid value: '{kind}'. Unsupported event type.", event_id=event.get("event_id"))
        ]

    def error(self, message: str, *, event_id: object = None) -> JSONObject:
        error = {
            "type": "invalid_request_error",
            "code": "invalid_value",
            "message": message,
            "param": "type",
        }
        return self.event("error", error=error | {"event_id": event_id})

    def event(self, kind: str, **fields: Any) -> JSONObject:
        return {"type": kind, "event_id": _id("event_"), **fields}

    def _add_item(self, item: JSONObject) -> list[JSONObject]:
        previous = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        return [
            self.event("conversation.item.added", previous_item_id=previous, item=item),
            self.event("conversation.item.done", previous_item_id=previous, item=item),
        ]

    def _commit(self) -> list[JSONObject]:
        item_id = _id("item_")
        previous = self.items[-1]["id"] if self.items else None
        self.audio_bytes += self.buffered_audio
        self.buffered_audio = 0
        content = [{"type": "input_audio", "transcript": None}]
        item = {"id": item_id, "type": "message", "status": "completed", "role": "user", "content": content}
        committed = self.event("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)
        return [committed, *self._add_item(item)]

    def _respond(self, options: Mapping[str, Any]) -> list[JSONObject]:
        modalities = list(options.get("output_modalities") or self.config["output_modalities"])
        audio = "audio" in modalities
        text_in = text_tokens(str(self.config.get("instructions") or ""))
        text_in += sum(text_tokens(_item_text(i)) for i in self.items)
        audio_in = math.ceil(self.audio_bytes / AUDIO_BYTES_PER_TOKEN)
        text_out = text_tokens(REPLY_TRANSCRIPT)
        usage = self._next_usage() or realtime_usage(
            text_in, audio_in, text_out, 3 * text_out if audio else 0
        )

        response_id, item_id = _id("resp_"), _id("item_")
        part_type, delta_type = ("audio", "output_audio_transcript") if audio else ("text", "output_text")
        key = "transcript" if audio else "text"
        response = {
            "object": "realtime.response",
            "id": response_id,
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": self.conversation_id,
            "output_modalities": modalities,
            "max_output_tokens": options.get("max_output_tokens", self.config["max_output_tokens"]),
            "audio": self.config["audio"],
            "usage": None,
            "metadata": options.get("metadata"),
        }
        item = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        done_part = {"type": part_type, key: REPLY_TRANSCRIPT}
        done_item = item | {
            "status": "completed",
            "content": [{"type": f"output_{part_type}", key: REPLY_TRANSCRIPT}],
        }
        half = len(REPLY_TRANSCRIPT) // 2
        events = [
            self.event("response.created", response=response),
            self.event("response.output_item.added", response_id=response_id, output_index=0, item=item),
            self.event(
                "conversation.item.added",
                previous_item_id=self.items[-1]["id"] if self.items else None,
                item=item,
            ),
            self.event("response.content_part.added", **where, part={"type": part_type, key: ""}),
            self.event(f"response.{delta_type}.delta", **where, delta=REPLY_TRANSCRIPT[:half]),
            self.event(f"response.{delta_type}.delta", **where, delta=REPLY_TRANSCRIPT[half:]),
            self.event(f"response.{delta_type}.done", **where, **{key: REPLY_TRANSCRIPT}),
            self.event("response.content_part.done", **where, part=done_part),
            self.event("response.output_item.done", response_id=response_id, output_index=0, item=done_item),
            self.event("conversation.item.done", item=done_item),
            self.event(
                "response.done",
                response=response | {"status": "completed", "output": [done_item], "usage": usage},
            ),
        ]
        self.items.append(done_item)
        return events


class RealtimeServer:
    """Serves ``/v1/realtime`` on its own thread; one thread per connection (the websockets sync model).

    `close()` is the server's own `shutdown()`: it stops accepting, closes the open connections, waits
    for their handlers and releases every socket the server holds (websockets 17 and later).
    """

    def __init__(self, host: str, port: int, *, authorize: Callable[[Mapping[str, str]], bool]) -> None:
        self.events: list[JSONObject] = []
        self.connections: list[RealtimeConnect] = []
        self._authorize = authorize
        self._usages: deque[JSONObject] = deque()
        self._lock = threading.Lock()
        self._server = serve(
            self._handle, host, port, process_request=self._check, ping_interval=None, close_timeout=2
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-openai-ws")
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/v1"

    def enqueue_usage(self, usage: Mapping[str, Any]) -> None:
        with self._lock:
            self._usages.append(dict(usage))

    def _next_usage(self) -> JSONObject | None:
        with self._lock:
            return self._usages.popleft() if self._usages else None

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        headers = _lower(request.headers)
        with self._lock:
            self.connections.append(RealtimeConnect(url.path, dict(parse_qsl(url.query)), headers))
        if url.path != "/v1/realtime":
            return connection.respond(404, f"Invalid URL (GET {url.path})\n")
        if not self._authorize(headers):
            return connection.respond(401, "Incorrect API key provided.\n")
        return None

    def _handle(self, connection: ServerConnection) -> None:
        try:
            request = connection.request
            query = dict(parse_qsl(urlsplit(request.path).query)) if request else {}
            session = Session(query.get("model", "gpt-realtime"), self._next_usage)
            connection.send(json.dumps(session.event("session.created", session=session.config)))
            for message in connection:
                for reply in self._replies(session, message):
                    connection.send(json.dumps(reply))
        except ConnectionClosed:
            pass

    def _replies(self, session: Session, message: str | bytes) -> list[JSONObject]:
        try:
            event = json.loads(message)
        except ValueError:
            return [session.error("The event is not valid JSON.")]
        if not isinstance(event, dict):
            return [session.error("The event must be a JSON object.")]
        with self._lock:
            self.events.append(event)
        try:
            return session.handle(event)
        except Exception as exc:  # a bad event or a fake-server bug: report it, keep the session
            return [
                session.error(
                    f"fake server could not handle the event: {exc!r}", event_id=event.get("event_id")
                )
            ]

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join()


def _lower(headers: Headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.raw_items()}
