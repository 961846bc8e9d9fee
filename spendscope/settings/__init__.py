"""SpendScope's settings: one typed model per component, all built on the same field types.

`_types.py` holds the field types every component shares (HOST:PORT, durations, booleans, URLs, paths,
bounded whole numbers), `_base.py` the base model: explicit argument > environment variable > default,
and one error format for a bad value. The models: `app.py` (`configure`, `instrument_openai`),
`store.py` (`spendscope migrate`), `collector.py`, `reconcile.py` and `budgets.py`.

This module imports nothing else, so `import spendscope` does not load pydantic: the models are
imported where they are used (`configure()` imports `spendscope.settings.app`).
"""


class ConfigurationError(ValueError):
    """A SpendScope setting has a value it cannot use."""


# The store: `--store` of every command (spendscope.store.dsn) and the collector's `store` setting read
# it; here, so that neither loads the other (the CLI builds its help without loading the store).
STORE_ENV = "SPENDSCOPE_STORE"
DEFAULT_STORE = "./spendscope-data"

__all__ = ["DEFAULT_STORE", "STORE_ENV", "ConfigurationError"]
