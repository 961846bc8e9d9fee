"""The write-ahead log (spendscope/collector/_wal.py): what `append` returned is on disk, whole; a
segment goes once everything in it is settled; a full disk leaves no torn frame behind."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from spendscope.collector._handle import classify
from spendscope.collector._wal import SUFFIX, Wal, frames
from spendscope.store.errors import StoreError

PROTOBUF, JSON = "application/x-protobuf", "application/json"


def opened(directory: Path, segment_bytes: int = 1 << 20) -> Wal:
    wal = Wal(directory, segment_bytes)
    wal.open()
    return wal


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*" + SUFFIX))


def test_what_append_returned_is_in_the_segment_file_in_order(tmp_path: Path) -> None:
    wal = opened(tmp_path)
    bodies = [(f"request {n}".encode() * (n + 1), JSON if n % 2 else PROTOBUF) for n in range(50)]
    for body, kind in bodies:
        wal.append(body, kind, spans=1)
    [segment] = segments(tmp_path)
    assert list(frames(segment)) == bodies  # read through another file handle: it is in the file


def test_concurrent_appends_are_all_whole_frames(tmp_path: Path) -> None:
    wal = opened(tmp_path)

    def append(thread: int) -> None:
        for n in range(200):
            wal.append(f"{thread}:{n}:".encode() + b"x" * (n % 97), PROTOBUF, spans=1)

    threads = [threading.Thread(target=append, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [segment] = segments(tmp_path)
    read = [body.split(b":")[:2] for body, _ in frames(segment)]
    assert sorted(read) == sorted([str(t).encode(), str(n).encode()] for t in range(8) for n in range(200))
    assert wal.pending_spans == 8 * 200


def test_a_segment_is_removed_once_sealed_and_settled(tmp_path: Path) -> None:
    wal = opened(tmp_path, segment_bytes=1000)
    first = wal.append(b"a" * 600, PROTOBUF, spans=3)
    second = wal.append(b"b" * 600, PROTOBUF, spans=2)  # 1,218 bytes: sealed, the next one opened
    assert first == second and len(segments(tmp_path)) == 2
    wal.settle(first, 2)
    assert len(segments(tmp_path)) == 2  # three of five spans settled: kept
    wal.settle(first, 3)
    assert [path.name for path in segments(tmp_path)] == [f"{first + 1:012d}{SUFFIX}"]
    third = wal.append(b"c", JSON, spans=1)
    wal.settle(third, 1)  # settled but not sealed: still the current segment
    assert len(segments(tmp_path)) == 1
    wal.close()
    assert segments(tmp_path) == []


def test_what_a_previous_process_left_is_read_back_and_a_cut_frame_ends_it(tmp_path: Path) -> None:
    wal = opened(tmp_path)
    for n in range(3):
        wal.append(b"kept %d" % n, PROTOBUF, spans=1)
    wal.append(b"cut short by a crash", JSON, spans=1)
    [segment] = segments(tmp_path)
    os.truncate(segment, segment.stat().st_size - 5)  # the last append was never answered

    again = opened(tmp_path)
    assert again.leftover() == [segment]
    assert [body for body, _ in frames(segment)] == [b"kept 0", b"kept 1", b"kept 2"]
    again.discard(segment)
    assert again.leftover() == [] and len(segments(tmp_path)) == 1  # the new run's segment
    assert int(segments(tmp_path)[0].stem) > int(segment.stem)


def test_a_damaged_frame_ends_reading(tmp_path: Path) -> None:
    wal = opened(tmp_path)
    wal.append(b"first", PROTOBUF, spans=1)
    wal.append(b"second", PROTOBUF, spans=1)
    [segment] = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert [body for body, _ in frames(segment)] == [b"first"]


def test_appending_to_a_closed_log_is_an_error(tmp_path: Path) -> None:
    wal = opened(tmp_path)
    wal.close()
    with pytest.raises(OSError, match="closed"):
        wal.append(b"late", PROTOBUF, spans=1)


def _mount_namespaces() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


FULL_DISK = """
import os, sys
from pathlib import Path
from spendscope.collector._wal import Wal, frames
directory = Path(sys.argv[1])
wal = Wal(directory / "wal")
wal.open()
appended = 0
try:
    while True:
        wal.append(os.urandom(3000), "application/x-protobuf", spans=1)
        appended += 1
except OSError as exc:
    refused = exc.errno
[segment] = sorted((directory / "wal").glob("*.wal"))
whole = len(list(frames(segment)))
size_after_refusal = segment.stat().st_size
(directory / "filler").unlink()  # space comes back
wal.append(b"after", "application/json", spans=1)
print(appended, refused, whole, size_after_refusal % 3009, list(frames(segment))[-1][0].decode())
"""


@pytest.mark.skipif(not _mount_namespaces(), reason="needs unshare -rm (a mount namespace) to mount a tmpfs")
def test_a_full_disk_refuses_the_append_and_leaves_no_torn_frame(tmp_path: Path) -> None:
    """On a 1 MiB tmpfs, mostly taken by a filler file: the append that does not fit raises ENOSPC,
    the segment holds exactly the appends that returned, and appending works once space is back."""
    mount = tmp_path / "disk"
    mount.mkdir()
    script = (
        'mount -t tmpfs -o size=1m none "$1" && head -c 700000 /dev/zero > "$1/filler" && shift && exec "$@"'
    )
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", str(mount), sys.executable, "-c", FULL_DISK, str(mount)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    appended, refused, whole, remainder, last = done.stdout.split()
    assert int(appended) > 10 and int(refused) == 28  # ENOSPC
    assert int(whole) == int(appended) and int(remainder) == 0  # 3,009 bytes a frame, none torn
    assert last == "after"


# --- whose fault a failed insert is ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "content", "reason"),
    [
        (DatabaseError("Code: 243. DB::Exception: not enough space. (NOT_ENOUGH_SPACE)", code=243,
                       name="NOT_ENOUGH_SPACE"), False, "NOT_ENOUGH_SPACE"),
        (DatabaseError("Code: 241. (MEMORY_LIMIT_EXCEEDED)", code=241, name="MEMORY_LIMIT_EXCEEDED"),
         False, "MEMORY_LIMIT_EXCEEDED"),
        (DatabaseError("Code: 252. (TOO_MANY_PARTS)", code=252, name="TOO_MANY_PARTS"), False, "TOO_MANY_PARTS"),
        (DatabaseError("Code: 164. (READONLY)", code=164, name="READONLY"), False, "READONLY"),
        (OperationalError("HTTPConnectionPool: connection refused"), False, "OperationalError"),
        (ConnectionRefusedError(111, "Connection refused"), False, "ConnectionRefusedError"),
        (DatabaseError("Code: 321. (VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE)", code=321,
                       name="VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"), True, "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"),
        (DataError("Unable to create native array for column `Timestamp`: value out of range"), True, "DataError"),
    ],
)  # fmt: skip
def test_a_failed_insert_is_the_stores_fault_or_the_batchs(
    error: Exception, content: bool, reason: str
) -> None:
    """Wrapped as the store wraps it (StoreError from the driver's error)."""
    try:
        try:
            raise error
        except Exception as cause:
            raise StoreError(f"insert into otel_traces failed: {cause}") from cause
    except StoreError as wrapped:
        failure = classify(wrapped)
    assert (failure.content, failure.reason) == (content, reason)
