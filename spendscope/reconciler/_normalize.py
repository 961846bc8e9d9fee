"""Names as OpenAI's admin APIs spell them, made comparable with what SpendScope tracked (pure).

The same rules run in Python (Costs line items, key listings) and in ClickHouse (the comparison
query binds `MODEL_DATE_SUFFIX`, the alias tables and `AUDIO_SEMANTICS_CHANGED` as parameters), so the
two sides can never normalise differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

# A dated snapshot (`gpt-4o-mini-2024-07-18`) or an old-style one (`gpt-3.5-turbo-0125`) is compared as
# its model (`gpt-4o-mini`): OpenAI reports dated names, the client may have seen either.
MODEL_DATE_SUFFIX: Final = r"-(\d{4}-\d{2}-\d{2}|\d{4})$"
_DATE_SUFFIX = re.compile(MODEL_DATE_SUFFIX)
# Internal names the Usage API reports for a public model (openai-api.md §2.4).
MODEL_ALIASES: Final[dict[str, str]] = {
    "text-embedding-ada-002-v2": "text-embedding-ada-002",
}

# Usage API `service_tier` values as SpendScope records them (the response's tier). The dashboard
# export spells some with a `-tier` suffix (`flex-tier`, `incentivized-tier`).
DEFAULT_TIER: Final = "default"
TIER_SUFFIX: Final = r"-tier$"
_TIER_SUFFIX = re.compile(TIER_SUFFIX)
TIER_ALIASES: Final[dict[str, str]] = {
    "": DEFAULT_TIER,
    "auto": DEFAULT_TIER,
    "standard": DEFAULT_TIER,
    "fast": "priority",  # the API reports a `fast` request as served in `priority`
}

# openai/openai-openapi 535f5dc (2026-07-15): before it, `input_audio_tokens` counted cached audio
# too; from then on it counts uncached audio only, and `input_cached_audio_tokens` the cached part.
AUDIO_SEMANTICS_CHANGED: Final = datetime(2026, 7, 15, tzinfo=UTC)


def normalize_model(model: str | None) -> str:
    name = (model or "").strip().lower()
    name = MODEL_ALIASES.get(name, name)
    return _DATE_SUFFIX.sub("", name)


def normalize_tier(tier: str | None) -> str:
    name = _TIER_SUFFIX.sub("", (tier or "").strip().lower())
    return TIER_ALIASES.get(name, name)


def input_audio_total(
    bucket_start: datetime, input_audio_tokens: int | None, input_cached_audio_tokens: int | None
) -> int:
    """All audio input tokens of a Usage API result, cached included, whatever the period's semantics."""
    audio = input_audio_tokens or 0
    if bucket_start >= AUDIO_SEMANTICS_CHANGED:
        audio += input_cached_audio_tokens or 0
    return audio


# --- Costs API line items -----------------------------------------------------------------------------
_MODALITIES = ("audio", "image", "text")
_DIRECTIONS: Final[dict[str, str]] = {
    "input": "input",
    "input_tokens": "input",
    "uncached input": "input",
    "cached input": "cached input",
    "cached_input": "cached input",
    "cached_input_tokens": "cached input",
    "input_cached_tokens": "cached input",
    "cache write": "cache write",
    "cached write": "cache write",
    "input_cache_write_tokens": "cache write",
    "output": "output",
    "output_tokens": "output",
    "audio": "audio",
}
_TIER_PREFIX = re.compile(r"^\s*([A-Za-z][\w-]*)\s*\|\s*(.+)$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-/]*$")


@dataclass(frozen=True, slots=True)
class LineItem:
    """A Costs API `line_item`: `[<tier> | ]<model>[ <modality>], <direction>[, <qualifier>]`."""

    raw: str
    model: str = ""  # normalised; empty when the line item is not a model's tokens
    model_raw: str = ""
    tier: str = DEFAULT_TIER
    batch: bool = False
    modality: str = "text"
    direction: str = ""
    qualifier: str = ""

    @property
    def parsed(self) -> bool:
        return bool(self.model)

    @property
    def key(self) -> str:
        """What tracked and reported dollars are compared under (qualifiers such as `long context`
        are summed into their direction)."""
        if not self.parsed:
            return self.raw
        return line_key(self.model, self.tier, self.batch, self.modality, self.direction)


def line_key(model: str, tier: str, batch: bool, modality: str, direction: str) -> str:
    prefix = "batch | " if batch else ("" if tier == DEFAULT_TIER else f"{tier} | ")
    middle = model if modality == "text" else f"{model} {modality}"
    return f"{prefix}{middle}, {direction}"


@lru_cache(maxsize=65_536)
def parse_line_item(raw: str | None) -> LineItem:
    """Parse what can be parsed; anything else (`web search tool calls`, `Vector storage`) keeps
    only its text and counts as a line item SpendScope does not track."""
    text = (raw or "").strip()
    if not text:
        return LineItem(raw="unknown")
    tier, batch = DEFAULT_TIER, False
    body = text
    if match := _TIER_PREFIX.match(text):
        prefix = match.group(1).lower()
        body = match.group(2)
        if prefix == "batch":
            batch = True
        else:
            tier = normalize_tier(prefix)
    parts = [p.strip() for p in body.split(",")]
    if len(parts) < 2:
        return LineItem(raw=text)
    head, direction_text, qualifiers = parts[0], parts[1].lower(), parts[2:]
    direction = _DIRECTIONS.get(direction_text)
    words = head.split()
    modality = "text"
    if len(words) == 2 and words[1].lower() in _MODALITIES:
        modality = words[1].lower()
        words = words[:1]
    if direction is None or len(words) != 1 or not _MODEL.match(words[0]):
        return LineItem(raw=text)
    qualifier = ", ".join(q for q in qualifiers if q)
    if qualifier.lower() == "batch":
        batch, qualifier = True, ""
    return LineItem(
        raw=text,
        model=normalize_model(words[0]),
        model_raw=words[0],
        tier=tier,
        batch=batch,
        modality=modality,
        direction=direction,
        qualifier=qualifier,
    )
