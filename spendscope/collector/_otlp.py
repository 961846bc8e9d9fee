"""OTLP/HTTP payloads: content types, decompression with a size limit, OTLP/JSON, responses.

OTLP/JSON is protobuf's JSON mapping with deviations (opentelemetry-proto docs/specification.md):
trace and span ids are hex, not base64; enums are integers; 64-bit integers may be strings; unknown
fields are ignored. The ids are rewritten to base64 before `json_format.ParseDict`, which then does
the rest. Failures raise `BadRequest` with the status to answer and a message for the client.

A JSON body is refused with 413 before it is parsed when the objects Python would make of it are
estimated over `Limits.decoded_bytes` (counted from its brackets, commas and quotes), and with 400 when
it nests deeper than Python's parser goes.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import TYPE_CHECKING, Any, Final

from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError as ProtobufDecodeError  # type: ignore[import-untyped]
from google.protobuf.message import Message
from google.rpc import status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
_ID_FIELDS: Final = ("traceId", "spanId", "parentSpanId")
# CPython bytes per JSON object, array, element and string (3.11: a small dict ~200, a list ~60, a
# list's slot or a float 8-24, a str's header ~50 for its two quotes)
_JSON_OBJECT_BYTES: Final = 200
_JSON_ARRAY_BYTES: Final = 80
_JSON_ELEMENT_BYTES: Final = 32
_JSON_QUOTE_BYTES: Final = 25
_GRPC_CODES: Final = {400: 3, 401: 16, 404: 5, 405: 12, 411: 3, 413: 8, 415: 3, 500: 13, 503: 14}


if TYPE_CHECKING:
    from spendscope.collector._limits import Limits


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`; 415 for anything but OTLP's two."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind not in (PROTOBUF, JSON):
        raise BadRequest(
            415, f"unsupported Content-Type {content_type!r}: send {PROTOBUF} or {JSON} (OTLP/HTTP)"
        )
    return kind


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding (gzip, deflate or none); 413 past `limit` bytes, 400 if corrupt."""
    kind = (encoding or "identity").strip().lower()
    if kind in ("identity", ""):
        return body
    if kind not in ("gzip", "x-gzip", "deflate"):
        raise BadRequest(415, f"unsupported Content-Encoding {encoding!r}: use gzip, deflate or none")
    out = bytearray()
    data = body
    while data:  # gzip allows several members one after the other
        inflater = zlib.decompressobj(47)  # 32 + 15: gzip or zlib header, detected
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise BadRequest(400, f"bad {kind} body: {exc}") from None
        if len(out) > limit:
            raise BadRequest(413, f"body is larger than {limit} bytes once decompressed")
        if not inflater.eof:
            raise BadRequest(400, f"bad {kind} body: truncated")
        data = inflater.unused_data
    return bytes(out)


def _hex_to_base64(document: Any) -> None:
    """Rewrite OTLP/JSON hex ids in place to the base64 protobuf's JSON mapping expects (iteratively:
    a document may nest as deep as the JSON parser allows)."""
    stack = [document]
    while stack:
        obj = stack.pop()
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key in _ID_FIELDS and isinstance(value, str):
                    try:
                        raw = bytes.fromhex(value)
                    except ValueError:
                        message = f"{key} {value[:64]!r} is not hex (OTLP/JSON ids are hex)"
                        raise BadRequest(400, message) from None
                    obj[key] = base64.b64encode(raw).decode()
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(obj, list):
            stack.extend(item for item in obj if isinstance(item, dict | list))


def json_weight(body: bytes) -> int:
    """Estimated bytes of the Python objects `json.loads(body)` makes."""
    return (
        len(body)
        + _JSON_OBJECT_BYTES * body.count(b"{")
        + _JSON_ARRAY_BYTES * body.count(b"[")
        + _JSON_ELEMENT_BYTES * (body.count(b",") + body.count(b":"))
        + _JSON_QUOTE_BYTES * body.count(b'"')
    )


def _parse_json(body: bytes, message: Message, limits: Limits | None) -> None:
    if limits is not None and json_weight(body) > limits.decoded_bytes:
        raise BadRequest(
            413,
            f"request too large once decoded (over {limits.decoded_bytes} bytes): send fewer per request",
        )
    try:
        document = json.loads(body)
    except RecursionError:
        raise BadRequest(400, "malformed JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest(400, "malformed OTLP/JSON: the body must be a JSON object")
    _hex_to_base64(document)
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise BadRequest(400, f"malformed OTLP/JSON: {_one_line(exc)}") from None


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _parse_protobuf(body: bytes, message: Message) -> None:
    try:
        message.ParseFromString(body)
    except ProtobufDecodeError as exc:
        raise BadRequest(400, f"malformed protobuf: {_one_line(exc) or 'not an OTLP message'}") from None


def traces_request(body: bytes, kind: str, limits: Limits | None = None) -> ExportTraceServiceRequest:
    """The request, parsed from protobuf or OTLP/JSON; 400 if it is not one."""
    message = ExportTraceServiceRequest()
    if kind == PROTOBUF:
        _parse_protobuf(body, message)
    else:
        _parse_json(body, message, limits)
    return message


def metrics_request(body: bytes, kind: str, limits: Limits | None = None) -> ExportMetricsServiceRequest:
    message = ExportMetricsServiceRequest()
    if kind == PROTOBUF:
        _parse_protobuf(body, message)
    else:
        _parse_json(body, message, limits)
    return message


def _encode(message: Message, kind: str) -> bytes:
    if kind == JSON:
        return json.dumps(json_format.MessageToDict(message)).encode()
    data: bytes = message.SerializeToString()
    return data


def traces_response(kind: str, rejected: int = 0, error: str = "") -> bytes:
    response = ExportTraceServiceResponse()
    if rejected or error:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = error
    return _encode(response, kind)


def metrics_response(kind: str, rejected: int = 0, error: str = "") -> bytes:
    response = ExportMetricsServiceResponse()
    if rejected or error:
        response.partial_success.rejected_data_points = rejected
        response.partial_success.error_message = error
    return _encode(response, kind)


def status_body(status: int, message: str, kind: str) -> bytes:
    """The google.rpc.Status body OTLP/HTTP wants on every 4xx and 5xx."""
    return _encode(status_pb2.Status(code=_GRPC_CODES.get(status, 2), message=message), kind)
