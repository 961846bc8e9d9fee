"""The write-ahead log: a traces request is on disk before the collector answers 200.

Each accepted request is appended to the current segment (`<spool>/wal/<seq>.wal`) as one frame,

    length (4 bytes, little-endian) | CRC-32 of the body (4) | media type (1: 0 protobuf, 1 JSON) | body

the body being the request as decoded (decompressed), and flushed with fsync before `append` returns.
Appends running at the same time share one fsync (group commit: the first to reach the disk flushes
everything written so far, the others find their frame already flushed), so the cost of durability is
about one fsync per burst of requests, not per request.

A segment is sealed once it holds `segment_bytes`, and removed once sealed and every span appended to
it has been written to the store or the spool (`settle`). A frame that could not be written whole (a
full disk) is cut off again, so a segment is always a run of whole frames, except after a crash in the
middle of an append, whose request was never answered: reading stops at the first frame that is short
or fails its checksum.

`open` is called by the collector that has claimed the spool (one per spool). The segments a previous
process left (killed, or its disk full at the wrong moment) are read back (`leftover`, `frames`),
spooled by the collector, and then removed (`discard`). Some of their spans may already be in the
store: it counts a span once however often it is written.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spendscope.collector._spool import fsync_directory

_log = logging.getLogger("spendscope.collector")

SUFFIX = ".wal"
_FRAME = struct.Struct("<IIB")
KINDS = ("application/x-protobuf", "application/json")


@dataclass
class _Segment:
    seq: int
    path: Path
    fd: int
    written: int = 0  # bytes appended
    synced: int = 0  # bytes known to be on disk
    pending: int = 0  # spans appended and not yet settled
    sealed: bool = False


class Wal:
    """The log in `directory`. Thread-safe."""

    def __init__(self, directory: Path, segment_bytes: int = 32 * 1024 * 1024) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()  # appends, the segment table
        self._sync_lock = threading.Lock()  # one fsync at a time
        self._segments: dict[int, _Segment] = {}
        self._leftover: list[Path] = []
        self._current: _Segment | None = None
        self.last_error = ""  # why the last append failed, until one succeeds

    def open(self) -> None:
        """Find what a previous process left, and start a segment after it. Raises OSError."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._leftover = sorted(self.directory.glob("*" + SUFFIX))
        last = max((_seq(path) for path in self._leftover), default=0)
        with self._lock:
            self._current = self._open(last + 1)

    # --- appending ----------------------------------------------------------------------------------

    def append(self, body: bytes, kind: str, spans: int) -> int:
        """Write one request durably; the segment it went to (to `settle` its spans with). Raises
        OSError if the disk refuses it (nothing of it is left in the log then)."""
        frame = _FRAME.pack(len(body), zlib.crc32(body), KINDS.index(kind)) + body
        with self._lock:
            segment = self._current
            if segment is None or segment.sealed:
                raise OSError(f"the write-ahead log in {self.directory} is closed")
            try:
                _write_all(segment.fd, frame)
            except OSError as exc:
                os.ftruncate(segment.fd, segment.written)  # no torn frame before the next one
                self.last_error = f"{self.directory}: {exc.strerror or exc}"
                raise
            segment.written += len(frame)
            segment.pending += spans
            end = segment.written
        try:
            self._sync(segment, end)
        except OSError as exc:
            self.last_error = f"{self.directory}: {exc.strerror or exc}"
            raise
        self.last_error = ""
        if end >= self.segment_bytes:
            self._seal(segment)
        return segment.seq

    def _sync(self, segment: _Segment, end: int) -> None:
        with self._sync_lock:
            if segment.synced >= end:
                return  # flushed by another append's fsync
            with self._lock:
                target = segment.written
            os.fsync(segment.fd)
            segment.synced = target

    def _seal(self, segment: _Segment, *, reopen: bool = True) -> None:
        with self._lock:
            if segment.sealed:
                return
            segment.sealed = True
            if reopen:
                self._current = self._open(segment.seq + 1)
            self._remove_if_settled(segment)

    def settle(self, seq: int, spans: int) -> None:
        """`spans` appended to segment `seq` are in the store or the spool."""
        with self._lock:
            segment = self._segments[seq]
            segment.pending -= spans
            self._remove_if_settled(segment)

    def close(self) -> None:
        """Seal the current segment (removed if everything in it is settled); no appends after."""
        if self._current is not None:
            self._seal(self._current, reopen=False)

    @property
    def pending_spans(self) -> int:
        with self._lock:
            return sum(segment.pending for segment in self._segments.values())

    # --- what a previous process left ---------------------------------------------------------------

    def leftover(self) -> list[Path]:
        """The segments a previous process left, oldest first."""
        return list(self._leftover)

    def discard(self, path: Path) -> None:
        """Remove a previous process's segment (once what it held is spooled)."""
        path.unlink(missing_ok=True)
        fsync_directory(self.directory)
        self._leftover.remove(path)

    # --- segments -----------------------------------------------------------------------------------

    def _open(self, seq: int) -> _Segment:
        path = self.directory / f"{seq:012d}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fsync_directory(self.directory)
        segment = _Segment(seq, path, fd)
        self._segments[seq] = segment
        return segment

    def _remove_if_settled(self, segment: _Segment) -> None:
        """Call with `_lock` held."""
        if segment.sealed and segment.pending == 0:
            del self._segments[segment.seq]
            os.close(segment.fd)
            segment.path.unlink(missing_ok=True)


def _seq(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        return 0


def frames(path: Path) -> Iterator[tuple[bytes, str]]:
    """The requests (body, media type) in a segment, in the order they were appended."""
    data = path.read_bytes()
    offset = 0
    while offset + _FRAME.size <= len(data):
        length, crc, kind = _FRAME.unpack_from(data, offset)
        body = data[offset + _FRAME.size : offset + _FRAME.size + length]
        if len(body) != length or zlib.crc32(body) != crc or kind >= len(KINDS):
            _log.warning(
                "spendscope collector: %s ends in a frame cut short at byte %d (a request that was never "
                "answered); reading stops there",
                path.name,
                offset,
            )
            return
        yield body, KINDS[kind]
        offset += _FRAME.size + length


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
