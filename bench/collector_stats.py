"""`spendscope` with a SIGUSR1 handler that writes the process's allocator statistics to the file
`$SPENDSCOPE_BENCH_STATS.<n>` (n = 1, 2, ...): Python's small-object allocator (`sys._debugmallocstats`)
and glibc's (`mallinfo2`). For `python bench/memory.py --malloc-stats`, which runs the collector
through it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from types import FrameType

from spendscope.cli import app

_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
_written = 0


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (*_FIELDS, "keepcost")]


def _dump(signum: int, frame: FrameType | None) -> None:
    global _written
    _written += 1
    path = f"{os.environ['SPENDSCOPE_BENCH_STATS']}.{_written}"
    sys.stderr.flush()
    saved = os.dup(2)
    out = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 2)  # _debugmallocstats writes to the C stderr
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(out)
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    with open(path + ".tmp", "a") as stats:
        for name in _FIELDS:
            print(f"# mallinfo2 {name} = {getattr(info, name)}", file=stats)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _dump)
    app()
