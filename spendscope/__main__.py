"""`python -m spendscope`: the same as the `spendscope` command."""

from spendscope.cli import app

app()
