"""The result for people (a rich summary) and for scripts (JSON, CSV), from a ReconciliationResult."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from spendscope.reconciler._keys import MAPPED, ReportedKey, TrackedKey
from spendscope.reconciler._model import CAUSES, TOKEN_CAUSES, ReconciliationResult
from spendscope.reconciler._results import DIFF_COLUMNS
from spendscope.store.formatting import spreadsheet_text

CAUSE_HELP: Final = {
    "untracked": "usage on a key, project or model with no spans (an un-instrumented service), tool fees",
    "usage_unavailable": "calls answered without usage (streams closed early)",
    "failed_billed": "calls that failed for SpendScope but OpenAI counted and billed",
    "tier_batch_mispricing": "priced at the wrong service tier or without the batch discount",
    "missing_price": "calls with usage but no known price (cost unknown, not $0)",
    "stale_price": "calls priced with price data that has changed since",
    "unexplained": "what none of the above accounts for",
}
CSV_COLUMNS: Final = DIFF_COLUMNS[1:]  # the stored diff columns, less run_id
_TEXT_COLUMNS: Final = CSV_COLUMNS.index("requests")  # the columns before it are text, the rest numbers


def money(value: Decimal | None) -> str | None:
    if value is None:
        return None
    return format(value.normalize(), "f") if value else "0"


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ratio(value: float | None) -> float | None:
    if value is None or value == float("inf"):
        return None
    return round(value, 6)


def to_json(result: ReconciliationResult) -> dict[str, Any]:
    t = result.totals
    w = result.windows
    tokens = result.cause_tokens()
    usd = result.cause_usd()
    calls = result.cause_calls()
    return {
        "run_id": result.run_id,
        "status": "complete",
        "passed": result.passed,
        "coverage": _ratio(result.coverage),
        "min_coverage": result.min_coverage,
        "window": {
            "start": _time(w.start),
            "until": _time(w.until),
            "usage_end": _time(w.usage_end),
            "costs_start": _time(w.costs_start),
            "costs_end": _time(w.costs_end),
            "bucket_width": w.bucket_width,
        },
        "tokens": {
            "tracked": t.tracked_tokens,
            "reported": t.reported_tokens,
            "residual": t.residual_tokens,
            "coverage_ratio": _ratio(t.token_coverage_ratio),
            "tracked_requests": t.tracked_requests,
            "reported_requests": t.reported_requests,
        },
        "usd": {
            "tracked": money(t.tracked_usd) if w.has_costs else None,
            "reported": money(t.reported_usd),
            "residual": money(t.residual_usd),
            "coverage_ratio": _ratio(t.coverage_ratio),
        },
        "causes": {
            cause: {
                "tokens": tokens[cause],
                "usd": money(usd[cause]) if w.has_costs else None,
                "calls": calls[cause],
            }
            for cause in CAUSES
        },
        "ambiguous_keys": result.ambiguous_keys,
        "unmapped_keys": result.unmapped_keys,
        "keys": {
            "tracked": [_tracked_key(k) for k in result.tracked_keys],
            "reported": [_reported_key(k) for k in result.reported_keys],
        },
        "diffs": [dict(zip(CSV_COLUMNS, row, strict=True)) for row in _rows(result)],
        "pages": result.pages,
        "requests_made": result.requests_made,
        "timings_s": result.timings,
    }


def _tracked_key(key: TrackedKey) -> dict[str, Any]:
    m = key.match
    return {
        "project": m.project,
        "redacted": m.redacted,
        "mapping": m.status,
        "api_key_id": "|".join(m.candidates),
        "requests": key.requests,
        "tokens": key.tokens,
        "usd": money(key.usd),
    }


def _reported_key(key: ReportedKey) -> dict[str, Any]:
    return {
        "project_id": key.project_id,
        "api_key_id": key.api_key_id,
        "requests": key.requests,
        "tokens": key.tokens,
        "usd": money(key.usd),
        "fingerprints": list(key.fingerprints),
    }


def _rows(result: ReconciliationResult) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for p in result.pieces:
        k, t = p.key, p.tokens
        rows.append(
            [
                "cause",
                p.cause,
                p.detail,
                k.source,
                _time(k.bucket),
                _time(p.bucket_end),
                k.project_id,
                k.api_key_id,
                p.key_mapping,
                k.model,
                k.batch,
                k.service_tier,
                p.line_item,
                t.requests,
                t.input,
                t.cached_input,
                t.output,
                t.input_audio,
                t.output_audio,
                t.audio_seconds,
                t.total,
                p.calls,
                money(p.usd),
                None,
                None,
            ]
        )
    for line in result.lines:
        rows.append(
            [
                "line_item",
                "",
                "",
                "costs",
                _time(line.day),
                None,
                line.project_id,
                "",
                "",
                line.model,
                line.batch,
                line.service_tier,
                line.line_item,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                money(line.diff_usd),
                money(line.tracked_usd),
                money(line.reported_usd),
            ]
        )
    return rows


def to_csv(result: ReconciliationResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in _rows(result):
        cells = ["" if v is None else ("true" if v is True else "false" if v is False else v) for v in row]
        # spreadsheet-safe text (see spendscope/store/formatting.py); numbers, money included, stay numbers
        text, numbers = cells[:_TEXT_COLUMNS], cells[_TEXT_COLUMNS:]
        writer.writerow([spreadsheet_text(c) if isinstance(c, str) else c for c in text] + numbers)
    return buffer.getvalue()


def print_summary(result: ReconciliationResult, console: Any, *, top: int = 15) -> None:
    from rich.table import Table

    t = result.totals
    w = result.windows
    console.print(
        f"[bold]Reconciliation[/] {result.run_id[:12]}: tokens {_time(w.start)} to {_time(w.usage_end)} "
        f"({w.bucket_width} buckets), dollars "
        + (
            f"{w.costs_start:%Y-%m-%d} to {w.costs_end:%Y-%m-%d} (closed UTC days)"
            if w.has_costs
            else "not compared (no closed cost day yet)"
        )
    )
    totals = Table(title="SpendScope vs OpenAI", title_justify="left")
    for column in ("", "tracked", "reported by OpenAI", "residual", "coverage"):
        totals.add_column(column, justify="left" if not column else "right")
    totals.add_row(
        "requests",
        f"{t.tracked_requests:,}",
        f"{t.reported_requests:,}",
        f"{t.reported_requests - t.tracked_requests:,}",
        "",
    )
    totals.add_row(
        "tokens",
        f"{t.tracked_tokens:,}",
        f"{t.reported_tokens:,}",
        f"{t.residual_tokens:,}",
        _percent(t.token_coverage_ratio),
    )
    if w.has_costs:
        totals.add_row(
            "USD", _usd(t.tracked_usd), _usd(t.reported_usd), _usd(t.residual_usd), _percent(t.coverage_ratio)
        )
    console.print(totals)

    causes = Table(title="Residual (reported - tracked) by cause", title_justify="left")
    for column in ("cause", "calls", "tokens", "USD", "what it is"):
        causes.add_column(column, justify="right" if column in ("calls", "tokens", "USD") else "left")
    tokens = result.cause_tokens()
    usd = result.cause_usd()
    calls = result.cause_calls()
    for cause in CAUSES:
        mark = "" if cause in TOKEN_CAUSES else " *"
        causes.add_row(
            cause,
            f"{calls[cause]:,}",
            f"{tokens[cause]:,}{mark}",
            _usd(usd[cause]) if w.has_costs else "",
            CAUSE_HELP[cause],
        )
    console.print(causes)
    console.print("  * tokens affected (already counted), not missing tokens")

    if result.pieces:
        biggest = sorted(
            result.pieces,
            key=lambda p: (-(abs(p.usd) if p.usd is not None else Decimal(-1)), -abs(p.tokens.total)),
        )
        table = Table(title=f"Largest differences (of {len(result.pieces)})", title_justify="left")
        columns = (
            "bucket",
            "project",
            "api key",
            "model",
            "tier",
            "cause",
            "calls",
            "tokens",
            "USD",
            "detail",
        )
        for column in columns:
            table.add_column(column, justify="right" if column in ("calls", "tokens", "USD") else "left")
        for p in biggest[:top]:
            table.add_row(
                f"{p.key.bucket:%Y-%m-%d %H:%M}",
                p.key.project_id,
                p.key.api_key_id,
                p.key.model or p.line_item,
                p.key.tier_label(),
                p.cause,
                f"{p.calls:,}",
                f"{p.tokens.total:,}",
                _usd(p.usd),
                p.detail,
            )
        console.print(table)
    _print_keys(result, console, top)
    for key in result.ambiguous_keys:
        console.print(f"[yellow]ambiguous key[/]: {key} (compared together, not guessed)")
    for key in result.unmapped_keys:
        console.print(f"[yellow]unmapped key[/]: {key} matches no key of the admin listing")
    coverage = result.coverage
    verdict = "[green]OK[/]" if result.passed else "[red]BELOW THRESHOLD[/]"
    console.print(f"Coverage {_percent(coverage)} (threshold {result.min_coverage:.0%}): {verdict}")


def _print_keys(result: ReconciliationResult, console: Any, top: int) -> None:
    """The keys on both sides with their figures: ambiguous and unmapped fingerprints first, then
    the largest."""
    from rich.table import Table

    tracked = sorted(result.tracked_keys, key=lambda k: (k.match.status == MAPPED, -k.tokens))
    if tracked:
        table = Table(title=f"API keys in spans (of {len(tracked)})", title_justify="left")
        for column in ("key", "project", "maps to", "mapping", "requests", "tokens", "USD"):
            table.add_column(column, justify="right" if column in ("requests", "tokens", "USD") else "left")
        for k in tracked[:top]:
            table.add_row(
                k.match.redacted or "(none)",
                k.match.project,
                "|".join(k.match.candidates),
                k.match.status,
                f"{k.requests:,}",
                f"{k.tokens:,}",
                _usd(k.usd) if k.usd is not None else "",
            )
        console.print(table)
    reported = sorted(result.reported_keys, key=lambda k: (bool(k.fingerprints), -k.tokens))
    if reported:
        table = Table(title=f"API keys OpenAI reports (of {len(reported)})", title_justify="left")
        for column in ("api key", "project", "requests", "tokens", "USD", "keys in spans"):
            table.add_column(column, justify="right" if column in ("requests", "tokens", "USD") else "left")
        for r in reported[:top]:
            table.add_row(
                r.api_key_id or "(none)",
                r.project_id,
                f"{r.requests:,}",
                f"{r.tokens:,}",
                _usd(r.usd) if r.usd is not None else "",
                ", ".join(r.fingerprints),
            )
        console.print(table)


def _usd(value: Decimal | None) -> str:
    return "unknown" if value is None else f"${value:,.6f}"


def _percent(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == float("inf"):
        return "inf"
    return f"{value:.2%}"
