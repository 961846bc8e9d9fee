"""The on-disk spool: batches the store could not take, kept until it can.

One file per batch, written to a temporary name, flushed to disk (fsync) and renamed, so a file is
either complete or absent. The file starts with one JSON header line, then the batch. A batch of
SpanRecords is one JSON array of rows:

    {"format": "spendscope-spool/1", "spans": 812, "sha256": "<payload>"}
    [[timestamp_ns, trace_id, span_id, ...], ...]

A batch of raw OTLP requests (the fast path: see _otlp_sql.py) is the requests' bytes one after
the other, as the collector received them (decompressed, with the sizes it appends for SQL), and in
the header each request's length and span count:

    {"format": "spendscope-spool/2", "spans": 4000,
     "requests": [[1849102, 2000], [1849102, 2000]], "sha256": "<payload>"}
    <request bytes><request bytes>

Replaying a batch the store had in fact already written (an insert that failed after ClickHouse
committed it) writes its spans again, which the store counts once. Files are named
`<unix-ns>-<seq>.batch` and replayed oldest first. A file that fails its checksum is moved to
`corrupt/`, and a batch the store keeps refusing while it answers queries to `refused/`: both are
reported (log and metrics) and kept, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spendscope.store.records import SpanEvent, SpanLink, SpanRecord

FORMAT = "spendscope-spool/1"
FORMAT_REQUESTS = "spendscope-spool/2"
SUFFIX = ".batch"
_log = logging.getLogger("spendscope.collector")


class SpoolError(Exception):
    """A spool file cannot be read back (moved to corrupt/)."""


@dataclass(frozen=True)
class SpooledBatch:
    path: Path
    records: list[SpanRecord]
    keys: list[bytes]  # of the records (a batch of requests has none: see `spans`)
    requests: list[bytes] | None = None  # a batch of raw requests, `spans[i]` the spans in request i
    spans: list[int] = field(default_factory=list)

    @property
    def span_count(self) -> int:
        return len(self.records) if self.requests is None else sum(self.spans)


def _row(r: SpanRecord) -> list[Any]:
    return [
        r.timestamp_ns,
        r.trace_id,
        r.span_id,
        r.parent_span_id,
        r.trace_state,
        r.span_name,
        r.span_kind,
        r.service_name,
        r.resource_attributes,
        r.scope_name,
        r.scope_version,
        r.span_attributes,
        r.duration_ns,
        r.status_code,
        r.status_message,
        [[e.timestamp_ns, e.name, e.attributes] for e in r.events],
        [[link.trace_id, link.span_id, link.trace_state, link.attributes] for link in r.links],
    ]


def _record(row: list[Any]) -> SpanRecord:
    events = [SpanEvent(int(t), str(n), dict(a)) for t, n, a in row[15]]
    links = [SpanLink(str(t), str(s), str(st), dict(a)) for t, s, st, a in row[16]]
    return SpanRecord(
        timestamp_ns=int(row[0]),
        trace_id=row[1],
        span_id=row[2],
        parent_span_id=row[3],
        trace_state=row[4],
        span_name=row[5],
        span_kind=row[6],
        service_name=row[7],
        resource_attributes=row[8],
        scope_name=row[9],
        scope_version=row[10],
        span_attributes=row[11],
        duration_ns=int(row[12]),
        status_code=row[13],
        status_message=row[14],
        events=events,
        links=links,
    )


def encode(records: list[SpanRecord]) -> bytes:
    payload = json.dumps([_row(r) for r in records], separators=(",", ":"), ensure_ascii=False).encode()
    header = {
        "format": FORMAT,
        "spans": len(records),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    return json.dumps(header).encode() + b"\n" + payload


def encode_requests(requests: list[bytes], spans: list[int]) -> bytes:
    payload = b"".join(requests)
    header = {
        "format": FORMAT_REQUESTS,
        "spans": sum(spans),
        "requests": [[len(r), n] for r, n in zip(requests, spans, strict=True)],
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    return json.dumps(header).encode() + b"\n" + payload


def _header(data: bytes, formats: tuple[str, ...]) -> tuple[dict[str, Any], bytes]:
    head, sep, payload = data.partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError as exc:
        raise SpoolError(f"bad header: {exc}") from None
    if not sep or not isinstance(header, dict) or header.get("format") not in formats:
        raise SpoolError("not a spendscope spool file")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise SpoolError("checksum mismatch (truncated or damaged)")
    return header, payload


def decode_requests(data: bytes) -> tuple[list[bytes], list[int]]:
    """A batch of raw requests (format 2): its requests and span counts."""
    header, payload = _header(data, (FORMAT_REQUESTS,))
    requests: list[bytes] = []
    spans: list[int] = []
    at = 0
    for size, count in header["requests"]:
        requests.append(payload[at : at + int(size)])
        spans.append(int(count))
        at += int(size)
    if at != len(payload) or sum(spans) != header.get("spans"):
        raise SpoolError("request sizes do not match the payload")
    return requests, spans


def decode(data: bytes) -> list[SpanRecord]:
    """A batch of SpanRecords (format 1)."""
    header, payload = _header(data, (FORMAT,))
    records = [_record(row) for row in json.loads(payload)]
    if len(records) != header.get("spans"):
        raise SpoolError("span count mismatch")
    return records


# Named here: inside Spool, `bytes` is its property.
Requests = list[bytes]
Encoded = bytes


class Spool:
    """A directory of spooled batches. Thread-safe."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._seq = 0
        self._bytes = 0
        self._files = 0
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob(".tmp-*"):  # a write that was interrupted: never acknowledged
            leftover.unlink(missing_ok=True)
        for path in self.paths():
            self._bytes += path.stat().st_size
            self._files += 1

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def files(self) -> int:
        return self._files

    def paths(self) -> list[Path]:
        """Spooled batches, oldest first."""
        return sorted(self.directory.glob("*" + SUFFIX))

    def write(self, records: list[SpanRecord]) -> Path:
        """Write one batch durably. Raises OSError if the disk refuses it."""
        return self._write(encode(records))

    def write_requests(self, requests: Requests, spans: list[int]) -> Path:
        """Write one batch of raw requests durably. Raises OSError if the disk refuses it."""
        return self._write(encode_requests(requests, spans))

    def _write(self, data: Encoded) -> Path:
        with self._lock:
            self._seq += 1
            name = f"{time.time_ns():020d}-{self._seq:06d}{SUFFIX}"
        path = self.directory / name
        tmp = self.directory / f".tmp-{name}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)
        self._fsync_directory()
        with self._lock:
            self._bytes += len(data)
            self._files += 1
        return path

    def read(self, path: Path) -> SpooledBatch:
        """Read a batch back. A damaged file is moved to corrupt/ and SpoolError raised."""
        data = path.read_bytes()
        try:
            header = json.loads(data.partition(b"\n")[0])
            if isinstance(header, dict) and header.get("format") == FORMAT_REQUESTS:
                requests, spans = decode_requests(data)
                return SpooledBatch(path, [], [], requests, spans)
            records = decode(data)
        except (SpoolError, ValueError, TypeError, IndexError, KeyError) as exc:
            target = self.set_aside(path, "corrupt")
            _log.error("spool file %s is damaged (%s); moved to %s", path.name, exc, target)
            raise SpoolError(f"{path.name}: {exc}") from None
        keys = [bytes.fromhex(r.trace_id + r.span_id) for r in records]
        return SpooledBatch(path, records, keys)

    def set_aside(self, path: Path, folder: str) -> Path:
        """Move a batch out of the replay queue into `folder/` (kept for a person to look at)."""
        size = path.stat().st_size
        aside = self.directory / folder
        aside.mkdir(exist_ok=True)
        target = aside / path.name
        os.replace(path, target)
        self._fsync_directory()
        self._forget(size)
        return target

    def remove(self, path: Path) -> None:
        size = path.stat().st_size
        path.unlink()
        self._fsync_directory()
        self._forget(size)

    def _forget(self, size: int) -> None:
        with self._lock:
            self._bytes -= size
            self._files -= 1

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
