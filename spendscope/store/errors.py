"""Errors of the store, each a single line a person can act on."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be reached or used: bad DSN, no server for a local store, server error."""


class ReportError(ValueError):
    """A report was asked for with values it cannot use: bad time, unknown dimension, bad filter."""
