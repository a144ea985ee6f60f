"""What the client learns about an endpoint, replies cut at the token cap, samples in the cache,
and per-call settings, against the fake server's llama.cpp (and other servers') behaviours."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pipeline.llm import LLMClient, LLMConfig, LLMResult, OutputMode, UsageLedger
from pipeline.llm.cache import AnswerCache
from pipeline.llm.client import ChatResult
from pipeline.llm.fake_server import FakeOpenAIServer, FaultMix


class Proposal(BaseModel):
    question: str
    steps: list[str]


def make_config(url: str, tmp_path: Path, **changes: Any) -> LLMConfig:
    values: dict[str, Any] = {
        "base_url": url,
        "model": "fake",
        "cache_path": tmp_path / "cache" / "llm.sqlite",
        "timeout": 5.0,
        "concurrency": 8,
    }
    values.update(changes)
    return LLMConfig(**values)


def ask_all(
    config: LLMConfig,
    prompts: list[str],
    usage: UsageLedger | None = None,
    stage: str = "test",
    **options: Any,
) -> tuple[list[LLMResult[Any]], dict[str, Any]]:
    """The prompts at once through one client; the results and the client's capabilities."""

    async def run() -> tuple[list[LLMResult[Any]], dict[str, Any]]:
        async with LLMClient(config, usage) as client:
            calls = [
                client.structured(
                    stage=stage,
                    messages=[{"role": "user", "content": prompt}],
                    output=Proposal,
                    template_hash="t",
                    **options,
                )
                for prompt in prompts
            ]
            results = list(await asyncio.gather(*calls))
            return results, client.capabilities

    return asyncio.run(run())


def proposal(text: str = "q") -> str:
    return json.dumps({"question": text, "steps": ["a"]})


def counting_answers() -> Any:
    """A new answer on every request (as sampling at a temperature above 0 gives)."""
    counter = itertools.count()
    lock = threading.Lock()

    def answer(body: dict[str, Any]) -> str:
        with lock:
            number = next(counter)
        return proposal(f"answer {number}")

    return answer


# --- the output mode, learned once -------------------------------------------------------------


def test_concurrent_first_calls_cost_one_refused_request(tmp_path: Path) -> None:
    usage = UsageLedger()
    server = FakeOpenAIServer(faults=FaultMix.llama_cpp())
    with server as url:
        results, capabilities = ask_all(
            make_config(url, tmp_path), [f"p{i}" for i in range(10)], usage
        )
    assert all(result.value is not None for result in results)
    kinds = [body["response_format"]["type"] for body in server.bodies]
    assert kinds.count("json_schema") == 1 and kinds[0] == "json_schema"
    assert kinds.count("json_object") == 10
    counters = usage.as_dict()["test"]
    assert counters["requests"] == 11 and counters["failed_requests"] == 1
    assert capabilities["output_mode"] == "json_object"
    assert capabilities["refused_output_modes"] == ["json_schema"]
    assert any("json_schema refused" in line for line in capabilities["learned"])


def test_what_was_learned_is_shared_and_kept_in_the_cache_file(tmp_path: Path) -> None:
    server = FakeOpenAIServer(faults=FaultMix.llama_cpp())
    with server as url:
        config = make_config(url, tmp_path)
        ask_all(config, ["first"])
        sent = len(server.bodies)
        usage = UsageLedger()
        ask_all(config, ["second", "third"], usage)  # a new client on the same cache
    later = [body["response_format"]["type"] for body in server.bodies[sent:]]
    assert later == ["json_object", "json_object"]
    assert usage.as_dict()["test"]["failed_requests"] == 0
    stored = AnswerCache(config.cache_path).endpoint(url, "fake")  # what a new process reads
    assert stored is not None and stored["output_mode"] == "json_object"


def test_refused_max_tokens_switches_to_max_completion_tokens(tmp_path: Path) -> None:
    usage = UsageLedger()
    server = FakeOpenAIServer(faults=FaultMix(refuse_max_tokens=True))
    with server as url:
        results, capabilities = ask_all(make_config(url, tmp_path), ["a", "b", "c"], usage)
    assert all(result.value is not None for result in results)
    bodies = server.bodies
    assert "max_tokens" in bodies[0] and "max_completion_tokens" not in bodies[0]
    assert all(body["max_completion_tokens"] == 1024 for body in bodies[1:])
    assert all("max_tokens" not in body for body in bodies[1:])
    assert len(bodies) == 4 and usage.as_dict()["test"]["failed_requests"] == 1
    assert capabilities["token_parameter"] == "max_completion_tokens"
    assert capabilities["output_mode"] == "json_schema"  # the refusal was not the mode's


