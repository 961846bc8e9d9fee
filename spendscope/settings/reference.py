"""The table of every setting (name, environment variable, type, default, meaning), made from the
models: `python -m spendscope.settings.reference > docs/settings.md` writes the reference the README
links to (tests/test_settings.py checks it is current)."""

from __future__ import annotations

from spendscope.settings._base import Settings
from spendscope.settings.app import AppSettings
from spendscope.settings.budgets import BudgetSettings
from spendscope.settings.collector import CollectorConfig
from spendscope.settings.reconcile import ReconcileSettings
from spendscope.settings.store import StoreSettings

# (heading, model, who reads it)
MODELS: tuple[tuple[str, type[Settings], str], ...] = (
    (
        "App",
        AppSettings,
        "`spendscope.configure()` (its keyword arguments); `instrument_openai()`: the first three",
    ),
    ("Store", StoreSettings, "`spendscope migrate`, which writes them to the store"),
    ("Collector", CollectorConfig, "`spendscope collector` (its options) and `CollectorConfig.resolve()`"),
    (
        "Reconciler",
        ReconcileSettings,
        "`spendscope reconcile` (its options) and `spendscope collector --reconcile`",
    ),
    ("Budgets", BudgetSettings, "`spendscope budgets` (its options) and `spendscope collector --budgets`"),
)
INTRO = """# Settings

Made from the settings models (`spendscope/settings/`) by
`python -m spendscope.settings.reference`. Explicit argument or option > environment variable >
default. A bad value is one line naming the setting and where its value came from:

    reconcile setting costs_settle (environment variable SPENDSCOPE_RECONCILE_COSTS_SETTLE='1 day'): \
must be a duration such as 0.5, 90s, 30m, 1h or 1d

Durations are written `0.5`, `90s`, `30m`, `1h` or `1d` (a number alone counts seconds); booleans
`true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`; an empty variable counts as unset."""


def table() -> str:
    lines = [INTRO]
    for heading, model, readers in MODELS:
        lines += ["", f"## {heading}", "", f"Read by {readers}.", ""]
        lines += ["| setting | environment | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            default = model.default_text(name)
            shown = f"`{default}`" if default is not None else "none"
            description = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{name}` | `{model.env(name)}` | {shown} | {description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
