"""The fake OpenAI HTTP server: queued replies first, otherwise realistic defaults from ``synth``."""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import re
import socket
import socketserver
import sys
import threading
import traceback
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from spendscope.demo.fake_openai import synth
from spendscope.demo.fake_openai.realtime import RealtimeConnect, RealtimeServer
from spendscope.demo.fake_openai.stored import NotBackground, StoredResponses

if TYPE_CHECKING:
    from spendscope.demo.fake_openai.conformance import ConformanceCase

MISSING_MODELS = frozenset({"this-model-does-not-exist", "non-existent-embedding-model"})
# Set by the server itself; a queued Reply's headers cannot override them.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class Reply:
    """One queued response. ``json``, ``sse`` and ``body`` are exclusive; none means an empty body."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    sse: str | None = None
    break_after_events: int | None = None
    delay: float = 0.0
    body: bytes | str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.json, self.sse, self.body)) > 1:
            raise ValueError("Reply takes at most one of json=, sse= and body=")
        if self.break_after_events is not None and (self.sse is None or self.break_after_events < 0):
            raise ValueError("break_after_events needs sse= and a count >= 0")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    json: Any  # the parsed JSON body, or None
    form: dict[str, str] | None  # multipart fields; a file field holds its file name


def error_reply(status: int, message: str, *, code: str | None = None, param: str | None = None) -> Reply:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return Reply(
        status=status, json={"error": {"message": message, "type": kind, "param": param, "code": code}}
    )


def sse_text(events: Iterable[tuple[str | None, object]], *, done: bool) -> str:
    """Server-sent events: an ``event:`` line when named, then ``data:``; ``[DONE]`` when asked."""
    lines = [(f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n" for name, data in events]
    return "".join(lines) + ("data: [DONE]\n\n" if done else "")


# (request body, uploaded files, the server's stored responses) -> reply
Route = Callable[[dict[str, Any], Mapping[str, bytes], StoredResponses], Reply]
_STORED_PATH = re.compile(r"/v1/responses/([^/]+)(/cancel)?")


def _chat(body: dict[str, Any], files: Mapping[str, bytes], stored: StoredResponses) -> Reply:
    if body.get("stream"):
        return Reply(sse=sse_text(((None, c) for c in synth.chat_completion_chunks(body)), done=True))
    return Reply(json=synth.chat_completion(body))


def _responses(body: dict[str, Any], files: Mapping[str, bytes], stored: StoredResponses) -> Reply:
    if body.get("background") is True:
        if body.get("stream"):
            return Reply(sse=sse_text(stored.stream_background(body), done=False))
        return Reply(json=stored.start_background(body))
    if body.get("stream"):
        events = synth.response_events(body)
        stored.remember(events[-1][1]["response"], body)
        return Reply(sse=sse_text(events, done=False))
    response = synth.response_object(body)
    stored.remember(response, body)
    return Reply(json=response)


def _response_by_id(request: RecordedRequest, stored: StoredResponses) -> Reply | None:
    """``/v1/responses/{id}`` and ``/v1/responses/{id}/cancel``; None when the path is not one of them."""
    match = _STORED_PATH.fullmatch(request.path)
    if match is None:
        return None
    response_id, cancel = match.group(1), match.group(2) is not None
    try:
        if cancel and request.method == "POST":
            found = stored.cancel(response_id)
        elif not cancel and request.method == "DELETE":
            if not stored.delete(response_id):
                return _not_found(response_id)
            return Reply(json={"id": response_id, "object": "response.deleted", "deleted": True})
        elif not cancel and request.method == "GET" and request.query.get("stream") == "true":
            after = request.query.get("starting_after")
            if after is not None and not after.isdigit():
                return error_reply(400, "'starting_after' must be an integer.", param="starting_after")
            events = stored.stream(response_id, int(after) if after is not None else None)
            return _not_found(response_id) if events is None else Reply(sse=sse_text(events, done=False))
        elif not cancel and request.method == "GET":
            found = stored.retrieve(response_id)
        else:
            return None
    except NotBackground as exc:
        return error_reply(400, str(exc))
    return _not_found(response_id) if found is None else Reply(json=found)


def _not_found(response_id: str) -> Reply:
    return error_reply(404, f"Response with id '{response_id}' not found.")


def _completions(body: dict[str, Any], files: Mapping[str, bytes], stored: StoredResponses) -> Reply:
    if body.get("stream"):
        return Reply(sse=sse_text(((None, c) for c in synth.text_completion_chunks(body)), done=True))
    return Reply(json=synth.text_completion(body))


def _embeddings(body: dict[str, Any], files: Mapping[str, bytes], stored: StoredResponses) -> Reply:
    try:
        return Reply(json=synth.embeddings(body))
    except ValueError as exc:
        return error_reply(400, str(exc), param="input")


def _transcriptions(form: dict[str, Any], files: Mapping[str, bytes], stored: StoredResponses) -> Reply:
    if "file" not in files:
        return error_reply(
            400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
        )
    result = synth.transcription(form, files["file"])
    if form.get("response_format") in ("text", "srt", "vtt"):
        return Reply(body=result["text"] + "\n", headers={"content-type": "text/plain; charset=utf-8"})
    return Reply(json=result)


ROUTES: dict[str, Route] = {
    "/v1/chat/completions": _chat,
    "/v1/responses": _responses,
    "/v1/completions": _completions,
    "/v1/embeddings": _embeddings,
    "/v1/audio/transcriptions": _transcriptions,
}


def _auth_error(headers: Mapping[str, str]) -> Reply | None:
    key = headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not key:
        return error_reply(401, "You didn't provide an API key. Provide it as a Bearer token.")
    if key.startswith("sk-invalid"):
        masked = f"{key[:8]}****{key[-4:]}"
        message = f"Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys."
        return error_reply(401, message, code="invalid_api_key")
    return None


def default_reply(
    request: RecordedRequest, files: Mapping[str, bytes], raw: bytes, stored: StoredResponses
) -> Reply:
    """What the real API would answer when nothing is queued for the path."""
    auth = _auth_error(request.headers)
    if auth is not None:
        return auth
    route = ROUTES.get(request.path) if request.method == "POST" else None
    if route is None:
        found = _response_by_id(request, stored)
        return found or error_reply(404, f"Invalid URL ({request.method} {request.path})")
    body = request.form if request.form is not None else request.json
    if not isinstance(body, dict):
        detail = "We could not parse the JSON body of your request." if raw else "The request body is empty."
        return error_reply(400, detail + " (HINT: send a JSON object with Content-Type: application/json.)")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return error_reply(400, "You must provide a model parameter.", param="model")
    if model in MISSING_MODELS:
        # Recorded traffic: the Responses API says 400 where the older endpoints say 404.
        status = 400 if request.path == "/v1/responses" else 404
        message = f"The model `{model}` does not exist or you do not have access to it."
        return error_reply(status, message, code="model_not_found", param="model" if status == 400 else None)
    return route(body, files, stored)


def parse_multipart(content_type: str, raw: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """(fields, file bytes by field name); a file field's entry in ``fields`` is its file name."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition") or "")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode()
        else:
            fields[name], files[name] = filename, data
    return fields, files


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every reply is framed by length or chunks
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Without this, a reply's header and body writes meet delayed ACKs: ~40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.log_requests:
            super().log_message(format, *args)

    def _read_body(self) -> bytes:
        if "chunked" not in self.headers.get("transfer-encoding", "").lower():
            return self.rfile.read(int(self.headers.get("content-length") or 0))
        parts = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(parts)

    def _serve(self) -> None:
        raw = self._read_body()
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        content_type = headers.get("content-type", "")
        files: dict[str, bytes] = {}
        form: dict[str, str] | None = None
        parsed: Any = None
        if content_type.startswith("multipart/form-data"):
            form, files = parse_multipart(content_type, raw)
        elif raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        request = RecordedRequest(self.command, url.path, query, headers, parsed, form)
        fake = self.server.fake
        reply = fake._record(request)
        if reply is None:
            try:
                reply = default_reply(request, files, raw, fake.stored)
            except Exception as exc:  # a fake-server bug must reach the client as a visible 500
                traceback.print_exc(file=sys.stderr)
                reply = error_reply(500, f"fake server error: {exc!r}")
        if reply.delay and fake._stopping.wait(reply.delay):
            self.close_connection = True
            return
        self._send(reply, headers)

    def _send(self, reply: Reply, request_headers: Mapping[str, str]) -> None:
        headers = {
            "x-request-id": synth.request_id(),
            "openai-processing-ms": "1",
            "openai-version": "2020-10-01",
        }
        for name in ("openai-project", "openai-organization"):
            if name in request_headers:
                headers[name] = request_headers[name]
        body = b""
        if reply.sse is not None:
            headers |= {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        elif reply.json is not None:
            headers["content-type"] = "application/json"
            body = json.dumps(reply.json).encode()
        elif reply.body is not None:
            headers["content-type"] = "application/octet-stream"
            body = reply.body.encode() if isinstance(reply.body, str) else reply.body
        headers |= {k.lower(): v for k, v in reply.headers.items() if k.lower() not in _FRAMING_HEADERS}
        if reply.sse is not None:
            headers["transfer-encoding"] = "chunked"
        else:
            headers["content-length"] = str(len(body))
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if reply.sse is None:
            self.wfile.write(body)
            return
        events = [e + "\n\n" for e in reply.sse.split("\n\n") if e.strip()]
        for event in events[: reply.break_after_events]:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event.encode()), event.encode()))
        if reply.break_after_events is not None:
            # The "broken stream": the body ends mid-chunking, which the client must report.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(b"0\r\n\r\n")