def test_context_overflow_ends_the_call_without_blaming_the_mode(tmp_path: Path) -> None:
    server = FakeOpenAIServer(faults=FaultMix(context_tokens=100))
    with server as url:
        [result], capabilities = ask_all(make_config(url, tmp_path, max_tokens=50), ["x" * 400])
    assert result.value is None and result.error is not None
    assert "context window" in result.error and result.requests == 1
    assert capabilities["refused_output_modes"] == []


# --- replies cut at the token cap ---------------------------------------------------------------


def runaway_then(good: str, runaways: int) -> Any:
    """``runaways`` replies that never end (cut at the cap), then ``good``."""
    seen = itertools.count()

    def answer(body: dict[str, Any]) -> str:
        if next(seen) < runaways:
            return '{"question": "q", "steps": [' + '"again", ' * 500
        return good

    return answer


def test_a_reply_cut_at_the_cap_is_resampled_not_fed_back(tmp_path: Path) -> None:
    usage = UsageLedger()
    server = FakeOpenAIServer(answer=runaway_then(proposal(), 1), faults=FaultMix.llama_cpp())
    with server as url:
        [result], _ = ask_all(make_config(url, tmp_path, max_tokens=100), ["x"], usage)
    assert result.value is not None and result.truncated == 1
    sent = [body for body in server.bodies if body["response_format"]["type"] == "json_object"]
    assert len(sent) == 2 and sent[0]["messages"] == sent[1]["messages"]  # nothing fed back
    assert [event.outcome for event in server.events][-2:] == ["length", "ok"]
    counters = usage.as_dict()["test"]
    assert counters["truncated"] == 1 and counters["resamples"] == 1 and counters["reasks"] == 0


def test_resampling_is_bounded_and_greedy_calls_are_not_resampled(tmp_path: Path) -> None:
    server = FakeOpenAIServer(answer=runaway_then(proposal(), 99), faults=FaultMix.llama_cpp())
    with server as url:
        config = make_config(url, tmp_path, max_tokens=100, max_resamples=2)
        [result], _ = ask_all(config, ["x"])
        [greedy], _ = ask_all(config, ["y"], temperature=0.0)
    assert result.value is None and result.error is not None
    assert "cut at the token cap (100 tokens) in 3 sample(s)" in result.error
    assert result.requests == 4 and result.truncated == 3  # json_schema refused, 3 samples
    assert greedy.value is None and greedy.requests == 1 and greedy.truncated == 1


def test_resampled_calls_replay_from_the_cache(tmp_path: Path) -> None:
    server = FakeOpenAIServer(answer=runaway_then(proposal("kept"), 1), faults=FaultMix.llama_cpp())
    with server as url:
        config = make_config(url, tmp_path, max_tokens=100)
        [first], _ = ask_all(config, ["x"])
        sent = server.requests
        usage = UsageLedger()
        [again], _ = ask_all(config, ["x"], usage)
    assert server.requests == sent and again.cached and again.value == first.value
    assert usage.as_dict()["test"]["truncated"] == 1  # the cut draw, read back


# --- samples in the cache ----------------------------------------------------------------------


def test_a_prompt_asked_twice_keeps_both_answers_across_runs(tmp_path: Path) -> None:
    server = FakeOpenAIServer(answer=counting_answers())
    with server as url:
        config = make_config(url, tmp_path)
        first, _ = ask_all(config, ["same", "same", "other"])
        assert server.requests == 3
        again, _ = ask_all(config, ["same", "same", "other"])  # a new run on the same cache
        assert server.requests == 3
        assert first[0].value != first[1].value  # two samples, two answers
        assert [r.value for r in again] == [r.value for r in first]
        [third], _ = ask_all(config, ["same"], sample=2)  # a sample not drawn yet
        assert server.requests == 4 and third.value not in (first[0].value, first[1].value)


