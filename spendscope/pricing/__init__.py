"""Exact per-call prices from genai-prices and a user price file."""

from spendscope.pricing.price_file import PriceFile, PriceFileError
from spendscope.pricing.pricer import Price, Pricer

__all__ = ["Price", "PriceFile", "PriceFileError", "Pricer"]
