"""Fitting report tables to a terminal (pure): amounts and counts whole, text and headers folded."""

from __future__ import annotations

from spendscope.store.table_layout import Layout, fit, wrap_header

HEADERS = ["user", "calls", "usage_unavailable_calls", "cost_usd"]
CELLS = [["recruiter-anna", "1,234", "0", "$0.00941220"], ["u-2", "7", "12", "$12.50000000"]]


def test_a_wide_terminal_shows_every_header_and_cell_on_one_line() -> None:
    assert fit(HEADERS, CELLS, 200) == Layout([14, 5, 23, 12], 1, 67)


def test_a_narrow_terminal_folds_text_and_headers_not_numbers() -> None:
    # the room left after the numbers goes first to the header that would break inside a word
    assert fit(HEADERS, CELLS, 50) == Layout([8, 5, 12, 12], 1, 50)
    assert fit(HEADERS, CELLS, 36) == Layout([4, 5, 2, 12], 1, 36)  # text down to TEXT_FLOOR


def test_narrower_still_the_cells_lose_their_padding_then_the_table_overflows() -> None:
    assert fit(HEADERS, CELLS, 30) == Layout([6, 5, 2, 12], 0, 30)
    assert fit(HEADERS, CELLS, 20) == Layout([4, 5, 2, 12], 0, 28)  # wider than asked: numbers whole


def test_headers_break_after_their_underscores() -> None:
    assert wrap_header("usage_unavailable_calls", 12) == "usage_\nunavailable_\ncalls"
    assert wrap_header("usage_unavailable_calls", 18) == "usage_unavailable_\ncalls"
    assert wrap_header("cost_usd", 8) == "cost_usd"
    assert wrap_header("attr:job_id", 4) == "attr:job_\nid"  # the table folds what is still too long
