"""Per-call overhead of OpenAI instrumentation: SpendScope vs peers, one command.

python bench/overhead/run.py [--calls N] [--repeats R] [--block B] [--no-interleave] [--only ENV ...]

Creates bench/.venvs/<env> (once), installs requirements-<env>.txt into it, runs worker.py there for
each subject, prints a Markdown table and writes bench/results/overhead.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENVS = ROOT / "bench" / ".venvs"
RESULTS = ROOT / "bench" / "results" / "overhead.json"
PIP_TIMEOUT_S = 900
DISTRIBUTIONS = {
    "otel-genai": "opentelemetry-instrumentation-genai-openai",
    "openllmetry": "opentelemetry-instrumentation-openai",
}


@dataclass(frozen=True)
class Env:
    name: str
    subjects: tuple[str, ...]
    label: str = ""  # row label when it differs from the subject name
    editable_repo: bool = False


ENVS = (
    Env("spendscope", ("baseline", "otel-floor", "spendscope"), editable_repo=True),
    Env("otel-genai", ("otel-genai",)),
    Env("openllmetry", ("openllmetry",)),
    Env("openlit", ("openlit",)),
    Env("openlit-forced", ("openlit",), label="openlit, openai<3 pin overridden"),
)


def venv_python(env: Env) -> Path:
    return VENVS / env.name / "bin" / "python"


def pip_failure(output: str) -> str:
    """The line(s) of pip's output that say why it failed."""
    conflict = re.search(r"The conflict is caused by:\n((?:[ \t]+.*\n?)+)", output)
    if conflict:
        return "pip: " + "; ".join(line.strip() for line in conflict.group(1).splitlines())
    lines = [line for line in output.splitlines() if line.startswith("ERROR")] or output.splitlines()
    return "pip: " + (lines[-1].strip() if lines else "failed")


def install(env: Env) -> str | None:
    """Create and fill env's virtualenv; returns why it failed, or None."""
    steps = [["-r", str(HERE / f"requirements-{env.name}.txt")]]
    if env.editable_repo:
        steps[0] += ["-e", str(ROOT)]
    override = HERE / f"requirements-{env.name}.override.txt"
    if override.exists():
        steps.append(["-r", str(override)])
    inputs = [Path(step[1]).read_bytes() for step in steps]
    if env.editable_repo:
        inputs.append((ROOT / "pyproject.toml").read_bytes())
    digest = hashlib.sha256(b"\0".join(inputs)).hexdigest()
    stamp = VENVS / env.name / ".bench-installed"
    if stamp.exists() and stamp.read_text() == digest:
        return None
    if not venv_python(env).exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / env.name)], check=True)
    for step in steps:
        print(f"[{env.name}] pip install {' '.join(step)}", file=sys.stderr, flush=True)
        cmd = [str(venv_python(env)), "-m", "pip", "install", "--disable-pip-version-check", *step]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"pip install timed out after {PIP_TIMEOUT_S}s"
        if proc.returncode != 0:
            return pip_failure(proc.stdout + proc.stderr)
    stamp.write_text(digest)
    return None


def run_worker(env: Env, subject: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [str(venv_python(env)), str(HERE / "worker.py"), "--subject", subject]
    cmd += ["--calls", str(args.calls), "--repeats", str(args.repeats), "--block", str(args.block)]
    cmd += ["--interleave"] * args.interleave
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_", "OPENLIT_"))}
    print(f"[{env.name}] {subject}: measuring", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.worker_timeout, env=child_env)
    except subprocess.TimeoutExpired:
        return {"subject": subject, "error": f"worker timed out after {args.worker_timeout:.0f}s"}
    lines = proc.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"subject": subject, "error": f"worker exit {proc.returncode}: {tail[:300]}"}
    return result


