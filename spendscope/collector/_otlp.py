"""OTLP/HTTP payloads: content types, decompression with a size limit, OTLP/JSON, responses.

OTLP/JSON is protobuf's JSON mapping with deviations (opentelemetry-proto docs/specification.md):
trace and span ids are hex, not base64; enums are integers; 64-bit integers may be strings; unknown
fields are ignored. The ids are rewritten to base64 before `json_format.ParseDict`, which then does
the rest. Failures raise `BadRequest` with the status to answer and a message for the client.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, Final

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
_GRPC_CODES: Final = {400: 3, 401: 16, 404: 5, 405: 12, 411: 3, 413: 8, 415: 3, 500: 13, 503: 14}


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


def _hex_to_base64(obj: Any) -> None:
    """Rewrite OTLP/JSON hex ids in place to the base64 protobuf's JSON mapping expects."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    raw = bytes.fromhex(value)
                except ValueError:
                    raise BadRequest(400, f"{key} {value!r} is not hex (OTLP/JSON ids are hex)") from None
                obj[key] = base64.b64encode(raw).decode()
            elif isinstance(value, dict | list):
                _hex_to_base64(value)
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict | list):
                _hex_to_base64(item)


def _parse_json(body: bytes, message: Message) -> None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest(400, "malformed OTLP/JSON: the body must be a JSON object")
    _hex_to_base64(document)
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise BadRequest(400, f"malformed OTLP/JSON: {exc}") from None


def traces_request(body: bytes, kind: str) -> ExportTraceServiceRequest:
    """The request, parsed from protobuf or OTLP/JSON; 400 if it is not one."""
    message = ExportTraceServiceRequest()
    if kind == PROTOBUF:
        try:
            message.ParseFromString(body)
        except ProtobufDecodeError as exc:
            raise BadRequest(400, f"malformed protobuf: {exc}") from None
    else:
        _parse_json(body, message)
    return message


def metrics_request(body: bytes, kind: str) -> ExportMetricsServiceRequest:
    message = ExportMetricsServiceRequest()
    if kind == PROTOBUF:
        try:
            message.ParseFromString(body)
        except ProtobufDecodeError as exc:
            raise BadRequest(400, f"malformed protobuf: {exc}") from None
    else:
        _parse_json(body, message)
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