class _HTTPServer(ThreadingHTTPServer):
    """Tracks each connection's socket and thread so ``close`` can end keep-alive reads and join."""

    def __init__(self, address: tuple[str, int], fake: FakeOpenAI) -> None:
        self.fake = fake
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would do a reverse DNS lookup (getfqdn) we do not need.
        socketserver.TCPServer.server_bind(self)
        host, self.server_port = self.server_address[:2]
        self.server_name = str(host)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            daemon=True,
            name="fake-openai-http",
        )
        with self._connections_lock:
            self._connections[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError | OSError):
            super().handle_error(request, client_address)

    def close_connections(self, timeout: float) -> None:
        with self._connections_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in connections:
            thread.join(timeout)


class FakeOpenAI:
    """Fake OpenAI API on 127.0.0.1: HTTP (``base_url``) and Realtime WebSocket (``websocket_base_url``).

    Starts serving on construction; ``close()`` (or leaving the ``with`` block) stops both servers,
    closes open connections and joins their threads.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, ws_port: int = 0, *, log_requests: bool = False
    ):
        self.log_requests = log_requests
        self.requests: list[RecordedRequest] = []
        # Responses the default replies created, for retrieve/cancel/stream by id (see ``stored``).
        self.stored = StoredResponses()
        self._queues: defaultdict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._http = _HTTPServer((host, port), self)
        try:
            self._realtime = RealtimeServer(
                host, ws_port, authorize=lambda headers: _auth_error(headers) is None
            )
        except BaseException:
            self._http.server_close()
            raise
        # close() waits for the accept loop's next poll: keep that short, tests start and stop many servers.
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True, name="fake-openai"
        )
        self._thread.start()
        self._closed = False

    @property
    def base_url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def websocket_base_url(self) -> str:
        return self._realtime.base_url

    @property
    def realtime_events(self) -> list[dict[str, Any]]:
        """Client events received over every Realtime connection, in arrival order."""
        return self._realtime.events

    @property
    def realtime_connections(self) -> list[RealtimeConnect]:
        return self._realtime.connections

    def enqueue(self, path: str, reply: Reply) -> None:
        """Serve ``reply`` to the next request on ``path`` (e.g. ``/v1/chat/completions``), FIFO."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        with self._lock:
            self._queues[path].append(reply)

    def enqueue_realtime_usage(self, usage: Mapping[str, Any]) -> None:
        self._realtime.enqueue_usage(usage)

    def replay(self, case: ConformanceCase) -> None:
        self.enqueue(case.path, case.reply())

    def pending(self) -> dict[str, int]:
        """Queued replies not yet served, by path."""
        with self._lock:
            return {path: len(queue) for path, queue in self._queues.items() if queue}

    def _record(self, request: RecordedRequest) -> Reply | None:
        with self._lock:
            self.requests.append(request)
            queue = self._queues.get(request.path)
            return queue.popleft() if queue else None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._http.shutdown()
        self._thread.join()
        self._http.close_connections(timeout=5)
        self._http.server_close()
        self._realtime.close()

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
