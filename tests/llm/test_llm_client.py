"""The structured-output client against the fake server: modes, re-asks, faults, cache, limits."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel, Field

from pipeline.llm import LLMClient, LLMConfig, LLMResult, OutputMode, UsageLedger
from pipeline.llm.client import parse_output, retry_after_seconds
from pipeline.llm.fake_server import FakeOpenAIServer, FaultMix, minimal_instance
from pipeline.llm.ratelimit import ConcurrencyLimit


class Proposal(BaseModel):
    question: str = Field(min_length=3)
    steps: list[str] = Field(min_length=1)


class Verdict(BaseModel):
    agrees: bool


def make_config(url: str, tmp_path: Path, **changes: Any) -> LLMConfig:
    values: dict[str, Any] = {
        "base_url": url,
        "model": "fake",
        "cache_path": tmp_path / "cache" / "llm.sqlite",
        "timeout": 5.0,
    }
    values.update(changes)
    return LLMConfig(**values)


def ask(
    config: LLMConfig,
    prompts: list[str],
    output: type[BaseModel] = Proposal,
    template_hash: str = "t1",
    usage: UsageLedger | None = None,
    sequential: bool = False,
) -> list[LLMResult[Any]]:
    """One client; the prompts at once (``asyncio.gather``) or one after another."""

    async def run() -> list[LLMResult[Any]]:
        async with LLMClient(config, usage) as client:
            calls = [
                client.structured(
                    stage="test",
                    messages=[
                        {"role": "system", "content": "You write tasks."},
                        {"role": "user", "content": prompt},
                    ],
                    output=output,
                    template_hash=template_hash,
                )
                for prompt in prompts
            ]
            if sequential:
                return [await call for call in calls]
            return list(await asyncio.gather(*calls))

    return asyncio.run(run())


def valid_answer(body: dict[str, Any]) -> str:
    return json.dumps({"question": "rename a file", "steps": ["a", "b"]})


def invalid_until_reasked(times: int) -> Callable[[dict[str, Any]], str]:
    """Schema-invalid until the conversation holds ``times`` re-asks."""

    def answer(body: dict[str, Any]) -> str:
        reasks = sum(message["role"] == "assistant" for message in body["messages"])
        return json.dumps({"question": "no"}) if reasks < times else valid_answer(body)

    return answer


# --- parsing -----------------------------------------------------------------------------------


def test_parse_output_accepts_bare_fenced_and_embedded_json() -> None:
    bare = '{"question": "abc", "steps": ["x"]}'
    assert parse_output(bare, Proposal)[0] == Proposal(question="abc", steps=["x"])
    fenced = f"Sure!\n```json\n{bare}\n```\nanything else?"
    assert parse_output(fenced, Proposal)[0] is not None
    tricky = 'Here: {"question": "a {b} \\"c\\"", "steps": ["}"]} and {"other": 1}'
    value, _ = parse_output(tricky, Proposal)
    assert value is not None and value.question == 'a {b} "c"'


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"question": "abc", "steps": ["x"', "incomplete"),
        ("no json here", "no JSON object"),
        ('{"question": "ab", "steps": []}', "question"),
        ("", "empty"),
    ],
)
def test_parse_output_explains_failures(raw: str, problem: str) -> None:
    value, why = parse_output(raw, Proposal)
    assert value is None and problem in why


def test_retry_after_forms() -> None:
    def error(headers: dict[str, str]) -> openai.APIStatusError:
        response = httpx2.Response(
            429, headers=headers, request=httpx2.Request("POST", "http://x/v1/chat/completions")
        )
        return openai.RateLimitError("slow down", response=response, body=None)

    assert retry_after_seconds(error({"Retry-After": "2"})) == 2.0
    assert retry_after_seconds(error({"retry-after-ms": "250"})) == 0.25
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    delay = retry_after_seconds(error({"Retry-After": date}))
    assert delay is not None and 27 <= delay <= 31
    assert retry_after_seconds(error({})) is None
    assert retry_after_seconds(ValueError()) is None


# --- structured output and mode fallback ------------------------------------------------------


def test_happy_path_uses_json_schema(tmp_path: Path) -> None:
    usage = UsageLedger()
    server = FakeOpenAIServer()
    with server as url:
        [result] = ask(make_config(url, tmp_path), ["one"], usage=usage)
    assert result.value is not None and result.error is None
    Proposal.model_validate(minimal_instance(Proposal.model_json_schema()))
    assert result.requests == 1 and not result.cached and result.raw
    body = server.bodies[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is False
    assert body["response_format"]["json_schema"]["schema"] == Proposal.model_json_schema()
    assert body["temperature"] == 0.7 and body["max_tokens"] == 1024
    stage = usage.as_dict()["test"]
    assert stage["requests"] == 1 and stage["prompt_tokens"] > 0 and stage["completion_tokens"] > 0


def test_json_schema_rejected_with_500_falls_back_to_json_object_and_remembers(
    tmp_path: Path,
) -> None:
    server = FakeOpenAIServer(faults=FaultMix(reject_json_schema=True))

    async def run(config: LLMConfig) -> tuple[LLMResult[Proposal], LLMResult[Proposal]]:
        async with LLMClient(config) as client:
            messages = [{"role": "user", "content": "first"}]
            first = await client.structured(
                stage="s", messages=messages, output=Proposal, template_hash="t"
            )
            assert client.mode is OutputMode.JSON_OBJECT
            messages = [{"role": "user", "content": "second"}]
            second = await client.structured(
                stage="s", messages=messages, output=Proposal, template_hash="t"
            )
            return first, second

    with server as url:
        first, second = asyncio.run(run(make_config(url, tmp_path)))
    assert first.value is not None and second.value is not None
    assert (first.requests, second.requests) == (2, 1)
    kinds = [body["response_format"]["type"] for body in server.bodies]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert server.bodies[2]["response_format"]["schema"] == Proposal.model_json_schema()


def test_text_fallback_extracts_json_when_no_response_format_is_accepted(tmp_path: Path) -> None:
    server = FakeOpenAIServer(faults=FaultMix(reject_response_format=True))
    with server as url:
        first, second = ask(make_config(url, tmp_path), ["a", "b"], sequential=True)
    assert first.value is not None and second.value is not None
    assert first.raw is not None and "```json" in first.raw
    assert (first.requests, second.requests) == (3, 1)
    last = server.bodies[-1]
    assert "response_format" not in last
    system = last["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You write tasks.")
    assert '"steps"' in system["content"]  # the schema, described in the one system message
    assert sum(message["role"] == "system" for message in last["messages"]) == 1


def test_reask_after_schema_invalid_output_succeeds(tmp_path: Path) -> None:
    usage = UsageLedger()
    server = FakeOpenAIServer(answer=invalid_until_reasked(1))
    with server as url:
        [result] = ask(make_config(url, tmp_path), ["x"], usage=usage)
    assert result.value is not None and result.requests == 2
    reask = server.bodies[1]["messages"]
    assert reask[-2] == {"role": "assistant", "content": '{"question": "no"}'}
    assert reask[-1]["role"] == "user" and "question" in reask[-1]["content"]
    assert usage.as_dict()["test"]["reasks"] == 1


def test_gives_up_after_max_reasks_and_keeps_the_raw_text(tmp_path: Path) -> None:
    usage = UsageLedger()
    server = FakeOpenAIServer(answer=lambda body: "I would rather not.")
    with server as url:
        [result] = ask(make_config(url, tmp_path, max_reasks=2), ["x"], usage=usage)
    assert result.value is None and result.raw == "I would rather not."
    assert result.error is not None and "2 re-asks" in result.error
    assert result.requests == 3 == server.requests
    counters = usage.as_dict()["test"]
    assert counters["reasks"] == 2 and counters["failures"] == 1


def test_truncated_json_is_reasked(tmp_path: Path) -> None:
    calls: list[int] = []

    def answer(body: dict[str, Any]) -> str:
        calls.append(1)
        text = valid_answer(body)
        return text[:10] if len(calls) == 1 else text

    with FakeOpenAIServer(answer=answer) as url:
        [result] = ask(make_config(url, tmp_path), ["x"])
    assert result.value is not None and result.requests == 2


# --- transport failures ------------------------------------------------------------------------


def test_rate_limited_until_giving_up_returns_an_error(tmp_path: Path) -> None:
    usage = UsageLedger()
    server = FakeOpenAIServer(faults=FaultMix(rate_limit=1.0, retry_after=0.01))
    with server as url:
        [result] = ask(make_config(url, tmp_path, max_retries=3), ["x"], usage=usage)
    assert result.value is None and result.error is not None and "HTTP 429" in result.error
    assert result.requests == 4 == server.requests
    counters = usage.as_dict()["test"]
    assert counters["retries"] == 3 and counters["failures"] == 1 and counters["requests"] == 4


def test_server_errors_on_json_schema_probe_json_object_then_retry(tmp_path: Path) -> None:
    server = FakeOpenAIServer(faults=FaultMix(server_error=1.0))
    with server as url:
        [result] = ask(make_config(url, tmp_path, max_retries=1), ["x"])
    assert result.value is None and result.error is not None and "HTTP 500" in result.error
    kinds = [body["response_format"]["type"] for body in server.bodies]
    assert kinds == ["json_schema", "json_object"] * 2  # each attempt probes, then backs off


def test_unreachable_server_is_an_error_not_an_exception(tmp_path: Path) -> None:
    server = FakeOpenAIServer()
    url = server.start()
    server.stop()  # the port is now closed
    [result] = ask(make_config(url, tmp_path, max_retries=0), ["x"])
    assert result.value is None and result.error is not None and result.requests == 1


@pytest.mark.slow
def test_fault_mix_every_call_returns_a_result(tmp_path: Path) -> None:
    usage = UsageLedger()
    faults = FaultMix(
        rate_limit=0.1,
        server_error=0.1,
        timeout=0.04,
        truncated=0.1,
        invalid=0.1,
        retry_after=0.05,
        hang_seconds=2.0,
    )
    server = FakeOpenAIServer(faults=faults, seed=3)
    prompts = [f"task {index}" for index in range(60)]
    with server as url:
        config = make_config(url, tmp_path, timeout=0.5, concurrency=16)
        results = ask(config, prompts, usage=usage)
    assert len(results) == 60
    assert all(isinstance(result, LLMResult) for result in results)
    assert all((result.value is None) == (result.error is not None) for result in results)
    assert sum(result.value is not None for result in results) >= 55
    counters = usage.as_dict()["test"]
    assert counters["retries"] > 0 and counters["reasks"] > 0
    assert counters["requests"] == server.requests == sum(result.requests for result in results)
    outcomes = {event.outcome for event in server.events}
    assert {"rate_limit", "server_error", "timeout", "truncated", "invalid"} <= outcomes
    assert server.max_in_flight > 1  # the prompts were asked side by side, not one by one


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    server = FakeOpenAIServer(faults=FaultMix(rate_limit=0.5, retry_after=0.3), seed=1)
    with server as url:
        results = ask(make_config(url, tmp_path, concurrency=1), [f"p{i}" for i in range(6)])
    assert all(result.value is not None for result in results)
    events = server.events
    waits = []  # from each 429 to the same call's next request (other calls use the slot)
    for position, event in enumerate(events):
        if event.outcome == "rate_limit":
            retry = next(later for later in events[position + 1 :] if later.body == event.body)
            waits.append(retry.received_at - event.received_at)
    assert len(waits) >= 2 and min(waits) >= 0.3


# --- cache ------------------------------------------------------------------------------------


def test_rerun_is_served_from_the_cache(tmp_path: Path) -> None:
    server = FakeOpenAIServer(answer=invalid_until_reasked(1))
    prompts = ["a", "b", "c"]
    with server as url:
        config = make_config(url, tmp_path)
        first = ask(config, prompts)
        sent = server.requests
        usage = UsageLedger()
        again = ask(config, prompts, usage=usage)
        assert server.requests == sent == 6  # each needed one re-ask
        assert [r.value for r in again] == [r.value for r in first]
        assert all(r.cached and r.requests == 0 for r in again)
        assert not any(r.cached for r in first)
        counters = usage.as_dict()["test"]
        assert counters["cache_hits"] == 6 and counters["reasks"] == 3
        assert counters["requests"] == 0 and counters["prompt_tokens"] == 0

        ask(config, prompts, template_hash="t2")  # another template: misses
        assert server.requests == sent + 6
        ask(config, ["a"], output=Verdict)  # another schema: misses
        assert server.requests > sent + 6


def test_cache_key_ignores_the_output_mode(tmp_path: Path) -> None:
    with FakeOpenAIServer(faults=FaultMix(reject_json_schema=True)) as url:
        first = ask(make_config(url, tmp_path), ["a"])
    server = FakeOpenAIServer()
    with server as url:
        again = ask(make_config(url, tmp_path), ["a"])
    assert server.requests == 0 and again[0].cached and again[0].value == first[0].value


# --- limits -----------------------------------------------------------------------------------


def test_concurrency_limit_is_respected(tmp_path: Path) -> None:
    server = FakeOpenAIServer(latency=0.1)
    with server as url:
        results = ask(make_config(url, tmp_path, concurrency=3), [str(i) for i in range(12)])
    assert all(result.value is not None for result in results)
    assert server.max_in_flight == 3


def test_requests_per_minute_spaces_requests(tmp_path: Path) -> None:
    server = FakeOpenAIServer()
    with server as url:
        config = make_config(url, tmp_path, concurrency=8, requests_per_minute=600)
        ask(config, [str(i) for i in range(5)])
    times = sorted(event.received_at for event in server.events)
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    # 0.1 s apart, give or take the network; the first request alone opens a connection (the
    # others wait for its answer, which teaches the output mode), so it reaches the server late
    assert len(gaps) == 4 and min(gaps[1:]) >= 0.07 and gaps[0] > 0
    assert times[-1] - times[1] >= 0.28


def test_one_client_serves_several_event_loops(tmp_path: Path) -> None:
    server = FakeOpenAIServer()
    with server as url:
        client = LLMClient(make_config(url, tmp_path))

        async def one(prompt: str) -> LLMResult[Proposal]:
            messages = [{"role": "user", "content": prompt}]
            return await client.structured(
                stage="s", messages=messages, output=Proposal, template_hash="t"
            )

        assert asyncio.run(one("a")).value is not None
        assert asyncio.run(one("b")).value is not None  # a new loop, a new pool
        asyncio.run(client.aclose())
    assert server.requests == 2


def test_concurrency_limit_holds_across_threads_and_survives_cancellation() -> None:
    limit = ConcurrencyLimit(2)
    active = 0
    peak = 0
    lock = threading.Lock()

    async def hold() -> None:
        nonlocal active, peak
        async with limit:
            with lock:
                active += 1
                peak = max(peak, active)
            await asyncio.sleep(0.02)
            with lock:
                active -= 1

    async def run() -> None:
        waiting = asyncio.ensure_future(asyncio.gather(*(hold() for _ in range(6))))
        await asyncio.sleep(0.005)
        cancelled = asyncio.ensure_future(hold())
        await asyncio.sleep(0)
        cancelled.cancel()
        await waiting

    threads = [threading.Thread(target=asyncio.run, args=(run(),)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2
    assert limit._free == 2 and not limit._waiters  # every slot came back


def test_unconfigured_or_keyless_remote_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not configured"):
        LLMClient(LLMConfig(cache_path=tmp_path / "c.sqlite"))
    remote = LLMConfig(base_url="https://api.example/v1", model="m", cache_path=tmp_path / "c")
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        LLMClient(remote)
