"""The OpenAI SDK methods SpendScope wraps, and how to read each one's usage."""

from __future__ import annotations

from dataclasses import dataclass

from spendscope import names as n
from spendscope.instrumentation.streams import (
    ItemHandler,
    chunk_handler,
    responses_event_handler,
    transcript_event_handler,
)
from spendscope.usage import UsageReader, chat_usage, embeddings_usage, responses_usage, transcription_usage


@dataclass(frozen=True, slots=True)
class Endpoint:
    operation: str  # gen_ai.operation.name
    api_type: str  # openai.api.type
    read_usage: UsageReader
    stream_handler: ItemHandler
    inject_stream_usage: bool  # the API sends stream usage only when asked (stream_options)
    background: bool = False  # can run in the background (Responses): usage may come after the call


CHAT = Endpoint(n.OP_CHAT, "chat_completions", chat_usage, chunk_handler(chat_usage), True)
RESPONSES = Endpoint(
    n.OP_CHAT, "responses", responses_usage, responses_event_handler(responses_usage), False, background=True
)
EMBEDDINGS = Endpoint(n.OP_EMBEDDINGS, "embeddings", embeddings_usage, chunk_handler(embeddings_usage), False)
TRANSCRIPTION = Endpoint(
    n.OP_TRANSCRIPTION,
    "audio_transcriptions",
    transcription_usage,
    transcript_event_handler(transcription_usage),
    False,
)
LEGACY_COMPLETIONS = Endpoint(
    n.OP_TEXT_COMPLETION, "completions", chat_usage, chunk_handler(chat_usage), True
)

# (module, class, method, endpoint). `parse` does not go through `create` (it posts directly), and the
# `.stream()` helpers do, so wrapping create + parse sees every call exactly once.
_CHAT_MODULE = "openai.resources.chat.completions.completions"
_RESPONSES_MODULE = "openai.resources.responses.responses"
METHODS: tuple[tuple[str, str, str, Endpoint], ...] = (
    (_CHAT_MODULE, "Completions", "create", CHAT),
    (_CHAT_MODULE, "AsyncCompletions", "create", CHAT),
    (_CHAT_MODULE, "Completions", "parse", CHAT),
    (_CHAT_MODULE, "AsyncCompletions", "parse", CHAT),
    (_RESPONSES_MODULE, "Responses", "create", RESPONSES),
    (_RESPONSES_MODULE, "AsyncResponses", "create", RESPONSES),
    (_RESPONSES_MODULE, "Responses", "parse", RESPONSES),
    (_RESPONSES_MODULE, "AsyncResponses", "parse", RESPONSES),
    ("openai.resources.embeddings", "Embeddings", "create", EMBEDDINGS),
    ("openai.resources.embeddings", "AsyncEmbeddings", "create", EMBEDDINGS),
    ("openai.resources.audio.transcriptions", "Transcriptions", "create", TRANSCRIPTION),
    ("openai.resources.audio.transcriptions", "AsyncTranscriptions", "create", TRANSCRIPTION),
    ("openai.resources.completions", "Completions", "create", LEGACY_COMPLETIONS),
    ("openai.resources.completions", "AsyncCompletions", "create", LEGACY_COMPLETIONS),
)
