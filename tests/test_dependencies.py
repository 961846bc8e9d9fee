"""pyproject.toml's ranges, the lock (constraints.txt) and the installed packages agree.

The lock's header records the sha256 of pyproject.toml's dependency tables (requires-python,
dependencies and optional-dependencies as canonical JSON, as scripts/lock writes it).
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

import spendscope
from spendscope.instrumentation import _openai
from tests.conftest import make_capture

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints.txt"
DIGEST_LINE = "# lock: pyproject.toml dependency tables sha256 "
REFRESH = "run scripts/lock"


def project() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return data


def requirements() -> dict[str, list[Requirement]]:
    """Base ("") and each extra's requirements, without the extras' references to spendscope itself."""
    tables = {"": project()["dependencies"], **project()["optional-dependencies"]}
    return {
        extra: [r for r in map(Requirement, reqs) if canonicalize_name(r.name) != "spendscope"]
        for extra, reqs in tables.items()
    }


def lock_pins() -> dict[str, Version]:
    """The lock's pins that apply to this interpreter and platform, by canonical name."""
    pins: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"constraints.txt: {line!r} is not an exact pin"
        pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def test_the_lock_was_written_from_this_pyproject() -> None:
    tables = {k: project().get(k) for k in ("requires-python", "dependencies", "optional-dependencies")}
    digest = hashlib.sha256(json.dumps(tables, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    recorded = [
        line.removeprefix(DIGEST_LINE)
        for line in LOCK.read_text().splitlines()
        if line.startswith(DIGEST_LINE)
    ]
    assert recorded == [digest], (
        f"pyproject.toml's dependencies changed since constraints.txt was written: {REFRESH}"
    )


def test_every_requirement_is_pinned_in_the_lock_within_its_range() -> None:
    pins = lock_pins()
    for extra, reqs in requirements().items():
        for requirement in reqs:
            where = f"{requirement} ({f'extra {extra}' if extra else 'dependencies'})"
            pin = pins.get(canonicalize_name(requirement.name))
            assert pin is not None, f"{where} is not in constraints.txt: run scripts/lock"
            assert requirement.specifier.contains(pin, prereleases=True), (
                f"{where}: constraints.txt pins {pin}: {REFRESH}"
            )


def test_every_requirement_has_a_lower_and_an_upper_bound() -> None:
    for extra, reqs in requirements().items():
        for requirement in reqs:
            operators = {spec.operator for spec in requirement.specifier}
            where = f"{requirement} ({f'extra {extra}' if extra else 'dependencies'})"
            assert operators in ({">=", "<"}, {"=="}), (
                f"{where}: give a tested lower bound and an upper bound"
            )


@pytest.mark.skipif(
    os.environ.get("SPENDSCOPE_UNLOCKED") == "1", reason="SPENDSCOPE_UNLOCKED=1: installed without the lock"
)
def test_the_installed_packages_are_the_locked_ones() -> None:
    wrong = []
    for name, pinned in sorted(lock_pins().items()):
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            wrong.append(f"{name} is not installed (locked: {pinned})")
            continue
        if installed != pinned:
            wrong.append(f"{name} {installed} is installed, constraints.txt has {pinned}")
    assert not wrong, "install with pip install -c constraints.txt -e '.[test]':\n" + "\n".join(wrong)


# --- every package the code imports is declared, in the extra that needs it ----------------------------
# The app side (what `import spendscope` and the instrumentation use) needs only the base dependencies and
# openai itself; the server side the collector extra; the fake OpenAI server and the demo the demo extra.
SERVER_SIDE = ("collector", "store", "reconciler", "budgets", "cli", "portal", "__main__.py")
DEMO_SIDE = ("demo",)  # demo/fake_openai/ among it


def declared(*extras: str) -> set[str]:
    tables = requirements()
    return {canonicalize_name(r.name) for extra in ("", *extras) for r in tables[extra]}


def extras_for(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(ROOT).parts
    if parts[0] == "tests":
        return ("openai", "collector", "demo", "test")
    if parts[1] in DEMO_SIDE:
        return ("openai", "collector", "demo")
    if parts[1] in SERVER_SIDE:
        return ("openai", "collector")
    return ("openai",)


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """Absolute imports; for `from package import name`, package.name when that is a module."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield (
                    node.lineno,
                    submodule if submodule.replace(".", "/") in module_owners() else node.module,
                )


@cache
def module_owners() -> dict[str, set[str]]:
    """Installed module and package paths ("yaml", "google/rpc") to the distributions that install them."""
    owners: dict[str, set[str]] = {}
    for dist in distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or ():
            if file.suffix in (".py", ".so", ".pyi") and not file.parts[0].endswith((".dist-info", ".data")):
                parts = [*file.parts[:-1], file.parts[-1].split(".")[0]]
                for end in range(1, len(parts) + 1):
                    owners.setdefault("/".join(parts[:end]), set()).add(name)
    return owners


def distribution_of(module: str) -> str | None:
    """The distribution `module` comes from; None for the standard library and this repository."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in ("spendscope", "tests"):
        return None
    owners = module_owners().get(module.replace(".", "/"), set())
    assert len(owners) == 1, f"{module} comes from {sorted(owners) or 'no installed distribution'}"
    return next(iter(owners))


def test_every_imported_package_is_declared_in_the_extra_that_needs_it() -> None:
    missing = []
    for path in sorted([*ROOT.joinpath("spendscope").rglob("*.py"), *ROOT.joinpath("tests").rglob("*.py")]):
        allowed = declared(*extras_for(path))
        for line, module in imported_modules(path):
            owner = distribution_of(module)
            if owner is not None and owner not in allowed:
                extras = "+".join(extras_for(path))
                missing.append(
                    f"{path.relative_to(ROOT)}:{line} imports {module} ({owner}), not in base+{extras}"
                )
    assert not missing, "declare them in pyproject.toml:\n" + "\n".join(dict.fromkeys(missing))


# --- the supported openai releases ----------------------------------------------------------------------
def test_the_openai_range_is_the_same_everywhere() -> None:
    supported = SpecifierSet(_openai.SUPPORTED)
    for extra in ("openai", "demo"):
        (requirement,) = [r for r in requirements()[extra] if r.name == "openai"]
        assert requirement.specifier == supported, (
            f"extra {extra}: {requirement} (_openai.SUPPORTED: {supported})"
        )


@pytest.mark.parametrize(
    "installed",
    [
        "3.62.9",
        "3.63.0",
        "3.63.0rc1",
        "3.63.7",
        "3.63.0.post1",
        "3.63.1+local",
        "3.64.0",
        "3.64.0b1",
        "4.0",
        "3.63",
    ],
)
def test_supported_orders_versions_as_pep_440(installed: str) -> None:
    expected = SpecifierSet(_openai.SUPPORTED).contains(installed, prereleases=True)
    assert _openai.supported(installed) == expected


@pytest.fixture
def unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_openai._once, "checked", False)


def test_an_openai_outside_the_range_is_logged_once(
    unchecked: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_openai, "installed_version", lambda: "3.99.0")
    cap = make_capture()
    try:
        with caplog.at_level(logging.WARNING, logger="spendscope"):
            for _ in range(2):
                spendscope.instrument_openai(
                    tracer_provider=cap.tracer_provider, meter_provider=cap.meter_provider
                )
    finally:
        spendscope.uninstrument_openai()
        cap.tracer_provider.shutdown()
        cap.meter_provider.shutdown()
    assert [r.getMessage() for r in caplog.records] == [
        f"spendscope: openai 3.99.0 is installed; this spendscope is tested with openai{_openai.SUPPORTED}, "
        "and with another release it may miss or misread usage (pip install 'spendscope[openai]' installs "
        "a tested one)"
    ]


def test_the_installed_openai_is_a_supported_one(unchecked: None, caplog: pytest.LogCaptureFixture) -> None:
    cap = make_capture()
    try:
        with caplog.at_level(logging.WARNING, logger="spendscope"):
            spendscope.instrument_openai(
                tracer_provider=cap.tracer_provider, meter_provider=cap.meter_provider
            )
    finally:
        spendscope.uninstrument_openai()
        cap.tracer_provider.shutdown()
        cap.meter_provider.shutdown()
    assert caplog.records == [], f"openai {version('openai')} is outside {_openai.SUPPORTED}"
