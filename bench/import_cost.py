"""What `import spendscope`, `instrument_openai()` and `configure()` cost an app: time and memory.

    python bench/import_cost.py [--runs 21] [--source DIR] [--json FILE]

Every sample is a fresh interpreter (`python -c ...`), so nothing is already imported. The probes run
in turn within each round, so that the machine's drift weighs on all of them alike:

- `pass`: the interpreter alone, with the few lines that report the figures;
- `import spendscope`;
- `import openai`: for comparison, what an app that calls OpenAI pays anyway;
- `instrument_openai()`: `import openai, spendscope` first (not measured), then the call alone: what
  it loads and patches;
- `configure()`: the same for `configure(traces_exporter="none", metrics_exporter="none")`, which
  also builds the OpenTelemetry SDK's providers (no exporter, so no thread and no network);
- `app start`: `import openai, spendscope` and that `configure()`, all measured: an app's start with
  SpendScope; minus `import openai`, what SpendScope adds to it.

Each child measures its measured statements itself (wall time, CPU time of the process, resident set
`VmRSS` from /proc/self/status and the number of modules loaded), and reports the whole process's CPU
time and peak resident set (`VmHWM`; not `ru_maxrss`, which Linux carries over from the parent across
the exec); the parent times each child's whole run. The figures are medians over the runs; the
whole-process ones are given as the `import spendscope` child minus the `pass` child.

`--source DIR` measures the spendscope in DIR (put first on PYTHONPATH) with this interpreter's
packages, so another revision is measured beside this checkout:
`git archive REV | tar -x -C DIR`, then `--source DIR`. The 1-minute load average is printed before
and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Runs in each child: `setup` first (not measured), then `measured`, then the report on stdout.
_CHILD = """
import resource, sys, time
def _status(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) * 1024
def _rss():
    return _status("VmRSS")
{setup}
_mods, _rss0, _cpu, _wall = len(sys.modules), _rss(), time.process_time(), time.perf_counter()
{measured}
_wall, _cpu = time.perf_counter() - _wall, time.process_time() - _cpu
_rss1, _mods1 = _rss(), len(sys.modules)
_use = resource.getrusage(resource.RUSAGE_SELF)
_loaded = sorted(m for m in ("genai_prices", "pydantic", "openai", "opentelemetry.sdk") if m in sys.modules)
_spendscope = sys.modules.get("spendscope")
import json
print(json.dumps({{
    "wall_ms": _wall * 1e3,
    "cpu_ms": _cpu * 1e3,
    "rss_added_mib": (_rss1 - _rss0) / 2**20,
    "modules_added": _mods1 - _mods,
    "process_cpu_ms": (_use.ru_utime + _use.ru_stime) * 1e3,
    "process_peak_rss_mib": _status("VmHWM") / 2**20,
    "loaded": _loaded,
    "spendscope": getattr(_spendscope, "__file__", None),
}}))
"""

_CONFIGURE = "spendscope.configure(traces_exporter='none', metrics_exporter='none')"
PROBES: dict[str, tuple[str, str]] = {  # name -> (setup, measured)
    "pass": ("", "pass"),
    "import spendscope": ("", "import spendscope"),
    "import openai": ("", "import openai"),
    "instrument_openai()": ("import openai, spendscope", "spendscope.instrument_openai()"),
    "configure()": ("import openai, spendscope", _CONFIGURE),
    "app start": ("", f"import openai, spendscope; {_CONFIGURE}"),
}
_FIGURES = ("wall_ms", "cpu_ms", "rss_added_mib", "modules_added")


def sample(probe: str, env: dict[str, str]) -> dict[str, Any]:
    setup, measured = PROBES[probe]
    code = _CHILD.format(setup=setup, measured=measured)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd="/"
    )
    result: dict[str, Any] = json.loads(done.stdout)
    result["process_wall_ms"] = (time.perf_counter() - started) * 1e3
    return result


def median(samples: list[dict[str, Any]], key: str) -> float:
    return statistics.median(s[key] for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="samples of each probe (default 21)")
    parser.add_argument("--source", type=Path, help="measure the spendscope in this directory")
    parser.add_argument("--json", type=Path, help="also write the samples and medians here")
    args = parser.parse_args()

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if args.source is not None:
        env["PYTHONPATH"] = str(args.source.resolve())
    load_before = os.getloadavg()[0]
    samples: dict[str, list[dict[str, Any]]] = {probe: [] for probe in PROBES}
    names = list(PROBES)
    for run in range(args.runs):
        shift = run % len(names)  # each probe takes each position in turn
        for probe in names[shift:] + names[:shift]:
            samples[probe].append(sample(probe, env))
    load_after = os.getloadavg()[0]

    medians = {probe: {key: median(samples[probe], key) for key in _FIGURES} for probe in names}
    base, imported = samples["pass"], samples["import spendscope"]
    process = {
        "wall_ms_over_pass": median(imported, "process_wall_ms") - median(base, "process_wall_ms"),
        "cpu_ms_over_pass": median(imported, "process_cpu_ms") - median(base, "process_cpu_ms"),
        "peak_rss_mib": median(imported, "process_peak_rss_mib"),
        "pass_peak_rss_mib": median(base, "process_peak_rss_mib"),
    }
    added = {key: medians["app start"][key] - medians["import openai"][key] for key in _FIGURES}

    print(f"spendscope: {imported[0]['spendscope']}")
    print(f"python {sys.version.split()[0]}, {args.runs} runs, medians")
    print(f"1-minute load average: {load_before:.2f} before, {load_after:.2f} after")
    print(f"loaded by `import spendscope`: {', '.join(imported[0]['loaded']) or 'none of those watched'}")
    print()
    print(f"{'':40} {'wall ms':>8} {'CPU ms':>8} {'RSS MiB':>8} {'modules':>8}")
    for label, figures in [(probe, medians[probe]) for probe in names[1:]] + [
        ("app start minus import openai", added)
    ]:
        print(
            f"{label:40} {figures['wall_ms']:8.1f} {figures['cpu_ms']:8.1f} "
            f"{figures['rss_added_mib']:+8.1f} {figures['modules_added']:8.0f}"
        )
    print()
    print(
        f"import spendscope, whole process over python -c pass: {process['wall_ms_over_pass']:.1f} ms wall, "
        f"{process['cpu_ms_over_pass']:.1f} ms CPU; peak RSS {process['peak_rss_mib']:.1f} MiB "
        f"({process['pass_peak_rss_mib']:.1f} MiB for python -c pass)"
    )
    if args.json is not None:
        report = {
            "runs": args.runs,
            "python": sys.version.split()[0],
            "spendscope": imported[0]["spendscope"],
            "load_average_1m": [load_before, load_after],
            "medians": medians,
            "import_spendscope_process": process,
            "app_start_minus_import_openai": added,
            "samples": samples,
        }
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
