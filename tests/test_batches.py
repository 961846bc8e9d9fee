"""Batch API: downloading a batch's output file (`client.files.content`) records one call per answered
request, at the batch rate, once per file; other files and failed requests record nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import openai
import pytest

import spendscope
from spendscope import names as n
from spendscope.demo.fake_openai import FakeOpenAI, Reply
from spendscope.store import Store
from tests.conftest import Capture
from tests.helpers import chat_body
from tests.store_fixtures import span_record

# 2026-11-19 10:00 UTC, when the requests ran (OpenAI sets `created` as it answers each one)
CREATED = 1795082400


def output_line(custom_id: str, status: int, body: dict[str, Any]) -> str:
    return json.dumps(
        {
            "id": f"batch_req_{custom_id}",
            "custom_id": custom_id,
            "response": {"status_code": status, "request_id": f"req_{custom_id}", "body": body},
            "error": None,
        }
    )


def embeddings_body(tokens: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


OUTPUT = (
    "\n".join(
        [
            output_line("cv-1", 200, {**chat_body(19, 10), "id": "chatcmpl-b1", "created": CREATED}),
            output_line(
                "cv-2", 200, {**chat_body(1000, 200, cached=400), "id": "chatcmpl-b2", "created": CREATED}
            ),
            output_line("emb-1", 200, embeddings_body(100)),
            output_line("cv-3", 400, {"error": {"message": "bad request", "type": "invalid_request_error"}}),
        ]
    )
    + "\n"
)


def serve_file(server: FakeOpenAI, file_id: str, content: str) -> None:
    server.enqueue(
        f"/v1/files/{file_id}/content",
        Reply(body=content, headers={"content-type": "application/octet-stream"}),
    )


def test_a_batch_output_download_records_each_answered_request_at_the_batch_rate(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    serve_file(server, "file-out", OUTPUT)
    with spendscope.attributes(tenant="talentco", endpoint="cv-parsing", job_id="J-7"):
        downloaded = client.files.content("file-out")
    assert downloaded.content == OUTPUT.encode()  # the app's download is untouched

    spans = {dict(s.attributes or {}).get(n.RESPONSE_ID, "emb"): s for s in capture.spans()}
    assert set(spans) == {"chatcmpl-b1", "chatcmpl-b2", "emb"}
    first = dict(spans["chatcmpl-b1"].attributes or {})
    assert first[n.BATCH] is True
    assert first[n.OPENAI_API_TYPE] == "chat_completions"
    assert first[n.RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    assert (first[n.TENANT], first[n.ENDPOINT], first[n.EXTRA_PREFIX + "job_id"]) == (
        "talentco",
        "cv-parsing",
        "J-7",
    )
    assert spans["chatcmpl-b1"].start_time == CREATED * 1_000_000_000
    # gpt-4o-mini at half the synchronous $0.15 / $0.075 cached / $0.60 per million
    assert float(first[n.COST_USD]) == pytest.approx((19 * 0.075 + 10 * 0.30) / 1e6, abs=1e-15)
    second = dict(spans["chatcmpl-b2"].attributes or {})
    assert second[n.USAGE_CACHE_READ_INPUT_TOKENS] == 400
    # the Batch table has no cached-input rate: cached input keeps the standard $0.075 (genai-prices' data)
    assert float(second[n.COST_USD]) == pytest.approx(
        (600 * 0.075 + 400 * 0.075 + 200 * 0.30) / 1e6, abs=1e-15
    )
    embedding = dict(spans["emb"].attributes or {})
    assert embedding[n.OPERATION_NAME] == n.OP_EMBEDDINGS
    assert float(embedding[n.COST_USD]) == pytest.approx(
        100 * 0.01 / 1e6, abs=1e-15
    )  # $0.02 per million, halved
    assert capture.total(n.METRIC_COST, tenant="talentco") == pytest.approx(
        sum(float(dict(s.attributes or {})[n.COST_USD]) for s in capture.spans()), abs=1e-15
    )
    assert capture.total(n.METRIC_TOKENS, type="input") == 19 + 1000 + 100


def test_the_same_output_downloaded_again_is_not_counted_twice(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    serve_file(server, "file-twice", OUTPUT)
    serve_file(server, "file-twice", OUTPUT)
    client.files.content("file-twice")
    client.files.content("file-twice")
    assert len(capture.spans()) == 3


def test_other_files_record_nothing(capture: Capture, server: FakeOpenAI, client: openai.OpenAI) -> None:
    training = json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n"
    serve_file(server, "file-train", training)
    serve_file(server, "file-bin", "\x89PNG not json")
    assert client.files.content("file-train").content == training.encode()
    client.files.content("file-bin")
    assert capture.spans() == []


@pytest.mark.anyio
async def test_async_download_and_raw_response(
    capture: Capture, server: FakeOpenAI, aclient: openai.AsyncOpenAI, client: openai.OpenAI
) -> None:
    serve_file(server, "file-async", OUTPUT)
    await aclient.files.content("file-async")
    assert len(capture.spans()) == 3
    serve_file(server, "file-raw", OUTPUT)
    raw = client.files.with_raw_response.content("file-raw")
    assert raw.http_response.status_code == 200
    assert len(capture.spans()) == 6


def test_uninstrumented_downloads_record_nothing(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    spendscope.uninstrument_openai()
    serve_file(server, "file-plain", OUTPUT)
    client.files.content("file-plain")
    assert capture.spans() == []


def test_batch_calls_land_in_clickhouse_as_batch_with_their_cost(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI, store: Store
) -> None:
    serve_file(server, "file-store", OUTPUT)
    client.files.content("file-store")
    store.insert_spans([span_record(s) for s in capture.spans()])
    rows = store.query("SELECT response_id, batch, cost_usd FROM llm_usage FINAL ORDER BY response_id").rows
    assert [(r[0], r[1], Decimal(r[2])) for r in rows] == [
        ("", True, Decimal("0.000001")),
        ("chatcmpl-b1", True, Decimal("0.000004425")),
        ("chatcmpl-b2", True, Decimal("0.000135")),
    ]
