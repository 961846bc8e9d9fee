"""A fake OpenAI API server speaking the real wire format, for tests, the demo and benchmarks.

Point the real ``openai`` client at it::

    with FakeOpenAI() as server:
        client = OpenAI(base_url=server.base_url, api_key="sk-proj-x",
                        websocket_base_url=server.websocket_base_url)
"""

from spendscope.demo.fake_openai.conformance import ConformanceCase, load_conformance
from spendscope.demo.fake_openai.realtime import RealtimeConnect
from spendscope.demo.fake_openai.server import FakeOpenAI, RecordedRequest, Reply

__all__ = ["ConformanceCase", "FakeOpenAI", "RealtimeConnect", "RecordedRequest", "Reply", "load_conformance"]
