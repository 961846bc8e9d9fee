"""One reconciliation run: fetch, stage, compare, explain, write; nothing partial is written as complete."""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, ParamSpec, TypeVar

from spendscope.pricing import Pricer
from spendscope.reconciler._errors import FetchError, ReconcileError
from spendscope.reconciler._explain import Explainer, Seen
from spendscope.reconciler._fetch import MAX_PAGE_BUCKETS, USAGE_GROUP_BY, AdminAPI, next_page
from spendscope.reconciler._keys import KeyMapping, key_figures, map_keys
from spendscope.reconciler._model import CostLine, ReconciliationResult, Windows
from spendscope.reconciler._results import failed_row, write_failure, write_result
from spendscope.reconciler._staging import Staging
from spendscope.reconciler._value import Valuer
from spendscope.store import Store, StoreError

_log = logging.getLogger("spendscope.reconciler")
P = ParamSpec("P")
T = TypeVar("T")

WIDTHS: Final = {"1h": 3600, "1d": 86400}
SOURCES: Final = tuple(USAGE_GROUP_BY)
MAX_PAGES: Final = 100_000
PAGES_AHEAD: Final = 2


@dataclass(frozen=True)
class ReconcileOptions:
    """What to reconcile and how strictly; see the README's `spendscope reconcile` settings."""

    since: datetime
    until: datetime
    bucket_width: str = "1h"
    usage_settle: timedelta = timedelta(hours=1)
    costs_settle: timedelta = timedelta(days=1)
    min_coverage: float = 0.95
    sources: tuple[str, ...] = SOURCES
    page_buckets: int = 24
    page_bytes: int = 16 * 1024 * 1024
    costs: bool = True

    def __post_init__(self) -> None:
        if self.bucket_width not in WIDTHS:
            raise ReconcileError(
                f"bucket width must be one of {', '.join(WIDTHS)}, not {self.bucket_width!r}"
            )
        unknown = sorted(set(self.sources) - set(SOURCES))
        if unknown or not self.sources:
            raise ReconcileError(f"unknown usage source(s) {unknown}: choose from {', '.join(SOURCES)}")
        if not 1 <= self.page_buckets <= MAX_PAGE_BUCKETS[self.bucket_width]:
            raise ReconcileError(
                f"page_buckets must be between 1 and {MAX_PAGE_BUCKETS[self.bucket_width]} "
                f"for {self.bucket_width}"
            )


def _floor(moment: datetime, seconds: int) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp()) // seconds * seconds, UTC)


