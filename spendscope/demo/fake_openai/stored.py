"""Responses the fake server remembers, as the real API stores them (``store`` defaults to true), for
``GET /v1/responses/{id}``, ``POST /v1/responses/{id}/cancel``, ``DELETE /v1/responses/{id}`` and,
for background runs, ``GET /v1/responses/{id}?stream=true``.

A background run (``background: true``) follows a fixed schedule, so tests know what each call answers:

- the create answers ``queued``, ``usage: null``;
- the first ``GET`` answers ``in_progress``, ``usage: null``; every later one ``completed``, with the
  usage a plain request would have reported (see ``synth``);
- ``GET …?stream=true`` streams the whole run, ``response.created`` to ``response.completed`` (only the
  events after ``starting_after`` when given), and leaves it completed;
- ``cancel`` before completion answers ``cancelled`` with ``usage: null`` (the fake bills nothing for a
  cancelled run, and its stream ends after the lifecycle events); cancelling again, or cancelling a
  finished run, answers the final response unchanged (the real API's cancel is idempotent);
- a background create with ``stream: true`` streams the run and leaves it completed.

At most ``limit`` responses are kept; the oldest are forgotten first (then answer 404).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spendscope.demo.fake_openai import synth

TERMINAL = frozenset({"completed", "incomplete", "failed", "cancelled"})
STORED_LIMIT = 10_000
_LIFECYCLE = frozenset({"response.created", "response.queued", "response.in_progress"})

Events = list[tuple[str, synth.JSONObject]]


class NotBackground(ValueError):
    """The request needs a background response and this one is not."""


@dataclass
class _Stored:
    current: synth.JSONObject  # what GET answers now
    run: Events | None  # a background run's events (None for a plain response)
    polls: int = 0

    def advance(self) -> None:
        """One poll of the fixed schedule: queued -> in_progress -> completed."""
        if self.run is None or self.current["status"] in TERMINAL:
            return
        self.polls += 1
        self.current = _in_progress(self.run) if self.polls == 1 else _final(self.run)


def _in_progress(run: Events) -> synth.JSONObject:
    return next(data["response"] for name, data in run if name == "response.in_progress")


def _final(run: Events) -> synth.JSONObject:
    response: synth.JSONObject = run[-1][1]["response"]
    return response


class StoredResponses:
    def __init__(self, limit: int = STORED_LIMIT) -> None:
        self._items: OrderedDict[str, _Stored] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def _keep(self, item: _Stored) -> None:
        with self._lock:
            self._items[item.current["id"]] = item
            while len(self._items) > self._limit:
                self._items.popitem(last=False)

    def remember(self, response: synth.JSONObject, body: Mapping[str, Any]) -> None:
        """A plain (not background) response, kept unless the request said ``store: false``."""
        if body.get("store") is not False:
            self._keep(_Stored(response, None))

    def start_background(self, body: Mapping[str, Any]) -> synth.JSONObject:
        """A background create without streaming: the run is queued, and polls advance it."""
        run = synth.response_events(body)
        queued: synth.JSONObject = run[0][1]["response"]
        self._keep(_Stored(queued, run))
        return queued

    def stream_background(self, body: Mapping[str, Any]) -> Events:
        """A background create with ``stream: true``: the run streams to completion."""
        run = synth.response_events(body)
        self._keep(_Stored(_final(run), run))
        return run

    def retrieve(self, response_id: str) -> synth.JSONObject | None:
        with self._lock:
            item = self._items.get(response_id)
            if item is None:
                return None
            item.advance()
            return item.current

    def stream(self, response_id: str, starting_after: int | None) -> Events | None:
        with self._lock:
            item = self._items.get(response_id)
            if item is None:
                return None
            if item.run is None:
                raise NotBackground("Only responses created with background=true can be streamed.")
            events = item.run
            if item.current["status"] == "cancelled":
                events = [(name, data) for name, data in events if name in _LIFECYCLE]
            else:
                item.current = _final(events)
        return [
            (name, data)
            for name, data in events
            if starting_after is None or data["sequence_number"] > starting_after
        ]

    def cancel(self, response_id: str) -> synth.JSONObject | None:
        with self._lock:
            item = self._items.get(response_id)
            if item is None:
                return None
            if item.run is None:
                raise NotBackground("Only responses created with background=true can be cancelled.")
            if item.current["status"] not in TERMINAL:
                item.current = item.current | {"status": "cancelled", "usage": None}
            return item.current

    def delete(self, response_id: str) -> bool:
        with self._lock:
            return self._items.pop(response_id, None) is not None
