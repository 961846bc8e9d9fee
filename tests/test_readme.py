"""The README's code sample runs as written (against the fake server, spans printed to the console)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from spendscope.fake_openai import FakeOpenAI

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_sample_runs_and_records_cost() -> None:
    sample = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert sample is not None
    with FakeOpenAI() as server:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "sk-proj-readme00000000000000000000",
            "OTEL_SERVICE_NAME": "readme-app",
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_METRICS_EXPORTER": "none",
        }
        done = subprocess.run(
            [sys.executable, "-c", sample.group(1)], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    span = json.loads(done.stdout)
    assert span["name"] == "chat gpt-4o-mini"
    attributes = span["attributes"]
    assert attributes["spendscope.endpoint"] == "cv-parsing" and attributes["spendscope.attr.job_id"] == "J-7"
    assert Decimal(attributes["spendscope.cost.usd"]) > 0  # an exact decimal string
    assert span["resource"]["attributes"]["service.name"] == "readme-app"
