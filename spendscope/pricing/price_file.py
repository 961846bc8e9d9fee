"""A user price file: fine-tuned models, private deployments and negotiated discounts.

TOML (or JSON with the same shape). Prices use genai-prices' field names, in USD per million tokens:

    [[models]]
    match = "ft:gpt-4o-mini-2024-07-18:acme:*"   # exact model name or a glob, case-insensitive
    effective_from = 2026-01-01                  # optional, UTC date; the latest rule in force wins
    service_tier = "flex"                        # optional; a rule for the tier beats one without
    input_mtok = 0.30
    cache_read_mtok = 0.15
    output_mtok = 1.20

    [[discounts]]
    match = "gpt-4o*"
    percent = 15                                 # off the catalogue or file price; the latest
                                                 # discount in force applies (they do not stack)
    effective_from = 2026-06-01
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import tomllib
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from genai_prices.types import ModelPrice
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spendscope.settings import ConfigurationError


class PriceFileError(ConfigurationError):
    """The price file cannot be read or does not validate (a bad setting, as the price file is one)."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str = Field(min_length=1)
    effective_from: date | None = None

    def matches(self, model: str, day: date) -> bool:
        if self.effective_from is not None and day < self.effective_from:
            return False
        pattern = self.match.lower()
        return model == pattern or fnmatch.fnmatchcase(model, pattern)


class ModelRule(_Rule):
    service_tier: str | None = None
    input_mtok: Decimal | None = Field(default=None, ge=0)
    output_mtok: Decimal | None = Field(default=None, ge=0)
    cache_read_mtok: Decimal | None = Field(default=None, ge=0)
    cache_write_mtok: Decimal | None = Field(default=None, ge=0)
    input_audio_mtok: Decimal | None = Field(default=None, ge=0)
    cache_audio_read_mtok: Decimal | None = Field(default=None, ge=0)
    output_audio_mtok: Decimal | None = Field(default=None, ge=0)

    def prices(self) -> dict[str, Decimal]:
        """The prices the rule sets, by genai-prices' field name."""
        return self.model_dump(exclude={"match", "effective_from", "service_tier"}, exclude_none=True)

    def model_price(self) -> ModelPrice:
        return ModelPrice(**self.prices())


class DiscountRule(_Rule):
    percent: Decimal = Field(gt=0, le=100)


class _PriceFileModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelRule] = []
    discounts: list[DiscountRule] = []


class PriceFile:
    """Validated rules from one file, with a version string naming its content."""

    def __init__(self, path: Path, models: list[ModelRule], discounts: list[DiscountRule], digest: str):
        self.path = path
        self.models = models
        self.discounts = discounts
        self.version = f"file:{path.name}#{digest[:12]}"

    @classmethod
    def load(cls, path: str | Path) -> PriceFile:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PriceFileError(f"price file {path}: cannot read it ({exc.strerror})") from exc
        try:
            data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise PriceFileError(f"price file {path}: not valid {path.suffix or 'TOML'}: {exc}") from exc
        try:
            parsed = _PriceFileModel.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise PriceFileError(f"price file {path}: {problems}") from exc
        for rule in parsed.models:
            if not rule.prices():
                raise PriceFileError(f"price file {path}: rule {rule.match!r} sets no price")
        return cls(path, parsed.models, parsed.discounts, hashlib.sha256(raw).hexdigest())

    def model_rule(self, model: str, at: datetime, service_tier: str | None) -> ModelRule | None:
        """The rule in force for `model` at `at`: tier-specific first, then the latest effective date."""
        day = at.date()
        candidates = [
            r
            for r in self.models
            if r.matches(model, day) and (r.service_tier is None or r.service_tier == service_tier)
        ]
        if not candidates:
            return None
        return max(candidates, key=lambda r: (r.service_tier is not None, r.effective_from or date.min))

    def multiplier(self, model: str, at: datetime) -> Decimal:
        """1 - the discount in force (the latest effective one that matches); discounts do not stack."""
        day = at.date()
        matching = [d for d in self.discounts if d.matches(model, day)]
        if not matching:
            return Decimal(1)
        latest = max(matching, key=lambda d: d.effective_from or date.min)
        return 1 - latest.percent / 100