def captured_summary(subject: str, workload: str, cap: dict[str, Any], metrics: list[str]) -> str:
    if subject == "baseline":
        return "uninstrumented twice (A/A): noise floor"
    if subject == "otel-floor":
        return "SpendScope's span and semconv histogram records alone (constant attributes): the SDK's share"
    parts = [f"tokens: {cap['tokens']}"]
    if workload == "stream":
        parts.append(f"injects include_usage: {'yes' if cap['injected_include_usage'] else 'no'}")
    else:
        parts.append(f"cached: {'yes' if cap['cached'] else 'no'}")
    cost_metric = any("cost" in name for name in metrics)
    parts.append(f"cost: {'span' if cap['cost'] else 'no'}{' + metric' if cost_metric else ''}")
    parts.append(f"{len(cap['attribute_keys'])} attrs, {len(metrics)} metrics")
    if cap["log_records"]:
        parts.append(f"{cap['log_records']} log event(s)")
    return ", ".join(parts)


def rows_for(env: Env, subject: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    label = env.label or subject
    version = (result.get("versions") or {}).get(DISTRIBUTIONS.get(subject, subject))
    if version:
        label = f"{label} ({version})"
    if "error" in result:
        return [{"subject": label, "workload": "-", "failed": result["error"]}]
    metrics = result.get("metric_names", [])
    return [
        {
            "subject": label,
            "workload": name,
            **{k: w[k] for k in ("baseline_us", "instrumented_us", "added_us", "ratio")},
            "captured": captured_summary(subject, name, w["captured"], metrics),
        }
        for name, w in result["workloads"].items()
    ]


def markdown(rows: list[dict[str, Any]]) -> str:
    out = [
        "| subject | workload | baseline µs | instrumented µs | added µs | ratio | captured |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "failed" in r:
            out.append(f"| {r['subject']} | - | - | - | - | - | failed: {r['failed']} |")
        else:
            out.append(
                f"| {r['subject']} | {r['workload']} | {r['baseline_us']:.0f} | {r['instrumented_us']:.0f} "
                f"| {r['added_us']:+.0f} | {r['ratio']:.2f} | {r['captured']} |"
            )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per repeat (default 500)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per workload (default 7)")
    parser.add_argument("--only", nargs="+", choices=[e.name for e in ENVS], help="run only these envs")
    parser.add_argument(
        "--no-interleave",
        dest="interleave",
        action="store_false",
        help="measure baseline first, then instrumented (default: alternate them, robust to drift)",
    )
    parser.add_argument("--block", type=int, default=10, help="calls per alternating block (default 10)")
    parser.add_argument("--worker-timeout", type=float, default=1200.0, help="seconds per worker")
    args = parser.parse_args()
    started = time.monotonic()
    load_before = os.getloadavg()
    VENVS.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    for env in ENVS:
        if args.only and env.name not in args.only:
            continue
        failure = install(env)
        for subject in env.subjects:
            if failure:
                result: dict[str, Any] = {"subject": subject, "error": failure}
            else:
                result = run_worker(env, subject, args)
            raw[f"{env.name}/{subject}"] = result
            rows.extend(rows_for(env, subject, result))
    elapsed = time.monotonic() - started
    table = markdown(rows)
    print(table)
    metric_lines = [
        f"- {key}: {', '.join(r['metric_names']) or 'none'}" for key, r in raw.items() if "metric_names" in r
    ]
    print("\nMetrics recorded:\n" + "\n".join(metric_lines))
    for name, w in raw.get("spendscope/baseline", {}).get("workloads", {}).items():
        if abs(w["ratio"] - 1) > 0.05:
            print(f"\nWARNING: the A/A baseline ({name}) is off by {w['ratio'] - 1:+.0%}: noisy machine.")
    order = (
        f"interleaved in blocks of {args.block} (AB/BA)"
        if args.interleave
        else "baseline first, then instrumented"
    )
    print(
        f"\n{args.calls} calls x {args.repeats} repeats per workload, {order}; "
        "process CPU time, fastest repeat. "
        f"Run took {elapsed:.0f}s; 1-min load average before: {load_before[0]:.2f}, "
        f"after: {os.getloadavg()[0]:.2f}."
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "calls": args.calls,
        "repeats": args.repeats,
        "interleaved": args.interleave,
        "block": args.block if args.interleave else None,
        "elapsed_s": round(elapsed, 1),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": {"cpus": os.cpu_count(), "os": platform.platform(), "python": sys.version.split()[0]},
        "rows": rows,
        "results": raw,
        "table": table,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