def _ceil(moment: datetime, seconds: int) -> datetime:
    return datetime.fromtimestamp(-(-int(moment.timestamp()) // seconds) * seconds, UTC)


def plan_windows(options: ReconcileOptions, now: datetime) -> Windows:
    """The closed parts of [since, until): usage buckets that ended `usage_settle` ago, cost days that
    ended `costs_settle` ago (whole UTC days only)."""
    width = WIDTHS[options.bucket_width]
    start = datetime.fromtimestamp(int(options.since.timestamp()), UTC)
    until = datetime.fromtimestamp(int(options.until.timestamp()), UTC)
    usage_end = _floor(min(until, now - options.usage_settle), width)
    if usage_end <= start:
        raise ReconcileError(
            f"nothing to reconcile yet: no {options.bucket_width} bucket between {start:%Y-%m-%d %H:%M} and "
            f"{until:%Y-%m-%d %H:%M} UTC has been closed for {options.usage_settle} (the usage settle delay)"
        )
    costs_start = _ceil(start, 86400)
    costs_end = min(_floor(min(until, now - options.costs_settle), 86400), _floor(usage_end, 86400))
    if not options.costs or costs_end < costs_start:
        costs_end = costs_start
    return Windows(start, until, usage_end, costs_start, costs_end, options.bucket_width)


class _Timer:
    """Seconds spent per phase (reported with the result)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = round(self.seconds.get(phase, 0.0) + time.perf_counter() - started, 3)

    def timed(self, phase: str, fn: Callable[P, T]) -> Callable[P, T]:
        """`fn`, its time added to `phase` (for work done in the ClickHouse thread)."""

        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            with self(phase):
                return fn(*args, **kwargs)

        return call


@dataclass
class _Progress:
    pages: int = 0
    # (source, page number) -> the number of buckets the page holds
    buckets: dict[tuple[str, int], int] = field(default_factory=dict)


class Reconciler:
    """Reconciles a store against the admin API; `run()` returns the result of one complete run."""

    def __init__(
        self,
        store: Store,
        api: AdminAPI,
        *,
        pricer: Pricer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.api = api
        self.pricer = pricer or Pricer()
        self.clock = clock

    def run(self, options: ReconcileOptions) -> ReconciliationResult:
        started = self.clock()
        windows = plan_windows(options, started)
        run_id = uuid.uuid4().hex
        staging = Staging(self.store, run_id)
        requests_before = self.api.requests
        try:
            result = self._run(run_id, staging, windows, options, started)
            result.requests_made = self.api.requests - requests_before
            written = time.perf_counter()
            write_result(self.store, result)
            result.timings["write"] = round(time.perf_counter() - written, 3)
            return result
        except (ReconcileError, StoreError) as exc:
            try:
                write_failure(
                    self.store,
                    failed_row(
                        run_id,
                        windows,
                        started,
                        str(exc),
                        options.min_coverage,
                        self.api.requests - requests_before,
                    ),
                )
            except StoreError as also:
                _log.error("could not record the failed run %s: %s", run_id, also)
            raise
        finally:
            try:
                staging.drop()
            except StoreError as exc:  # the TTL removes it in two days
                _log.warning("could not drop the staged data of run %s: %s", run_id, exc)

    def _run(
        self, run_id: str, staging: Staging, windows: Windows, options: ReconcileOptions, started: datetime
    ) -> ReconciliationResult:
        timer = _Timer()
        with timer("keys"):
            keys = self.api.project_keys()
            tracked_keys = staging.tracked_keys(windows)
            mapping = map_keys([(project, redacted) for project, redacted, *_ in tracked_keys], keys)
        progress = _Progress()
        # HTTP in this thread, ClickHouse in two others (each with its own connection): pages are parsed
        # by ClickHouse while the next one downloads, and llm_usage is aggregated meanwhile. At most
        # PAGES_AHEAD pages wait in memory.
        with (
            Store.connect(self.store.target) as second,
            ThreadPoolExecutor(2, thread_name_prefix="spendscope-reconcile") as workers,
        ):
            other = Staging(second, run_id)
            with timer("fetch"):
                pending: deque[Future[None]] = deque()
                tracked = workers.submit(timer.timed("tracked", other.stage_tracked), windows, mapping)
                try:
                    for source in options.sources:
                        self._fetch_usage(
                            timer.timed("ingest", staging.add_page),
                            workers,
                            pending,
                            source,
                            windows,
                            options.page_buckets,
                            options.page_bytes,
                            progress,
                        )
                    costs, key_usd = self._fetch_costs(windows) if windows.has_costs else ([], None)
                except BaseException:
                    for future in (*pending, tracked):
                        future.cancel()
                    wait([*pending, tracked])  # the first error is the one to report
                    raise
                while pending:
                    pending.popleft().result()
                tracked.result()
            with timer("compare"):  # the comparison on one connection, the rest on the other
                compared = workers.submit(staging.mismatches, mapping, WIDTHS[windows.bucket_width])
                try:
                    self._check_pages(other, progress)
                    self._check_buckets(other, windows)
                    totals = other.totals()
                    keys_tracked, keys_reported = key_figures(
                        mapping, tracked_keys, other.reported_keys(), key_usd
                    )
                    seen = Seen.of(other.seen())
                    daily = other.daily(windows)
                    valuer = Valuer(self.pricer)
                    valuer.learn(costs)
                    explainer = Explainer(valuer, windows)
                    with timer("lines"):  # while the comparison runs
                        lines = explainer.lines(costs, daily) if windows.has_costs else []
                except BaseException:
                    wait([compared])
                    raise
                groups = compared.result()
        with timer("explain"):
            pieces = explainer.explain_groups(groups, seen)
            cost_pieces = explainer.explain_costs(costs, daily, pieces) if windows.has_costs else []
        if windows.has_costs:
            totals.reported_usd = sum((c.amount for c in costs), Decimal(0))
            totals.tracked_usd = sum((d.usd for d in daily), Decimal(0))
        return ReconciliationResult(
            run_id=run_id,
            windows=windows,
            started_at=started,
            finished_at=self.clock(),
            totals=totals,
            pieces=pieces + cost_pieces,
            lines=lines,
            ambiguous_keys=_describe(mapping, ambiguous=True),
            unmapped_keys=_describe(mapping, ambiguous=False),
            min_coverage=options.min_coverage,
            pages=progress.pages,
            timings=timer.seconds,
            tracked_keys=keys_tracked,
            reported_keys=keys_reported,
        )

    # --- fetching --------------------------------------------------------------------------------------
    def _fetch_usage(
        self,
        add_page: Callable[[str, int, bytes], None],
        worker: ThreadPoolExecutor,
        pending: deque[Future[None]],
        source: str,
        windows: Windows,
        page_buckets: int,
        page_bytes: int,
        progress: _Progress,
    ) -> None:
        cursor: str | None = None
        seen: set[str] = set()
        limit = page_buckets
        largest = MAX_PAGE_BUCKETS[windows.bucket_width]
        for number in range(1, MAX_PAGES + 1):
            page = self.api.usage_page(
                source,
                start=int(windows.start.timestamp()),
                end=int(windows.usage_end.timestamp()),
                bucket_width=windows.bucket_width,
                limit=limit,
                page=cursor,
                number=number,
            )
            progress.buckets[(source, number)] = page.buckets
            # the next page sized to the memory budget by this one's bytes per bucket (a page that has
            # more holds `limit` buckets)
            if page.has_more:
                limit = max(1, min(largest, int(page_bytes * limit / max(len(page.content), 1))))
            while len(pending) >= PAGES_AHEAD:
                pending.popleft().result()
            pending.append(worker.submit(add_page, source, number, page.content))
            progress.pages += 1
            cursor = next_page(page.has_more, page.next_page, seen, f"usage/{source} page {number}")
            del page
            if cursor is None:
                return
        raise FetchError(f"usage/{source}: more than {MAX_PAGES} pages; narrow the window")

    def _check_pages(self, staging: Staging, progress: _Progress) -> None:
        """Every page fetched must be staged whole: the buckets ClickHouse parsed are the ones read."""
        stored = staging.staged_pages()
        if stored != progress.buckets:
            missing = sorted(set(progress.buckets) - set(stored))
            differ = sorted(k for k in stored if progress.buckets.get(k) != stored[k])
            raise FetchError(
                f"staged usage pages disagree with the pages fetched: missing {missing}, differ {differ}"
            )

    def _check_buckets(self, staging: Staging, windows: Windows) -> None:
        """Buckets must lie inside the window and not overlap; a missing bucket is only logged (the API
        may leave out empty ones), a bucket outside the window or twice means the pages are wrong."""
        start, end = int(windows.start.timestamp()), int(windows.usage_end.timestamp())
        last: dict[str, int] = {}
        for source, first, stop, _ in staging.buckets():
            if first < start or stop > end + WIDTHS[windows.bucket_width] or stop <= first:
                raise FetchError(
                    f"usage/{source} returned a bucket [{first}, {stop}) outside the window [{start}, {end})"
                )
            if first < last.get(source, start):
                raise FetchError(f"usage/{source} returned overlapping buckets at {first}")
            if first > last.get(source, start):
                _log.info("usage/%s has no bucket for [%d, %d)", source, last.get(source, start), first)
            last[source] = stop

    def _fetch_costs(self, windows: Windows) -> tuple[list[CostLine], dict[tuple[str, str], Decimal]]:
        """The Costs API's line items (summed over keys), and its dollars by (project_id, api_key_id)."""
        merged: dict[tuple[datetime, str, str], list[Decimal | None]] = {}
        units: dict[tuple[datetime, str, str], str | None] = {}
        by_key: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for body in self.api.costs_pages(
            start=int(windows.costs_start.timestamp()), end=int(windows.costs_end.timestamp())
        ):
            for bucket in body["data"]:
                day = datetime.fromtimestamp(int(bucket["start_time"]), UTC)
                if not windows.costs_start <= day < windows.costs_end:
                    raise FetchError(
                        f"costs returned a bucket starting {day:%Y-%m-%d %H:%M} outside the window"
                    )
                for result in bucket.get("results") or []:
                    amount, quantity = _amount(result)
                    if amount is None:
                        continue
                    key = (
                        day,
                        str(result.get("project_id") or ""),
                        str(result.get("line_item") or "unknown"),
                    )
                    by_key[(key[1], str(result.get("api_key_id") or ""))] += amount
                    total = merged.setdefault(key, [Decimal(0), Decimal(0)])
                    total[0] = (total[0] or Decimal(0)) + amount
                    total[1] = None if quantity is None or total[1] is None else total[1] + quantity
                    units[key] = result.get("quantity_unit")
        lines = [
            CostLine(day, project, item, amount or Decimal(0), quantity, units.get((day, project, item)))
            for (day, project, item), (amount, quantity) in sorted(merged.items())
        ]
        return lines, dict(by_key)


def _amount(result: dict[str, Any]) -> tuple[Decimal | None, Decimal | None]:
    amount = result.get("amount") or {}
    currency = str(amount.get("currency") or "usd").lower()
    if currency != "usd":
        raise FetchError(f"the Costs API reports {currency}; SpendScope reconciles US dollars only")
    try:
        value = None if amount.get("value") is None else Decimal(str(amount["value"]))
        quantity = None if result.get("quantity") is None else Decimal(str(result["quantity"]))
    except InvalidOperation:
        raise FetchError(f"the Costs API sent an amount that is not a number: {amount!r}") from None
    return value, quantity


def _describe(mapping: KeyMapping, *, ambiguous: bool) -> list[str]:
    out = []
    for match in mapping.ambiguous if ambiguous else mapping.unmapped:
        where = f" in {match.project}" if match.project else ""
        if ambiguous:
            out.append(f"{match.redacted}{where} -> {', '.join(match.candidates)}")
        else:
            out.append(f"{match.redacted}{where}")
    return out
