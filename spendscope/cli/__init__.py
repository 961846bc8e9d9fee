"""The `spendscope` command: one module per group of commands, registered on one Typer app (in the
order `spendscope --help` lists them)."""

# isort: off
from spendscope.cli._app import app
from spendscope.cli import _demo, _store, _server, _services, _reconcile, _tokens  # noqa: F401  (they register commands)
# isort: on

__all__ = ["app"]
