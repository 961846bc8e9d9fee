"""What a call's client tells about where it goes and who pays: project, redacted key, server."""

from __future__ import annotations

import contextlib
import re
import weakref
from dataclasses import dataclass
from typing import Any

from spendscope import names as n

_KEY_PREFIX = re.compile(r"^(sk-(?:proj|svcacct|admin|None)-|sk-)")


def redact_key(key: str) -> str:
    """`sk-proj-...9f2c`: the key's prefix and last 4 characters, as OpenAI's key listing shows it."""
    if len(key) < 12:
        return "***"
    match = _KEY_PREFIX.match(key)
    prefix = match.group(1) if match else ""
    return f"{prefix}...{key[-4:]}"


@dataclass(frozen=True, slots=True)
class ClientInfo:
    provider: str
    attributes: dict[str, Any]
    api_key: object  # what the attributes were computed from, to notice a changed key


class ClientInfos:
    """The `ClientInfo` of each client, computed again when its key changes; clients are held weakly."""

    def __init__(self) -> None:
        self._cache: weakref.WeakKeyDictionary[Any, ClientInfo] = weakref.WeakKeyDictionary()

    def get(self, client: Any) -> ClientInfo:
        api_key = getattr(client, "api_key", None)
        try:
            cached = self._cache.get(client)
        except TypeError:  # not weak-referenceable
            cached = None
        if cached is not None and cached.api_key is api_key:
            return cached
        info = _compute(client, api_key)
        with contextlib.suppress(TypeError):
            self._cache[client] = info
        return info


def _compute(client: Any, api_key: object) -> ClientInfo:
    provider = (
        n.PROVIDER_AZURE_OPENAI
        if type(client).__name__.startswith(("AzureOpenAI", "AsyncAzure"))
        else (n.PROVIDER_OPENAI)
    )
    attributes: dict[str, Any] = {}
    base_url = getattr(client, "base_url", None)
    host = getattr(base_url, "host", None)
    if isinstance(host, str) and host:
        attributes[n.SERVER_ADDRESS] = host
        port = getattr(base_url, "port", None)
        if not isinstance(port, int):
            port = 443 if getattr(base_url, "scheme", "https") == "https" else 80
        attributes[n.SERVER_PORT] = port
    project = getattr(client, "project", None)
    if not project:
        headers = getattr(client, "_custom_headers", None) or {}
        project = next((v for k, v in headers.items() if k.lower() == "openai-project"), None)
    if isinstance(project, str) and project:
        attributes[n.OPENAI_PROJECT] = project
    if isinstance(api_key, str) and api_key:
        attributes[n.OPENAI_API_KEY_REDACTED] = redact_key(api_key)
    return ClientInfo(provider, attributes, api_key)
