"""The cyclic garbage collector and a large query: `python bench/gc_pause.py [--rounds 60] [--rows 20000]
[--collector]`.

A query of `--rows` rows of 10 columns (one of them DateTime64, which the store converts value by
value) on an embedded store, its rows built as `Store.query` builds them; alternately as it is and as
it was up to commit cd73fd5, with the cyclic garbage collector turned off, process-wide, while the
rows are built. The process first loads what a collector holds (its modules, genai-prices' data, the
price rows), so collections have a heap of realistic size to walk. `--collector`: the collector's own
collection settings (`_tune_garbage_collection`: start-up objects frozen, a young generation of
10,000); without it, Python's defaults, as in `spendscope report` or a library user. Prints the median
and maximum CPU time (`time.process_time`: every thread, the embedded ClickHouse included) and wall
time of each.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time

from spendscope.collector._collector import _tune_garbage_collection
from spendscope.pricing import Pricer
from spendscope.store.prices import catalogue_rows
from spendscope.store.store import Rows, Store, _value, open_store

SQL = (
    "SELECT number, toString(number), number * 2, "
    "toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + number, number % 7, "
    "concat('user-', toString(number % 1000)), toDecimal128(number, 9), number / 3, 'acme', number + 1 "
    "FROM numbers({rows:UInt64})"
)


def query(store: Store, rows: int, paused: bool) -> Rows:
    """`Store.query`'s steps; `paused`: the collector off while the rows are built (up to cd73fd5)."""
    result = store.client.query(SQL, parameters={"rows": rows})
    data = [
        [_value(v) for v in values] if "DateTime" in type_.name else values
        for values, type_ in zip(result.result_columns, result.column_types, strict=True)
    ]
    if paused:
        gc.disable()
    try:
        return Rows(list(result.column_names), list(map(list, zip(*data, strict=True))))
    finally:
        gc.enable()


def timed(store: Store, rows: int, paused: bool) -> tuple[float, float]:
    """CPU and wall milliseconds of one query."""
    cpu, wall = time.process_time(), time.perf_counter()
    query(store, rows, paused)
    return (time.process_time() - cpu) * 1e3, (time.perf_counter() - wall) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--collector", action="store_true", help="the collector's collection settings")
    args = parser.parse_args()

    catalogue_rows(Pricer())
    if args.collector:
        _tune_garbage_collection()
    store = open_store(f"chdb://{tempfile.mkdtemp(prefix='spendscope-bench-')}")
    timed(store, args.rows, False)
    results: dict[str, list[tuple[float, float]]] = {"as it is": [], "paused": []}
    for i in range(args.rounds):
        for paused in (False, True) if i % 2 else (True, False):
            results["paused" if paused else "as it is"].append(timed(store, args.rows, paused))
    print(
        f"{'collector settings' if args.collector else 'Python defaults'}: thresholds {gc.get_threshold()}, "
        f"{gc.get_freeze_count()} objects frozen, {len(gc.get_objects())} tracked; {args.rows} rows"
    )
    for name, samples in results.items():
        cpu = [c for c, _ in samples]
        wall = [w for _, w in samples]
        print(
            f"  {name:13}  CPU ms median {statistics.median(cpu):6.1f}  max {max(cpu):6.1f}   "
            f"wall ms median {statistics.median(wall):6.1f}  max {max(wall):6.1f}  ({len(samples)} queries)"
        )
    store.close()


if __name__ == "__main__":
    main()
