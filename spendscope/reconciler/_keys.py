"""Which OpenAI `api_key_id` a client key was: its redacted form matched against the admin listing (pure).

The instrumentation records a key as its prefix and last four characters (`sk-proj-...9f2c`, see
spendscope/instrumentation/client_info.py) and the project it was sent with. The admin API lists every
project key with a `redacted_value` whose format is not specified (`sk-abc...def`,
`sk-proj-****...****excA`, `sk-proj-...9f2c`). There is no "which key am I" endpoint, so the match is
prefix + last characters, restricted to the recorded project; when several keys match, the mapping is
*ambiguous* and reported as such: the candidate keys are compared together, never one of them guessed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

MAPPED: Final = "mapped"
AMBIGUOUS: Final = "ambiguous"
UNMAPPED: Final = "unmapped"
UNKNOWN: Final = "unknown"  # the call recorded no key at all

_PREFIX = re.compile(r"^(sk-(?:proj|svcacct|admin|None)-|sk-)")
_HIDDEN = re.compile(r"[.*…]+")


@dataclass(frozen=True, slots=True)
class ProjectKey:
    """One key of the admin listing (`projects.api_keys.list`)."""

    id: str
    project_id: str
    redacted_value: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    prefix: str  # sk-proj-, sk-svcacct-, sk-admin-, sk-None- or sk-
    tail: str  # the visible characters at the end (up to 4 are compared)


def fingerprint(redacted: str) -> Fingerprint | None:
    """The comparable part of a redacted key, or None when nothing is visible at its end."""
    text = redacted.strip()
    pieces = _HIDDEN.split(text)
    if len(pieces) < 2 or not pieces[-1]:
        return None
    match = _PREFIX.match(text)
    return Fingerprint(match.group(1) if match else "", pieces[-1])


def _matches(client: Fingerprint, listed: Fingerprint) -> bool:
    # `sk-abc...def` (the listing's example) has no recognisable class: only a class mismatch between
    # two recognised prefixes rules a key out.
    recognised = "sk-" not in (client.prefix, listed.prefix) and client.prefix and listed.prefix
    if recognised and client.prefix != listed.prefix:
        return False
    size = min(4, len(client.tail), len(listed.tail))
    return size > 0 and client.tail[-size:] == listed.tail[-size:]


@dataclass(frozen=True, slots=True)
class KeyMatch:
    """How one (recorded project, recorded redacted key) pair maps to OpenAI's ids."""

    project: str  # the recorded OpenAI-Project ('' when the client sent none)
    redacted: str
    status: str  # mapped | ambiguous | unmapped | unknown
    candidates: tuple[str, ...] = ()  # matching api_key_ids
    project_id: str = ""  # the project the call is compared under

    @property
    def label(self) -> str:
        """The api_key_id compared under: the key, all candidates joined by `|`, or a marker."""
        if self.candidates:
            return "|".join(self.candidates)
        return f"{self.status}:{self.redacted}" if self.redacted else UNKNOWN


@dataclass
class KeyMapping:
    matches: list[KeyMatch] = field(default_factory=list)
    # api_key_id -> the label it is compared under (several keys share one when a match is ambiguous)
    merged: dict[str, str] = field(default_factory=dict)

    @property
    def ambiguous(self) -> list[KeyMatch]:
        return [m for m in self.matches if m.status == AMBIGUOUS]

    @property
    def unmapped(self) -> list[KeyMatch]:
        return [m for m in self.matches if m.status == UNMAPPED]


def match_key(project: str, redacted: str, keys: Sequence[ProjectKey]) -> KeyMatch:
    if not redacted:
        return KeyMatch(project, redacted, UNKNOWN, (), project)
    client = fingerprint(redacted)

    def matching(pool: Sequence[ProjectKey]) -> list[ProjectKey]:
        return [
            k
            for k in pool
            if client is not None and (listed := fingerprint(k.redacted_value)) and _matches(client, listed)
        ]

    hits = matching([k for k in keys if k.project_id == project] if project else keys)
    if not hits and project:
        # a project key belongs to one project whatever OpenAI-Project the client sent: look everywhere
        hits = matching(keys)
    found = sorted({k.id for k in hits})
    projects = sorted({k.project_id for k in hits})
    project_id = projects[0] if len(projects) == 1 else project
    if not found:
        return KeyMatch(project, redacted, UNMAPPED, (), project)
    status = MAPPED if len(found) == 1 else AMBIGUOUS
    return KeyMatch(project, redacted, status, tuple(found), project_id)


