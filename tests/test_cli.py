"""The `spendscope` command itself (its subcommands have their own test modules)."""

from __future__ import annotations

from importlib.metadata import version

from typer.testing import CliRunner

from spendscope._version import __version__
from spendscope.cli import app


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"spendscope {__version__}\n"
    assert __version__ == version("spendscope")  # the installed distribution is this tree's
