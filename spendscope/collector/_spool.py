"""The on-disk spool: batches the store could not take, kept until it can.

One file per batch, written to a temporary name, flushed to disk (fsync) and renamed, so a file is
either complete or absent. The file is one JSON header line, then the batch's SpanRecords as one JSON
array of rows:

    {"format": "spendscope-spool/1", "spans": 812, "sha256": "<payload>"}
    [[timestamp_ns, trace_id, span_id, ...], ...]

Replaying a batch the store had in fact already written (an insert that failed after ClickHouse
committed it) writes its spans again, which the store counts once. Files are named
`<unix-ns>-<seq>.batch` and replayed oldest first. A file that fails its checksum is moved to
`corrupt/`; spans the store refuses for their content are written to `refused/`, a file per reason
(the header's "reason"). Both are reported (log, metrics, /healthz) and kept, never deleted;
`requeue` (`spendscope spool requeue`) puts the refused files back once their cause is fixed.

A collector claims its spool (`claim`: a lock on `.lock`, which holds its pid) for as long as it runs:
two collectors on one spool would replay, and delete, the same files.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spendscope.store.records import SpanEvent, SpanLink, SpanRecord

FORMAT = "spendscope-spool/1"
SUFFIX = ".batch"
REFUSED = "refused"
_log = logging.getLogger("spendscope.collector")


class SpoolError(Exception):
    """A spool file cannot be read back (moved to corrupt/)."""


class SpoolInUse(Exception):
    """Another process has claimed the spool: the message says which, in one line."""


LOCK = ".lock"


@dataclass(frozen=True)
class SpooledBatch:
    path: Path
    records: list[SpanRecord]
    keys: list[bytes]  # of the records


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


def encode(records: list[SpanRecord], reason: str | None = None) -> bytes:
    payload = json.dumps([_row(r) for r in records], separators=(",", ":"), ensure_ascii=False).encode()
    header: dict[str, Any] = {
        "format": FORMAT,
        "spans": len(records),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    if reason is not None:
        header["reason"] = reason
    return json.dumps(header).encode() + b"\n" + payload


def _header(data: bytes) -> tuple[dict[str, Any], bytes]:
    head, sep, payload = data.partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError as exc:
        raise SpoolError(f"bad header: {exc}") from None
    if not sep or not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SpoolError("not a spendscope spool file")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise SpoolError("checksum mismatch (truncated or damaged)")
    return header, payload


def decode(data: bytes) -> list[SpanRecord]:
    """A batch's records."""
    header, payload = _header(data)
    records = [_record(row) for row in json.loads(payload)]
    if len(records) != header.get("spans"):
        raise SpoolError("span count mismatch")
    return records


# Named here: inside Spool, `bytes` is its property.
Encoded = bytes


class Spool:
    """A directory of spooled batches. Thread-safe."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._seq = 0
        self._bytes = 0
        self._files = 0
        self._claim: int | None = None
        directory.mkdir(parents=True, exist_ok=True)
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
        """Spooled batches, oldest first (not the writes under way, named .tmp-*)."""
        return sorted(p for p in self.directory.glob("*" + SUFFIX) if not p.name.startswith("."))

    def claim(self) -> None:
        """Claim the spool for this process until `release` (or its exit), and delete the writes an
        earlier run left half done (never acknowledged); SpoolInUse if another process has it."""
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SpoolInUse(
                f"another spendscope collector (pid {holder}) uses the spool {self.directory}: stop it, "
                "or give this one a spool of its own (--spool)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._claim = fd
        for leftover in self.directory.glob(".tmp-*"):
            leftover.unlink(missing_ok=True)

    def release(self) -> None:
        if self._claim is not None:
            os.close(self._claim)
            self._claim = None

    def write(self, records: list[SpanRecord]) -> Path:
        """Write one batch durably. Raises OSError if the disk refuses it."""
        path = self._write(encode(records), self.directory)
        with self._lock:
            self._bytes += path.stat().st_size
            self._files += 1
        return path

    def write_refused(self, records: list[SpanRecord], reason: str) -> Path:
        """Write spans the store refused for `reason` durably to refused/ (not replayed)."""
        folder = self.directory / REFUSED
        folder.mkdir(exist_ok=True)
        return self._write(encode(records, reason), folder)

    def refused(self) -> dict[str, int]:
        """Spans set aside in refused/, by reason."""
        spans: dict[str, int] = {}
        for path in sorted((self.directory / REFUSED).glob("*" + SUFFIX)):
            try:
                with path.open("rb") as file:
                    header = json.loads(file.readline())
                reason, count = str(header.get("reason", "unknown")), int(header["spans"])
            except (OSError, ValueError, KeyError, TypeError):
                reason, count = "unreadable", 0
            spans[reason] = spans.get(reason, 0) + count
        return spans

    def requeue(self) -> list[Path]:
        """Put the refused files back in the spool (a collector replays them); their new paths."""
        moved = []
        for path in sorted((self.directory / REFUSED).glob("*" + SUFFIX)):
            target = self.directory / path.name
            os.replace(path, target)
            with self._lock:
                self._bytes += target.stat().st_size
                self._files += 1
            moved.append(target)
        if moved:
            self._fsync_directory()
        return moved

    def _write(self, data: Encoded, folder: Path) -> Path:
        with self._lock:
            self._seq += 1
            name = f"{time.time_ns():020d}-{self._seq:06d}{SUFFIX}"
        path = folder / name
        tmp = folder / f".tmp-{name}"
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
        fsync_directory(folder)
        return path

    def read(self, path: Path) -> SpooledBatch:
        """Read a batch back. A damaged file is moved to corrupt/ and SpoolError raised."""
        data = path.read_bytes()
        try:
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
        fsync_directory(self.directory)


def fsync_directory(directory: Path) -> None:
    """Make a directory's entries (files created, renamed, removed) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