def test_the_first_answer_stored_under_a_key_is_the_one_kept(tmp_path: Path) -> None:
    server = FakeOpenAIServer(answer=counting_answers(), latency=0.05)
    with server as url:
        config = make_config(url, tmp_path)

        def one_run(box: list[LLMResult[Any]]) -> None:
            box.extend(ask_all(config, ["race"])[0])

        boxes: list[list[LLMResult[Any]]] = [[], []]
        threads = [threading.Thread(target=one_run, args=(box,)) for box in boxes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        [replayed], _ = ask_all(config, ["race"])
    assert server.requests == 2  # both clients asked for sample 0 at once
    assert boxes[0][0].value == boxes[1][0].value == replayed.value  # both use the stored one


# --- per-call settings -------------------------------------------------------------------------


def test_judge_stages_sample_at_temperature_0_and_calls_can_override(tmp_path: Path) -> None:
    server = FakeOpenAIServer()
    with server as url:
        config = make_config(url, tmp_path)
        ask_all(config, ["verdict"], stage="judge")
        ask_all(config, ["made"], stage="deepen")
        ask_all(config, ["short"], stage="deepen", temperature=0.2, max_tokens=300)
    temperatures = [body["temperature"] for body in server.bodies]
    assert temperatures == [0.0, 0.7, 0.2]
    assert [body["max_tokens"] for body in server.bodies] == [1024, 1024, 300]


# --- chat ---------------------------------------------------------------------------------------


def chat_once(
    config: LLMConfig, tools: list[dict[str, Any]] | None, content: str = "hi", count: int = 1
) -> tuple[list[ChatResult], dict[str, Any]]:
    async def run() -> tuple[list[ChatResult], dict[str, Any]]:
        async with LLMClient(config) as client:
            calls = [
                client.chat(
                    stage="agent", messages=[{"role": "user", "content": content}], tools=tools
                )
                for _ in range(count)
            ]
            return list(await asyncio.gather(*calls)), client.capabilities

    return asyncio.run(run())


TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]


def test_chat_reports_refused_tools_and_context_overflow(tmp_path: Path) -> None:
    server = FakeOpenAIServer(faults=FaultMix(reject_tools=True, context_tokens=200))
    with server as url:
        config = make_config(url, tmp_path, max_tokens=50)
        results, capabilities = chat_once(config, TOOLS, count=4)
        assert server.requests == 1  # the others waited for the first answer, then gave up too
        [plain], _ = chat_once(config, None)
        [overflow], _ = chat_once(config, None, content="x" * 1000)
    assert all(result.refusal == "tools" and result.status == 400 for result in results[:1])
    assert capabilities["tools"] == "refused"
    assert plain.error is None and plain.finish_reason == "stop"
    assert overflow.refusal == "context_overflow" and overflow.error is not None
    assert "context window" in overflow.error


def test_chat_reports_a_reply_cut_at_the_cap(tmp_path: Path) -> None:
    server = FakeOpenAIServer(answer=lambda body: "word " * 200, faults=FaultMix.llama_cpp())
    with server as url:
        [result], capabilities = chat_once(make_config(url, tmp_path, max_tokens=20), TOOLS)
    assert result.finish_reason == "length" and len(result.content) == 80
    assert capabilities["tools"] == "accepted"  # taken, but no native call seen


def test_an_unknown_mode_memory_does_not_change_the_default_mode(tmp_path: Path) -> None:
    server = FakeOpenAIServer()
    with server as url:
        _, capabilities = ask_all(make_config(url, tmp_path), ["a"])
    assert capabilities["output_mode"] == OutputMode.JSON_SCHEMA.value
    assert capabilities["token_parameter"] == "max_tokens" and capabilities["token_parameter_known"]


def test_two_clients_opening_a_new_cache_at_once_both_open_it(tmp_path: Path) -> None:
    # switching a new file to WAL takes a lock SQLite's busy timeout does not wait for
    from pipeline.llm.cache import AnswerCache

    for attempt in range(30):
        path = tmp_path / f"cache-{attempt}.sqlite"
        start = threading.Barrier(4)
        failures: list[BaseException] = []

        def open_cache(
            path: Path = path,
            start: threading.Barrier = start,
            failures: list[BaseException] = failures,
        ) -> None:
            start.wait()
            try:
                AnswerCache(path)
            except BaseException as error:  # noqa: BLE001 - collected for the assertion
                failures.append(error)

        threads = [threading.Thread(target=open_cache) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
