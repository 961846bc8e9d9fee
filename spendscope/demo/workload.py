"""A realistic, deterministic workload: an HR platform and a homework helper calling OpenAI.

Every call goes through the real `openai` client to the fake OpenAI server, attributed with
`spendscope.attributes`. It includes streams, Realtime video interviews, a model with no known
price, a stream the app abandons, and errors, because those are what cost tracking gets wrong.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import openai
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel

import spendscope
from spendscope.demo.fake_openai import FakeOpenAI, Reply

HR_SERVICE = "hr-platform"
SCHOOL_SERVICE = "homework-helper"
_ERROR_429 = {"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests", "param": None,
                        "code": "rate_limit_exceeded"}}  # fmt: skip


class ParsedCV(BaseModel):
    name: str
    years_of_experience: int
    skills: list[str]


@dataclass
class Outcome:
    calls: int = 0
    errors: list[str] = field(default_factory=list)


def _chat(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def run_hr_platform(client: openai.OpenAI, rng: random.Random, outcome: Outcome) -> None:
    """Tenant `talentco` bills its customers per job: CV parsing, question generation, interviews."""
    for job in ("job-1001", "job-1002", "job-1003"):
        recruiter = f"recruiter-{rng.randint(1, 3)}"
        with spendscope.attributes(user=recruiter, tenant="talentco", job_id=job):
            for candidate in range(rng.randint(2, 4)):
                # what the platform bills its customer per job: CVs parsed, questions written, interview
                # minutes (recorded on Realtime calls with no code here)
                with spendscope.attributes(
                    endpoint="cv-parsing", candidate_id=f"{job}-c{candidate}", quantities={"cvs_parsed": 1}
                ):
                    cv = "Experienced engineer. " * rng.randint(20, 80)
                    client.chat.completions.parse(
                        model="gpt-4o-mini", messages=_chat(cv), response_format=ParsedCV
                    )
                    outcome.calls += 1
                with spendscope.attributes(endpoint="cv-search"):
                    client.embeddings.create(model="text-embedding-3-small", input=[cv[:500]])
                    outcome.calls += 1
            with spendscope.attributes(endpoint="question-generation", quantities={"questions": 5}):
                stream = client.responses.create(
                    model="gpt-4.1", input=f"Write 5 interview questions for {job}", stream=True
                )
                for _ in stream:
                    pass
                outcome.calls += 1
            with (
                spendscope.attributes(endpoint="video-interview"),
                client.realtime.connect(model="gpt-realtime") as interview,
            ):
                interview.session.update(session={"type": "realtime", "instructions": "Interview politely."})
                for turn in range(2):
                    interview.conversation.item.create(
                        item={"type": "message", "role": "user",
                              "content": [{"type": "input_text", "text": f"Answer {turn}: " + "blah " * 40}]}
                    )  # fmt: skip
                    interview.response.create()
                    for event in interview:
                        if event.type == "response.done":
                            break
                    outcome.calls += 1


async def run_homework_helper(client: openai.AsyncOpenAI, rng: random.Random, outcome: Outcome) -> None:
    """Tenant `brightschool`: students' homework analysis (streamed) and hints (reasoning model)."""

    async def student(name: str) -> None:
        with spendscope.attributes(user=name, tenant="brightschool"):
            for _ in range(rng.randint(1, 3)):
                with spendscope.attributes(endpoint="analyze_homework"):
                    stream = await client.chat.completions.create(
                        model="gpt-4o-mini", messages=_chat("2x + 3 = 11. " * rng.randint(5, 30)), stream=True
                    )
                    async for _ in stream:
                        pass
                    outcome.calls += 1
                with spendscope.attributes(endpoint="generate_hint"):
                    await client.responses.create(model="gpt-5-mini", input="Give a hint, not the answer.")
                    outcome.calls += 1

    await asyncio.gather(*(student(f"student-{i:02d}") for i in range(8)))
    with spendscope.attributes(user="student-03", tenant="brightschool", endpoint="analyze_homework"):
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=_chat("essay"), stream=True
        )
        async with stream:
            await stream.__anext__()  # the student closed the tab: usage never arrives
        outcome.calls += 1
        # a self-hosted fine-tune nobody has a price for: its cost is unknown, never $0
        await client.chat.completions.create(model="brightschool-tutor-v2", messages=_chat("hi"))
        outcome.calls += 1


def run_edge_cases(client: openai.OpenAI, server: FakeOpenAI, outcome: Outcome) -> None:
    """What trips cost tracking elsewhere: rate limits and bad model names."""
    with spendscope.attributes(user="recruiter-1", tenant="talentco", endpoint="cv-parsing"):
        server.enqueue("/v1/chat/completions", Reply(status=429, json=_ERROR_429))
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=_chat("retry me"))
        except openai.RateLimitError as exc:
            outcome.errors.append(f"429 {type(exc).__name__}")
        outcome.calls += 1
        try:
            client.chat.completions.create(model="this-model-does-not-exist", messages=_chat("hi"))
        except openai.NotFoundError as exc:
            outcome.errors.append(f"404 {type(exc).__name__}")
        outcome.calls += 1


ClientHook = Callable[[openai.OpenAI | openai.AsyncOpenAI, str], None]


def run(server: FakeOpenAI, *, seed: int = 7, on_client: ClientHook | None = None) -> Outcome:
    """Run the whole workload against `server`. `on_client(client, service)` sees each client before
    it is used (the demo instruments each service's client with that service's providers)."""
    rng = random.Random(seed)
    outcome = Outcome()
    options = {"api_key": "sk-proj-demo000000000000000000d3m0", "base_url": server.base_url,
               "websocket_base_url": server.websocket_base_url, "max_retries": 0}  # fmt: skip
    with openai.OpenAI(**options, project="proj_talentco") as client:  # type: ignore[arg-type]
        if on_client is not None:
            on_client(client, HR_SERVICE)
        run_hr_platform(client, rng, outcome)
        run_edge_cases(client, server, outcome)

    async def homework() -> None:
        async with openai.AsyncOpenAI(**options, project="proj_brightschool") as aclient:  # type: ignore[arg-type]
            if on_client is not None:
                on_client(aclient, SCHOOL_SERVICE)
            await run_homework_helper(aclient, rng, outcome)

    asyncio.run(homework())
    return outcome
