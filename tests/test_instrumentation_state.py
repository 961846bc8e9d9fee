"""Who owns the instrumentation's state: an `Instrumentation` owns its patches and registries (pending
background calls, batch files already recorded), so a test can make its own with fresh ones; one at a
time patches openai; `instrument_openai` uses a default one, made on first use."""

from __future__ import annotations

import json

import openai
import pytest
from openai.resources.chat.completions.completions import Completions

import spendscope
from spendscope import names as n
from spendscope.demo.fake_openai import FakeOpenAI, Reply
from spendscope.instrumentation import Instrumentation, default_instrumentation
from tests.conftest import Capture, make_capture
from tests.helpers import chat_body

MESSAGES = [{"role": "user", "content": "Hi"}]
BATCH_OUTPUT = json.dumps(
    {
        "id": "batch_req_1",
        "custom_id": "cv-1",
        "response": {"status_code": 200, "request_id": "req_1", "body": chat_body(19, 10)},
        "error": None,
    }
)


def download_batch_output(server: FakeOpenAI, client: openai.OpenAI, file_id: str) -> None:
    server.enqueue(
        f"/v1/files/{file_id}/content",
        Reply(body=BATCH_OUTPUT + "\n", headers={"content-type": "application/octet-stream"}),
    )
    client.files.content(file_id)


def test_an_instrumentation_of_its_own_starts_with_fresh_registries(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    for _ in range(2):
        capture = make_capture()
        own = Instrumentation()
        own.instrument(tracer_provider=capture.tracer_provider, meter_provider=capture.meter_provider)
        try:
            for _ in range(2):  # recorded once by this instrumentation ...
                download_batch_output(server, client, "file-own")
            queued = client.responses.create(model="gpt-4o-mini", input="Hi", background=True)
            assert queued.id in own.pending and len(own.pending) == 1
            assert queued.id not in default_instrumentation().pending
        finally:
            own.uninstrument()  # the background call is finished: nothing will poll it now
        # ... and once again by the next one, which has not seen the file
        batch, background = (dict(s.attributes or {}) for s in capture.spans())
        assert batch[n.BATCH] is True
        assert (background[n.RESPONSE_ID], background[n.USAGE_STATE]) == (queued.id, "unavailable")
        assert len(own.pending) == 0


def test_one_instrumentation_at_a_time_patches_openai(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    patched = Completions.create  # by instrument_openai(), in the capture fixture
    other = Instrumentation()
    with pytest.raises(RuntimeError, match="another spendscope Instrumentation"):
        other.instrument()
    assert Completions.create is patched
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(capture.spans()) == 1  # recorded once, by the default instrumentation

    spendscope.uninstrument_openai()
    original = Completions.create
    own = make_capture()
    other.instrument(tracer_provider=own.tracer_provider, meter_provider=own.meter_provider)
    try:
        assert Completions.create is not original
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        other.uninstrument()
    assert Completions.create is original
    assert len(own.spans()) == 1 and len(capture.spans()) == 1


def test_the_service_label_is_the_resources_else_the_service_name_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from spendscope.instrumentation.background import PendingCalls
    from spendscope.instrumentation.instrumentation import Options
    from spendscope.instrumentation.telemetry import Telemetry

    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-api")
    options = Options.resolve()
    assert options.service_name == "billing-api"

    def service(provider: trace.TracerProvider) -> str:
        telemetry = Telemetry(
            provider,
            None,
            pricer=options.pricer,
            user_label_limit=1,
            pending=PendingCalls(),
            service_name=options.service_name,
        )
        return telemetry.service

    assert service(trace.NoOpTracerProvider()) == "billing-api"  # a provider without a resource
    assert service(TracerProvider(resource=Resource({"service.name": "from-resource"}))) == "from-resource"
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    assert Options.resolve().service_name is None


def test_internal_errors_are_raised_only_when_the_setting_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from spendscope.instrumentation.instrumentation import Options

    assert Options.resolve().raise_internal_errors  # tests/conftest.py sets it
    monkeypatch.delenv("SPENDSCOPE_RAISE_INTERNAL_ERRORS")
    assert not Options.resolve().raise_internal_errors  # production: logged and counted
