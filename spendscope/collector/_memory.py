"""The collector's memory: the bound its settings put on its peak RSS, and giving memory back.

What the collector holds besides its code (its baseline) is bounded by four settings:

    request bodies read, waiting to be decoded          body_budget: 3 x max_body_bytes
    requests being decoded                              decoders x max_decoded_bytes
    spans acknowledged, until written                   queue_bytes (their rows, estimated when decoded)
    batches being written (the store's insert or the spool's file), and a spooled batch read back
                                                        WRITE_FACTOR x the queue

The queue takes any one request when it is empty, so it may hold up to `max_decoded_bytes`. A decode's
estimate (`_limits.py`) counts a row's objects at their CPython sizes; measured, rows take 0.6-0.7 of it
(bench/README.md#memory-under-overload), which leaves room for the allocator's own overhead.

`release_free_memory` (after every batch written, and after a large request that was not queued) asks
glibc's allocator to return its free pages (`malloc_trim`): without it, the memory of a burst's rows
stays in the process's heaps after they are written. Python's small-object allocator keeps each of
its arenas of 1 MiB until it is wholly free, and a burst leaves ~100 of them held by a few blocks
each: the long-lived objects made while the rows were there (a connection, a thread, a metric's
value), not one cache that could be bounded. Measured once drained (`bench/memory.py --malloc-stats`):
as many blocks in use as at the baseline, glibc's heaps as at the baseline, and ~100 MiB of wholly
free pools in those arenas, which is what stays above the baseline. So the `spendscope collector`
process runs on jemalloc when it is installed (`use_allocator`): every object from jemalloc, whose
background thread returns pages left free for a second; with glibc's malloc instead
(`PYTHONMALLOC=malloc`) the memory comes back too, at half as much CPU again per span
(bench/README.md#memory-under-overload).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import sys
from pathlib import Path
from typing import Protocol

MiB = 1024 * 1024
WRITE_FACTOR = 2  # a batch's insert rows and encoded block, or a spool file's bytes, beside its rows
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
# jemalloc: two arenas (not four a core, each half used), pages left free for a second returned by its
# own thread, none kept "muzzy" (bench/README.md#memory-under-overload: these cost no CPU a span)
JEMALLOC_CONF = "background_thread:true,narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0"
_ALLOCATOR_VARIABLES = ("LD_PRELOAD", "PYTHONMALLOC", "MALLOC_CONF")


class MemorySettings(Protocol):
    @property
    def max_body_bytes(self) -> int: ...
    @property
    def max_decoded_bytes(self) -> int: ...
    @property
    def queue_bytes(self) -> int: ...
    @property
    def decoders(self) -> int: ...


def body_budget(max_body_bytes: int) -> int:
    """Bytes of request bodies read and not yet decoded at once (beyond: 503)."""
    return 3 * max_body_bytes


def peak_bound(settings: MemorySettings) -> int:
    """Bytes the collector may hold above its baseline with these settings (see the module's docstring)."""
    queue = max(settings.queue_bytes, settings.max_decoded_bytes)
    return (
        body_budget(settings.max_body_bytes)
        + settings.decoders * settings.max_decoded_bytes
        + (1 + WRITE_FACTOR) * queue
    )


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None  # not glibc
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


def tune_allocator() -> None:
    """For the collector's own process, before its threads start (glibc; elsewhere nothing): two heaps,
    not eight per core, and blocks of 1 MiB and more (request bodies, a batch's lists) always mapped
    on their own, so that freeing one returns it to the system (glibc otherwise raises that threshold
    to the largest block freed, up to 32 MiB, and serves the next ones from its heaps)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, 2)
        libc.mallopt(M_MMAP_THRESHOLD, MiB)


def release_free_memory() -> None:
    """Free what only reference cycles hold (clickhouse-connect's insert context keeps its rows in one),
    then return the allocator's free memory to the system (glibc; elsewhere only the first)."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def use_allocator(choice: str) -> None:
    """The allocator of the `spendscope collector` process (`choice`: auto, jemalloc or python), called
    first thing, before any thread starts: to run on jemalloc, the process executes itself again with
    jemalloc preloaded and every Python object from it (`PYTHONMALLOC=malloc`). Once it runs on it, the
    variables that did so are taken out of its environment, so that the store's server it starts (a
    ClickHouse engine with its own allocator) does not inherit them. A `MALLOC_CONF` of the user's
    replaces JEMALLOC_CONF; with an `LD_PRELOAD` or `PYTHONMALLOC` of theirs nothing is preloaded.
    `ValueError` when jemalloc was asked for and is not installed."""
    if _jemalloc_mapped():
        for name in _ALLOCATOR_VARIABLES:
            os.environ.pop(name, None)
        return
    if choice == "python" or os.environ.get("LD_PRELOAD") or os.environ.get("PYTHONMALLOC"):
        return
    library = ctypes.util.find_library("jemalloc")
    if library is None:
        if choice == "jemalloc":
            raise ValueError("jemalloc, but libjemalloc is not installed (Debian: libjemalloc2)")
        return
    environment = {
        "MALLOC_CONF": JEMALLOC_CONF,
        **os.environ,
        "LD_PRELOAD": library,
        "PYTHONMALLOC": "malloc",
    }
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)


def allocator_in_use() -> str:
    """jemalloc, glibc's malloc (`PYTHONMALLOC=malloc`) or Python's own (pymalloc)."""
    if _jemalloc_mapped():
        return "jemalloc"
    return "malloc" if os.environ.get("PYTHONMALLOC", "").startswith("malloc") else "pymalloc"


def _jemalloc_mapped() -> bool:
    try:
        return "libjemalloc" in Path("/proc/self/maps").read_text()
    except OSError:  # not Linux
        return False