def map_keys(recorded: Iterable[tuple[str, str]], keys: Sequence[ProjectKey]) -> KeyMapping:
    """Map every recorded (project, redacted key); keys that are candidates of one ambiguous match
    (or of overlapping ones) are merged into one comparison label on both sides."""
    matches = [match_key(project, redacted, keys) for project, redacted in sorted(set(recorded))]
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for m in matches:
        for other in m.candidates[1:]:
            parent[find(other)] = find(m.candidates[0])
    groups: dict[str, list[str]] = {}
    for key in list(parent):
        groups.setdefault(find(key), []).append(key)
    merged = {key: "|".join(sorted(members)) for members in groups.values() for key in members}
    relabelled = [
        KeyMatch(m.project, m.redacted, m.status, tuple(merged[m.candidates[0]].split("|")), m.project_id)
        if m.candidates and m.candidates[0] in merged
        else m
        for m in matches
    ]
    return KeyMapping(relabelled, {k: v for k, v in merged.items() if "|" in v})


@dataclass(frozen=True, slots=True)
class TrackedKey:
    """A key fingerprint seen in spans: the key it maps to, and what SpendScope tracked on it. Requests
    and tokens over the usage window, dollars over the closed cost days (None when none was compared)."""

    match: KeyMatch
    requests: int
    tokens: int
    usd: Decimal | None


@dataclass(frozen=True, slots=True)
class ReportedKey:
    """A key OpenAI reports (api_key_id '' for usage or line items of no key): requests and tokens from
    the Usage API, dollars from the Costs API, and the fingerprints of spans that map to it (alone or
    as one of the candidates of an ambiguous match)."""

    project_id: str
    api_key_id: str
    requests: int
    tokens: int
    usd: Decimal | None
    fingerprints: tuple[str, ...] = ()


def key_figures(
    mapping: KeyMapping,
    tracked: Iterable[tuple[str, str, int, int, Decimal]],
    usage: Iterable[tuple[str, str, int, int]],
    costs: Mapping[tuple[str, str], Decimal] | None,
) -> tuple[list[TrackedKey], list[ReportedKey]]:
    """The figures of every key on both sides. `tracked`: (recorded project, redacted key, requests,
    tokens, USD); `usage`: (project_id, api_key_id, requests, tokens); `costs`: USD by (project_id,
    api_key_id), None when no cost day was compared."""
    matches = {(m.project, m.redacted): m for m in mapping.matches}
    tracked_keys = [
        TrackedKey(
            matches.get((project, redacted)) or KeyMatch(project, redacted, UNMAPPED, (), project),
            requests,
            tokens,
            None if costs is None else usd,
        )
        for project, redacted, requests, tokens, usd in tracked
    ]
    fingerprints: dict[str, set[str]] = defaultdict(set)
    for key in tracked_keys:
        for candidate in key.match.candidates:
            fingerprints[candidate].add(key.match.redacted)
    counted: dict[tuple[str, str], tuple[int, int]] = {}
    for project_id, api_key_id, requests, tokens in usage:
        before = counted.get((project_id, api_key_id), (0, 0))
        counted[(project_id, api_key_id)] = (before[0] + requests, before[1] + tokens)
    reported = [
        ReportedKey(
            project_id,
            api_key_id,
            *counted.get((project_id, api_key_id), (0, 0)),
            None if costs is None else costs.get((project_id, api_key_id), Decimal(0)),
            tuple(sorted(fingerprints.get(api_key_id, ()))),
        )
        for project_id, api_key_id in sorted(set(counted) | set(costs or ()))
    ]
    return tracked_keys, reported
