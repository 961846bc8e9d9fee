"""Recorded real OpenAI HTTP interactions (``shared/conformance/openai``) as replayable cases."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spendscope.demo.fake_openai.server import Reply


@dataclass(frozen=True)
class ConformanceCase:
    file: str  # the fixture's file name, unique per case
    endpoint: str  # "POST /v1/chat/completions"
    request: dict[str, Any]  # the recorded JSON request body
    status: int
    headers: dict[str, str]  # the recorded response headers (content-type, x-request-id at most)
    response_body: Any  # parsed JSON body, or None for a stream
    response_sse: str | None  # the raw text/event-stream body, or None
    manifest: dict[str, Any]  # the manifest entry: "usage", "stream", "include_usage", "flags", ...

    @property
    def method(self) -> str:
        return self.endpoint.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.endpoint.split(" ", 1)[1]

    @property
    def stream(self) -> bool:
        return self.request.get("stream") is True

    @property
    def usage(self) -> dict[str, Any] | None:
        """The manifest's normalised usage numbers (None for errors and streams without usage)."""
        usage: dict[str, Any] | None = self.manifest.get("usage")
        return usage

    def reply(self) -> Reply:
        """The recorded response, to enqueue on the fake server."""
        if self.response_sse is not None:
            return Reply(status=self.status, headers=self.headers, sse=self.response_sse)
        return Reply(status=self.status, headers=self.headers, json=self.response_body)


def load_conformance(directory: str | Path) -> list[ConformanceCase]:
    """Every HTTP case listed in ``directory/manifest.json``, in manifest order (non-HTTP entries skipped)."""
    root = Path(directory)
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    cases = []
    for entry in manifest["files"]:
        if entry.get("kind") != "http_interaction":
            continue
        data = json.loads((root / entry["file"]).read_text(encoding="utf-8"))
        cases.append(
            ConformanceCase(
                file=entry["file"],
                endpoint=data["endpoint"],
                request=data["request"],
                status=int(data["response_status"]),
                headers=dict(data.get("response_headers") or {}),
                response_body=data.get("response_body"),
                response_sse=data.get("response_sse"),
                manifest=entry,
            )
        )
    return cases
