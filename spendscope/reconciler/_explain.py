"""Explain the residual (what OpenAI reported - what SpendScope tracked) by cause (pure, given a Valuer).

Tokens, per comparison group where the two sides differ:
1. Traffic SpendScope tracked under another service tier or batch flag than OpenAI served it in (same
   bucket, project, key and model) is moved to the tier OpenAI reports: its tokens were tracked, its
   dollars were wrong (`tier_batch_mispricing`: the moved tokens - the recorded group's surplus, as far
   as the other group lacks them - priced at the served tier minus the same tokens priced at the
   recorded tier, so the calls beside them in either group do not enter its value).
2. What OpenAI reported beyond what SpendScope tracked is shared, by requests, between
   - `usage_unavailable`: calls SpendScope saw answered but without usage (an interrupted stream),
   - `failed_billed`: calls SpendScope saw fail that OpenAI counted and billed, at most one each,
   - `untracked`: requests with no span at all (an un-instrumented service; the detail says whether
     the project, the key or the model has no spans in the window, or only some requests lack one);
   and what nothing accounts for, or what SpendScope tracked beyond OpenAI's figures, is `unexplained`.
Dollars, per closed UTC day and project, against the Costs API:
3. `missing_price`: calls with usage but no price (their cost is unknown, counted as nothing);
   `stale_price`: calls priced with price data that has changed since; `tier_batch_mispricing`: calls
   recorded in the right tier but priced at the default tier or without the batch discount.
4. Line items SpendScope does not track (tools, storage, models of endpoints not reconciled) are
   `untracked`; the rest of the day's residual is `unexplained`, so the causes add up to the residual
   exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal

from spendscope.reconciler._model import (
    FAILED_BILLED,
    MISSING_PRICE,
    SOURCE_COSTS,
    STALE_PRICE,
    TIER_BATCH_MISPRICING,
    UNEXPLAINED,
    UNTRACKED,
    USAGE_UNAVAILABLE,
    CostLine,
    DailyTracked,
    Group,
    GroupKey,
    LineRow,
    Piece,
    Tokens,
    Windows,
    elementwise_min,
)
from spendscope.reconciler._normalize import DEFAULT_TIER, line_key, parse_line_item
from spendscope.reconciler._value import Valuer

# Differences smaller than this are rounding (spans carry cost as a float), not a price cause.
PRICE_TOLERANCE = Decimal("0.000000001")
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Seen:
    """What SpendScope saw calls of in the window."""

    projects: frozenset[str]
    keys: frozenset[tuple[str, str]]
    models: frozenset[tuple[str, str, str]]

    @classmethod
    def of(cls, rows: Iterable[tuple[str, str, str]]) -> Seen:
        triples = frozenset(rows)
        return cls(frozenset(p for p, _, _ in triples), frozenset((p, k) for p, k, _ in triples), triples)

    def untracked_scope(self, key: GroupKey) -> str:
        if key.project_id not in self.projects:
            return f"no spans in the window for project {key.project_id or '(none)'}"
        if (key.project_id, key.api_key_id) not in self.keys:
            return f"no spans in the window for api key {key.api_key_id or '(none)'}"
        if (key.project_id, key.api_key_id, key.model) not in self.models:
            return f"no spans in the window for model {key.model or '(none)'} on this key"
        return "more requests than spans"


class Explainer:
    def __init__(self, valuer: Valuer, windows: Windows) -> None:
        self.valuer = valuer
        self.windows = windows

    def _usd(self, group: Group, tokens: Tokens) -> Decimal | None:
        if not self.windows.in_costs(group.key.bucket):
            return None
        key = group.key
        return self.valuer.value(
            group.model_raw, tokens, at=key.bucket, tier=key.service_tier, batch=key.batch
        )

    # --- tokens ---------------------------------------------------------------------------------------
    def explain_groups(self, groups: Sequence[Group], seen: Seen) -> list[Piece]:
        families: dict[tuple[str, datetime, str, str, str], list[Group]] = defaultdict(list)
        for group in groups:
            families[group.key.family].append(group)
        pieces: list[Piece] = []
        for family in families.values():
            family.sort(key=lambda g: (g.key.batch, g.key.service_tier))
            if len(family) > 1:
                pieces += self._moves(family)
            for group in family:
                pieces += self._residual(group, seen)
        return pieces

    def _moves(self, family: list[Group]) -> list[Piece]:
        """Tokens a group tracked beyond OpenAI's count for it, which another tier or batch flag of the
        family lacks, were served there: they move, valued at their own tokens at both tiers (the
        recorded tier's price is what was stored for them; where it is not, a price cause says so)."""
        pieces: list[Piece] = []
        for target in family:
            for origin in family:
                if origin is target:
                    continue
                surplus = (origin.tracked - origin.reported).positive()
                deficit = (target.reported - target.tracked).positive()
                moved = elementwise_min(surplus, deficit)
                if moved.total == 0 and moved.requests == 0:
                    continue
                origin.tracked, target.tracked = origin.tracked - moved, target.tracked + moved
                served, recorded = self._usd(target, moved), self._usd(origin, moved)
                pieces.append(
                    Piece(
                        TIER_BATCH_MISPRICING,
                        f"tracked as {origin.key.tier_label()}, "
                        f"OpenAI served it as {target.key.tier_label()}",
                        target.key,
                        target.bucket_end,
                        moved,
                        None if served is None or recorded is None else served - recorded,
                        target.key_mapping or origin.key_mapping,
                        calls=moved.requests,
                    )
                )
        return pieces

    def _residual(self, group: Group, seen: Seen) -> list[Piece]:
        delta = group.reported - group.tracked
        if delta.is_zero():
            return []
        pieces: list[Piece] = []
        missing = delta.positive()
        if not missing.is_zero():
            requests = max(delta.requests, 0)
            failed = min(requests, group.error_calls)
            shares = [
                (
                    USAGE_UNAVAILABLE,
                    group.unavailable_calls,
                    0,
                    f"{group.unavailable_calls} call(s) answered without usage",
                ),
                (FAILED_BILLED, failed, failed, f"{failed} failed call(s) counted by OpenAI"),
                (UNTRACKED, requests - failed, requests - failed, seen.untracked_scope(group.key)),
            ]
            shares = [s for s in shares if s[1] > 0]
            if not shares:
                pieces.append(
                    self._piece(group, UNEXPLAINED, "OpenAI reports more than SpendScope tracked", missing, 0)
                )
            else:
                weight = sum(s[1] for s in shares)
                left = Tokens(requests=0) + missing
                for i, (cause, share, share_requests, detail) in enumerate(shares):
                    if i == len(shares) - 1:
                        part = Tokens(requests=share_requests) + _without_requests(left)
                    else:
                        part = Tokens(requests=share_requests) + _without_requests(
                            missing.map(lambda v, s=share: _split(v, s, weight))
                        )
                        left = left - _without_requests(part)
                    pieces.append(self._piece(group, cause, detail, part, share))
        extra = delta.negative()
        if not extra.is_zero():
            detail = "SpendScope tracked more than OpenAI reports"
            pieces.append(self._piece(group, UNEXPLAINED, detail, extra, -extra.requests))
        return pieces

    def _piece(self, group: Group, cause: str, detail: str, tokens: Tokens, calls: int) -> Piece:
        usd = self._usd(group, tokens)
        return Piece(cause, detail, group.key, group.bucket_end, tokens, usd, group.key_mapping, calls=calls)

    # --- dollars --------------------------------------------------------------------------------------
    def explain_costs(
        self, costs: Sequence[CostLine], daily: Sequence[DailyTracked], token_pieces: Sequence[Piece]
    ) -> list[Piece]:
        """The dollar-side pieces of the residual (price causes, untracked line items, the rest)."""
        pieces = self._price_pieces(daily)
        # (day, project, model) whose dollars the comparison covers: tracked calls, or usage explained
        covered = {(d.day, d.project_id, d.model) for d in daily} | {
            (_day(p.key.bucket), p.key.project_id, p.key.model) for p in token_pieces if p.usd is not None
        }
        for line in costs:
            item = parse_line_item(line.line_item)
            key = GroupKey(SOURCE_COSTS, line.day, line.project_id, "", item.model, item.batch, item.tier)
            if not item.parsed:
                detail = f"line item SpendScope does not track: {item.raw}"
            elif (line.day, line.project_id, item.model) not in covered:
                detail = f"no spans and no usage compared for {item.model_raw} ({item.raw})"
            else:
                continue
            pieces.append(
                Piece(UNTRACKED, detail, key, line.day + _DAY, Tokens(), line.amount, "", line.line_item)
            )
        # the rest of each day's residual, per project
        residual: dict[tuple[datetime, str], Decimal] = defaultdict(Decimal)
        for line in costs:
            residual[(line.day, line.project_id)] += line.amount
        for d in daily:
            residual[(d.day, d.project_id)] -= d.usd
        for piece in [*token_pieces, *pieces]:
            if piece.usd is not None and self.windows.in_costs(piece.key.bucket):
                residual[(_day(piece.key.bucket), piece.key.project_id)] -= piece.usd
        for (day, project), rest in sorted(residual.items()):
            if rest != 0:
                key = GroupKey(SOURCE_COSTS, day, project, "", "")
                pieces.append(
                    Piece(
                        UNEXPLAINED,
                        "dollars the causes above do not account for",
                        key,
                        day + _DAY,
                        Tokens(),
                        rest,
                    )
                )
        return pieces

    def lines(self, costs: Sequence[CostLine], daily: Sequence[DailyTracked]) -> list[LineRow]:
        """SpendScope's stored cost split into the Costs API's line items (in the proportions of the
        current prices), against the Costs API's amounts, per day and project."""
        reported: dict[tuple[datetime, str, str], Decimal] = defaultdict(Decimal)
        labels: dict[tuple[datetime, str, str], tuple[str, str, bool]] = {}
        for line in costs:
            item = parse_line_item(line.line_item)
            k = (line.day, line.project_id, item.key)
            reported[k] += line.amount
            labels[k] = (item.model, item.tier, item.batch)
        tracked: dict[tuple[datetime, str, str], Decimal] = defaultdict(Decimal)
        for d in daily:
            if not d.priced or d.usd == 0:
                continue
            split = self.valuer.split(
                d.model_raw,
                d.tokens,
                at=d.day,
                tier=d.service_tier,
                batch=d.batch,
                cache_write=d.cache_write_input,
            )
            parts = [
                (line_key(d.model, d.service_tier, d.batch, modality, direction), value)
                for modality, direction, value in split
            ]
            whole = sum((v for _, v in parts), Decimal(0))
            for key, value in parts:
                k = (d.day, d.project_id, key)
                # the stored cost, split in the proportions of today's prices
                tracked[k] += d.usd * value / whole if whole else Decimal(0)
                labels.setdefault(k, (d.model, d.service_tier, d.batch))
            if not whole:
                k = (d.day, d.project_id, line_key(d.model, d.service_tier, d.batch, "text", "unsplit"))
                tracked[k] += d.usd
                labels.setdefault(k, (d.model, d.service_tier, d.batch))
        rows = []
        for k in sorted(set(reported) | set(tracked)):
            model, tier, batch = labels[k]
            rows.append(
                LineRow(
                    k[0],
                    k[1],
                    k[2],
                    model,
                    tier,
                    batch,
                    tracked.get(k, Decimal(0)),
                    reported.get(k, Decimal(0)),
                )
            )
        return rows

    def _price_pieces(self, daily: Sequence[DailyTracked]) -> list[Piece]:
        pieces: list[Piece] = []
        for d in daily:
            key = GroupKey(SOURCE_COSTS, d.day, d.project_id, "", d.model, d.batch, d.service_tier)
            if not d.priced:
                if d.tokens.total == 0 and not d.tokens.audio_seconds:
                    continue
                value = self.valuer.value(
                    d.model_raw,
                    d.tokens,
                    at=d.day,
                    tier=d.service_tier,
                    batch=d.batch,
                    cache_write=d.cache_write_input,
                )
                known = self.valuer.version(d.model_raw, at=d.day, tier=d.service_tier, batch=d.batch)
                detail = f"no price for {d.model_raw}" + (
                    f"; {known} prices it now: run `spendscope reprice`" if known else ""
                )
                tokens = _without_requests(d.tokens)
                calls = d.tokens.requests
                pieces.append(Piece(MISSING_PRICE, detail, key, d.day + _DAY, tokens, value, calls=calls))
                continue
            linear = self.valuer.linear(
                d.model_raw, at=d.day, tier=d.service_tier, batch=d.batch, max_input=d.max_input_tokens
            )
            if not linear:
                continue
            repriced = self.valuer.value(
                d.model_raw,
                d.tokens,
                at=d.day,
                tier=d.service_tier,
                batch=d.batch,
                cache_write=d.cache_write_input,
            )
            if repriced is None or abs(repriced - d.usd) <= PRICE_TOLERANCE:
                continue
            delta = repriced - d.usd
            if d.batch or d.service_tier != DEFAULT_TIER:
                plain = self.valuer.value(
                    d.model_raw,
                    d.tokens,
                    at=d.day,
                    tier=DEFAULT_TIER,
                    batch=False,
                    cache_write=d.cache_write_input,
                )
                if plain is not None and abs(plain - d.usd) <= PRICE_TOLERANCE:
                    label = "batch" if d.batch else d.service_tier
                    pieces.append(
                        Piece(
                            TIER_BATCH_MISPRICING,
                            f"recorded as {label} but priced at the default rate",
                            key,
                            d.day + _DAY,
                            _without_requests(d.tokens),
                            delta,
                            calls=d.tokens.requests,
                        )
                    )
                    continue
            current = self.valuer.version(d.model_raw, at=d.day, tier=d.service_tier, batch=d.batch)
            if current is not None and current != d.price_version:
                pieces.append(
                    Piece(
                        STALE_PRICE,
                        f"priced with {d.price_version or 'unknown prices'}; {current} prices it differently",
                        key,
                        d.day + _DAY,
                        _without_requests(d.tokens),
                        delta,
                        calls=d.tokens.requests,
                    )
                )
        return pieces


def _split(value: int | float, share: int, weight: int) -> int | float:
    if isinstance(value, float):
        return value * share / weight
    return value * share // weight


def _without_requests(tokens: Tokens) -> Tokens:
    return Tokens(0, *(getattr(tokens, f.name) for f in fields(tokens)[1:]))


def _day(bucket: datetime) -> datetime:
    return bucket.replace(hour=0, minute=0, second=0, microsecond=0)
