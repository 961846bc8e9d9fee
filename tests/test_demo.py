"""The README's first command: the whole pipeline on local defaults, and its numbers are right. The
demo runs in subprocesses here, as a user runs it; it starts a store server for its store and stops it
when it ends."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

# Published OpenAI prices per 1M tokens: (uncached text in, cached in, text out, audio in, audio out).
RATES = {
    "gpt-4o-mini-2024-07-18": ("0.15", "0.075", "0.60", None, None),
    "gpt-4.1-2025-04-14": ("2", "0.50", "8", None, None),
    "gpt-5-mini": ("0.25", "0.025", "2", None, None),
    "text-embedding-3-small": ("0.02", None, "0", None, None),
    "gpt-realtime": ("4", "0.40", "16", "32", "64"),
}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spendscope", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def spendscope(*args: str, env: dict[str, str] | None = None) -> Any:
    done = run(*args, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def demo_dirs(tmp: Path) -> list[str]:
    return [p.name for p in tmp.iterdir() if p.name.startswith("spendscope-demo-")]


def hand_cost(call: dict[str, Any]) -> Decimal:
    text_in, cached, out, audio_in, audio_out = (
        Decimal(r) if r else Decimal(0) for r in RATES[call["model"]]
    )
    c, a_in, a_out = call["cached_input_tokens"], call["input_audio_tokens"], call["output_audio_tokens"]
    dollars = (
        (call["input_tokens"] - c - a_in) * text_in
        + c * cached
        + a_in * audio_in
        + (call["output_tokens"] - a_out) * out
        + a_out * audio_out
    )
    return dollars / 1_000_000


def test_demo_runs_the_pipeline_and_every_stored_cost_is_right(tmp_path: Path) -> None:
    demo = spendscope("demo", "--format", "json", "--store", str(tmp_path / "store"))
    assert demo["store"] == str(tmp_path / "store")  # kept, for the commands below
    assert demo["calls"] == demo["stored_calls"] == 55  # every call reached ClickHouse, once
    assert demo["errors"] == ["429 RateLimitError", "404 NotFoundError"]
    # ClickHouse and the metrics the collector re-exposes for Prometheus agree
    assert float(demo["total_cost_usd"]) == pytest.approx(demo["metric_cost_usd"], rel=1e-9)
    tenants = {t["tenant"]: t for t in demo["tenants"]}
    assert Decimal(tenants["talentco"]["billed_usd"]) == Decimal(
        str(tenants["talentco"]["cost_usd"])
    ) * Decimal("1.25")
    assert Decimal(tenants["brightschool"]["billed_usd"]) == Decimal(str(tenants["brightschool"]["cost_usd"]))
    assert (
        tenants["brightschool"]["unpriced_calls"] == 1
        and tenants["brightschool"]["usage_unavailable_calls"] == 1
    )

    export = spendscope("export", "--store", demo["store"], "--since", "1d", "--format", "json")
    calls = [dict(zip(export["columns"], row, strict=True)) for row in export["rows"]]
    assert len(calls) == 55
    priced = [c for c in calls if c["cost_usd"] is not None]
    assert len(priced) == 51
    for call in priced:
        assert Decimal(call["cost_usd"]) == hand_cost(call), call
    unknown = [c for c in calls if c["cost_usd"] is None]
    assert sorted((c["model"], c["usage_state"], c["status"]) for c in unknown) == [
        ("brightschool-tutor-v2", "reported", "ok"),
        ("gpt-4o-mini", "unavailable", "error"),
        ("gpt-4o-mini-2024-07-18", "unavailable", "ok"),
        ("this-model-does-not-exist", "unavailable", "error"),
    ]
    assert {c["service"] for c in calls} == {"hr-platform", "homework-helper"}
    assert {c["endpoint"] for c in calls} == {
        "cv-parsing",
        "cv-search",
        "question-generation",
        "video-interview",
        "analyze_homework",
        "generate_hint",
    }
    assert {c["attributes"].get("job_id") for c in calls if c["tenant"] == "talentco"} >= {
        "job-1001",
        "job-1002",
        "job-1003",
    }
    assert all(c["api_key_redacted"] == "sk-proj-...d3m0" for c in calls)


# --- the temporary store is removed, whatever happens -------------------------------------------------
def test_the_demo_removes_its_temporary_store(tmp_path: Path) -> None:
    demo = spendscope("demo", "--format", "json", env={"TMPDIR": str(tmp_path)})
    assert demo["calls"] == demo["stored_calls"] == 55 and demo["store"] is None
    assert demo_dirs(tmp_path) == []


def test_a_bad_price_file_stops_the_demo_with_one_line(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[[models]]\nmatch = "acme-llm-1"\n')
    done = run("demo", env={"TMPDIR": str(tmp_path), "SPENDSCOPE_PRICE_FILE": str(prices)})
    assert (done.returncode, done.stderr) == (
        1,
        f"error: price file {prices}: rule 'acme-llm-1' sets no price\n",
    )
    assert demo_dirs(tmp_path) == []


def test_an_interrupted_demo_removes_its_temporary_store(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "spendscope", "demo"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        deadline = time.monotonic() + 60
        while not any((tmp_path / d / "store").exists() for d in demo_dirs(tmp_path)):  # the collector is up
            assert demo.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode != 0 and "Traceback" not in err, err
    assert demo_dirs(tmp_path) == []


def test_the_demo_tables_fit_an_80_column_terminal_with_every_amount_whole(tmp_path: Path) -> None:
    done = run("demo", env={"TMPDIR": str(tmp_path), "COLUMNS": "80", "FORCE_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    text = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    assert "┏" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    # every amount whole on its line: a "$" is always followed by digits, a point and six decimals
    cells = "\n".join(line for line in text.splitlines() if line.startswith("│"))
    assert cells.count("$") > 20
    assert cells.count("$") == len(re.findall(r"\$\d[\d,]*\.\d{6}", cells))
