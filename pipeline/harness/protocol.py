"""The agent protocol in the OpenAI chat format: tool schemas, the system prompt, the lines that
report on calls, and reading calls back.

Every environment tool an instance's tasks use is offered once, named ``env__function`` (OpenAI
function names allow no dot) and given a required ``task_id`` argument, since one tool serves
several tasks with separate states; its ``task_id`` enum lists only the tasks that have that
environment. The harness adds ``wait`` and ``finish_task``. Schemas are compacted for small
context windows (no internal ``x-`` annotations, optional-or-null written as the plain type).

What the agent is told about its calls is written as prose lines that start with the call id
(``- c3 (task T1) maths__add {"a": 1} started; ...``), never as JSON objects shaped like a
call: a small model imitates what it reads, and JSON acknowledgements were copied back as new
calls. Model output is only ever read with ``json.loads``; anything that does not fit becomes a
``ProtocolError`` whose message is meant to be shown to the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.envs import ENVIRONMENTS, ToolError, ToolSpec, resolve_tool
from pipeline.envs.base import INVALID_ARGUMENTS
from pipeline.harness.sim import Action, CallAction, FinishAction, WaitAction
from pipeline.models import Instance
from pipeline.tooldocs import json_type

WAIT = "wait"
FINISH = "finish_task"
SEPARATOR = "__"  # env__function; env names are [a-z][a-z0-9_]* and never hold a double "_"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

#: ProtocolError kinds the agent counts separately
ECHO = "echo"  # a line about an earlier call copied back as if it were a call
REPEAT = "repeat"  # an identical call over the agent's bound
RUNNING = "running"  # the same call as one still running: its result is on the way


@dataclass(frozen=True)
class ProtocolError:
    """A call the harness cannot act on; ``message`` is written for the model."""

    message: str
    name: str = ""
    kind: str = ""  # "", ECHO or REPEAT


def openai_name(qualified: str) -> str:
    """``filesystem.cd`` -> ``filesystem__cd``."""
    env, _, function = qualified.partition(".")
    name = f"{env}{SEPARATOR}{function}"
    if not NAME_PATTERN.match(name):
        raise ValueError(f"{qualified!r} has no legal OpenAI function name ({name!r})")
    return name


def qualified_name(name: str) -> str | None:
    """The harness tool behind a function name (``env__fn``, or the dotted ``env.fn`` models
    sometimes echo), or None if no environment has it."""
    env, dot, function = name.partition(".")
    if not dot:
        env, sep, function = name.partition(SEPARATOR)
        if not sep:
            return None
    qualified = f"{env}.{function}"
    try:
        resolve_tool(qualified)
    except ToolError:
        return None
    return qualified


def instance_envs(instance: Instance) -> list[str]:
    """The environments the instance's tasks use, in first-use order."""
    seen: dict[str, None] = {}
    for task in instance.tasks:
        for env in task.envs:
            seen.setdefault(env, None)
    return list(seen)


def task_aliases(instance: Instance) -> dict[str, str]:
    """Each task's id -> the short name the model sees (``T1``, ``T2``, ...): a small model
    copies a 16-digit hex id unreliably and confuses two of them."""
    return {task.id: f"T{number}" for number, task in enumerate(instance.tasks, start=1)}


def env_tasks(instance: Instance, aliases: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Each environment of the instance and the tasks that have it (as ``aliases`` name them)."""
    names = aliases or {}
    return {
        env: [names.get(task.id, task.id) for task in instance.tasks if env in task.envs]
        for env in instance_envs(instance)
    }


def _env_tools(instance: Instance) -> Iterator[tuple[str, ToolSpec]]:
    for env in instance_envs(instance):
        for function, spec in ENVIRONMENTS[env].tool_specs().items():
            yield f"{env}.{function}", spec


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def compact_schema(schema: Any) -> Any:
    """A parameter schema without what only the pipeline reads (``x-`` annotations, titles),
    and ``anyOf: [T, null]`` with a null default written as ``T`` (leaving the argument out
    means the same): about a third fewer tokens for the same calls."""
    if isinstance(schema, list):
        return [compact_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        key: compact_schema(value)
        for key, value in schema.items()
        if not key.startswith("x-") and key != "title"
    }
    options = out.get("anyOf")
    if not isinstance(options, list):
        return out
    if len(options) == 2 and any(map(_is_null, options)) and out.get("default") is None:
        kept = next(option for option in options if not _is_null(option))
        out.pop("anyOf")
        out.pop("default", None)
        out = {**kept, **out}
    return out


def _task_id_schema(task_ids: list[str]) -> dict[str, Any]:
    return {"type": "string", "enum": task_ids, "description": "The task this call is for."}


def _function(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _description(spec: ToolSpec) -> str:
    return f"{spec.description} Returns: {spec.returns}" if spec.returns else spec.description


def agent_tools(
    instance: Instance, aliases: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The OpenAI ``tools`` list for an instance: its environments' tools (each taking only
    the tasks that have its environment), then wait/finish; tasks named as ``aliases`` say."""
    names = aliases or {}
    task_ids = [names.get(task.id, task.id) for task in instance.tasks]
    owners = env_tasks(instance, aliases)
    tools: list[dict[str, Any]] = []
    for qualified, spec in _env_tools(instance):
        parameters = compact_schema(dict(spec.parameters))
        # task_id first: models fill arguments in order, and it decides everything else
        parameters["properties"] = {
            "task_id": _task_id_schema(owners[qualified.partition(".")[0]]),
            **parameters.get("properties", {}),
        }
        parameters["required"] = ["task_id", *spec.parameters.get("required", [])]
        tools.append(_function(openai_name(qualified), _description(spec), parameters))
    tools.append(
        _function(
            WAIT,
            "Do nothing until the next result arrives. Only when calls are running and no task"
            " can make progress without their results.",
            {"type": "object", "properties": {}, "required": [], "additionalProperties": False},
        )
    )
    tools.append(
        _function(
            FINISH,
            "Declare a task complete and give its final answer. Once per task, after the"
            " results it needs have arrived.",
            {
                "type": "object",
                "properties": {
                    "task_id": _task_id_schema(task_ids),
                    "answer": {
                        "type": "string",
                        "description": "The answer to the task's question (the values asked"
                        " for), or a short confirmation of what was done.",
                    },
                },
                "required": ["task_id", "answer"],
                "additionalProperties": False,
            },
        )
    )
    return tools


# --- lines about calls (what the agent is told; never shaped like a call) ------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def call_label(call_id: str, task_id: str, tool: str, arguments: Mapping[str, Any]) -> str:
    """``c3 (task T1) maths__add {"a": 1, "b": 2}``: the call id leads, the arguments are the
    only JSON (an object without a tool name, so copying the line makes no call)."""
    return f"{call_id} (task {task_id}) {openai_name(tool)} {_json(dict(arguments))}"


def started_line(label: str, eta: float | None) -> str:
    when = f"its result comes at t={eta:.3f} s" if eta is not None else "its result comes later"
    return f"- {label} started; {when}. Do not call it again."


def running_line(label: str, eta: float | None) -> str:
    return f"- {label} is running (result at t={eta:.3f} s)." if eta is not None else f"- {label}"


def result_line(label: str, result: Any, error: str | None, limit: int | None) -> str:
    """The result (any JSON: an object, a bare list, a string), or the error; over ``limit``
    characters of JSON, its start and a statement that it was cut (never a silent cut)."""
    if error is not None:
        return f"- {label} failed: {error}"
    text = _json(result)
    if limit is not None and len(text) > limit:
        return (
            f"- {label} returned ({len(text)} characters of JSON; only the first {limit} are"
            f" shown, this agent's max_result_chars): {text[:limit]}"
        )
    return f"- {label} returned: {text}"


def usage_hint(qualified: str, error: str | None) -> str:
    """The tool's signature after a refusal for the call's arguments, "" otherwise: a small
    model given the schemas thousands of tokens earlier repeated such a call until the episode
    stopped (the 1.5B agent's runs), where the signature next to the refusal shows the fix."""
    if error is None or not error.startswith(INVALID_ARGUMENTS):
        return ""
    try:
        _, spec = resolve_tool(qualified)
    except ToolError:
        return ""
    return f" The tool takes: {signature(qualified, spec)}"


#: what the agent writes about an earlier call starts so (the groups: the task, the function)
ECHO_LINE = re.compile(r"^[ \t>*-]*c\d+ \(task ([^)\n]*)\) (\S+) ", re.MULTILINE)


def call_key(task: str, function: str, arguments: Mapping[str, Any]) -> str:
    """One call (as the model names task and function) for telling a copy from a new call."""
    return json.dumps([task, function, dict(arguments)], sort_keys=True, default=str)


# --- the system prompt --------------------------------------------------------------------------


def signature(qualified: str, spec: ToolSpec) -> str:
    """A one-line description: ``maths__add(a: number, b: number) - Add two numbers.``, each
    type as ``pipeline.tooldocs`` words it for every reader (``list of string``, ``"a" or
    "b"``)."""
    required = set(spec.parameters.get("required", []))
    parts = []
    for name, schema in compact_schema(spec.parameters).get("properties", {}).items():
        part = f"{name}: {json_type(schema)}"
        if name not in required:
            part += f" = {json.dumps(schema.get('default'))}"
        parts.append(part)
    return f"{openai_name(qualified)}({', '.join(parts)}) - {_description(spec)}"


RULES = """\
You work on {count} separate tasks at the same time. Each task has its own id and its own \
environments with their own state; a call acts only on the task named by its task_id.

How calls work:
- A call does not give its result at once. The next message says that it started and when \
its result comes; a later message gives the result. Results may come in any order.
- You may make several calls in one reply, for one task or for several. They all start \
together, so only combine calls that do not need each other's results.
- Never guess a value. If an argument comes from an earlier call's result, wait for that \
result first.
- Never repeat a call that started: its result is on its way.
- While calls are running, work on the other tasks. Call wait only when no task can make \
progress until a result arrives.
- When a task is done, call finish_task with its task_id and its answer. Finish every task.
- Every reply takes time; waiting takes none. Finish all tasks as early as you can."""

TEXT_FORMAT = """\
Reply with one JSON object and nothing else, listing your calls:
{"calls": [{"tool": "<tool name>", "task_id": "<task id>", "arguments": {...}}, ...]}
wait takes no task_id and no arguments; finish_task takes {"answer": "..."} as arguments."""

NATIVE_FORMAT = (
    "Make your calls with the function-calling interface (one or more per reply), each as"
    ' <tool_call>{"name": ..., "arguments": {...}}</tool_call> as in the example below.'
)

#: the last line of every message: a small model follows the last thing it reads. Asked only
#: "Begin.", or told that "wait would do nothing", Qwen2.5-Coder-1.5B answered with wait.
OPENING = (
    "Nothing has been called yet. Start every task now: write the first call of each task,"
    " all in this reply."
)
NEXT_RUNNING = (
    "Now make every call the results so far allow (for any task), finish each task that is"
    " done, or wait if nothing can be done until a running call returns."
)
NEXT_IDLE = (
    "Nothing is running. Make the next call of each unfinished task, or finish the tasks that"
    " are done."
)


#: one call as the reply formats write it: function name, task (None for wait), arguments
WrittenCall = tuple[str, str | None, Mapping[str, Any]]


def reply_text(calls: Sequence[WrittenCall], text: bool) -> str:
    """Calls as the model should write them: our JSON reply format, or (with tools offered)
    ``<tool_call>`` blocks — what Qwen's template asks for, and what a server without a tool
    parser hands back as text (with a tool parser, the model's calls are native anyway).
    Without an explicit form the 1.5B model wrote its first calls in the shape of the report
    lines."""
    if text:
        written = []
        for tool, task_id, arguments in calls:
            call: dict[str, Any] = {"tool": tool}
            if task_id is not None:
                call["task_id"] = task_id
            call["arguments"] = dict(arguments)
            written.append(call)
        return _json({"calls": written})
    blocks = []
    for tool, task_id, arguments in calls:
        fields = dict(arguments) if task_id is None else {"task_id": task_id, **arguments}
        blocks.append(f"<tool_call>{_json({'name': tool, 'arguments': fields})}</tool_call>")
    return "\n".join(blocks)


def written_call(action: Action, task_name: str | None = None) -> WrittenCall:
    """An action as a reply writes it (``task_name``: the task as the model knows it)."""
    if isinstance(action, WaitAction):
        return WAIT, None, {}
    if isinstance(action, FinishAction):
        return FINISH, task_name or action.task_id, {"answer": action.answer}
    return openai_name(action.tool), task_name or action.task_id, action.arguments


def _example_reply(tool: str, task_id: str | None, arguments: dict[str, Any], text: bool) -> str:
    return reply_text([(tool, task_id, arguments)], text)


def call_hint(text: bool) -> str:
    """How to write a call, said after a reply that made none."""
    example = _example_reply("environment__tool", "T1", {"argument": "value"}, text)
    return f"Write each call like this: {example}"


def worked_example(text: bool) -> str:
    """One call, one wait, the result, the finish — for a made-up task and tool, written with
    the same line functions the agent uses, so the model sees the real formats."""
    arguments = {"name": "blue lamp"}
    label = call_label("c1", "X1", "shop.find_item", arguments)
    lines = [
        "A worked example (a made-up task and tool, only to show the format):",
        'Task X1 asks: "What does the blue lamp cost?"',
        "Your reply: " + _example_reply("shop__find_item", "X1", arguments, text),
        "The next message says:",
        started_line(label, 3.0),
        "No task can progress before that result, so your reply: "
        + _example_reply(WAIT, None, {}, text),
        "The next message says:",
        result_line(label, {"item_id": 7, "price": 12.5}, None, None),
        "Your reply: " + _example_reply(FINISH, "X1", {"answer": "12.5"}, text),
        'Lines that start with a call id ("- c1 (task X1) ...") report calls you already made.'
        " Never copy them into a reply.",
    ]
    return "\n".join(lines)


def system_prompt(
    instance: Instance, list_signatures: bool = False, aliases: Mapping[str, str] | None = None
) -> str:
    """The rules, the reply format, a worked example, the tools (one-line descriptions, or
    full signatures for servers that are not given the tool schemas), then the tasks (named
    as ``aliases`` say). The same for every turn of an episode, so a server's prompt cache
    keeps it."""
    text = list_signatures
    names = aliases or {}
    lines = [
        RULES.format(count=len(instance.tasks)),
        "",
        TEXT_FORMAT if text else NATIVE_FORMAT,
        "",
        worked_example(text),
        "",
        "Tools (every tool except wait takes task_id):",
    ]
    owners = env_tasks(instance, aliases)
    current = ""
    for qualified, spec in _env_tools(instance):
        env = qualified.partition(".")[0]
        if env != current:
            current = env
            lines.append(f"Environment {env} (tasks {', '.join(owners[env])}):")
        if text:
            lines.append(f"- {signature(qualified, spec)}")
        else:
            lines.append(f"- {openai_name(qualified)} - {spec.description}")
    lines.append(f"- {WAIT}() - wait for the next result.")
    lines.append(f"- {FINISH}(task_id: string, answer: string) - finish a task.")
    lines += ["", "Tasks:"]
    for task in instance.tasks:
        envs = ", ".join(task.envs)
        lines.append(
            f"- task_id {names.get(task.id, task.id)} (environments: {envs}): {task.question}"
        )
    return "\n".join(lines)


# --- reading calls back -------------------------------------------------------------------------


def _arguments(
    name: str, arguments: str | Mapping[str, Any] | None
) -> dict[str, Any] | ProtocolError:
    if arguments is None:
        return {}
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}
        try:
            arguments = json.loads(arguments)
        except ValueError as error:
            return ProtocolError(f"the arguments of {name} are not valid JSON ({error})", name)
    if not isinstance(arguments, Mapping):
        return ProtocolError(f"the arguments of {name} must be a JSON object", name)
    return dict(arguments)


def _task_id(name: str, arguments: dict[str, Any]) -> str | ProtocolError:
    task_id = arguments.pop("task_id", None)
    if not isinstance(task_id, str) or not task_id:
        return ProtocolError(f"{name} needs a task_id (a string naming one of the tasks)", name)
    return task_id


def parse_tool_call(
    name: str,
    arguments: str | Mapping[str, Any] | None,
    task_ids: Collection[str] | None = None,
) -> Action | ProtocolError:
    """One function call (name, JSON arguments text or object) as a harness action.

    ``task_ids``, when given, is checked for ``finish_task`` only: an environment call with a
    wrong task id goes through, so the harness rejects it and the score records the confusion.
    """
    name = name.strip()
    if not name:
        return ProtocolError("a call has no function name", name)
    parsed = _arguments(name, arguments)
    if isinstance(parsed, ProtocolError):
        return parsed
    if name == WAIT:
        return WaitAction()
    if name == FINISH:
        task_id = _task_id(name, parsed)
        if isinstance(task_id, ProtocolError):
            return task_id
        if task_ids is not None and task_id not in task_ids:
            return ProtocolError(f"there is no task {task_id!r} to finish", name)
        answer = parsed.get("answer")
        if answer is None:
            return ProtocolError("finish_task needs an answer", name)
        text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
        return FinishAction(task_id, text)
    qualified = qualified_name(name)
    if qualified is None:
        return ProtocolError(
            f"unknown function {name!r}: use one of the listed functions, such as"
            f" environment__tool, {WAIT} or {FINISH}",
            name,
        )
    task_id = _task_id(name, parsed)
    if isinstance(task_id, ProtocolError):
        return task_id
    return CallAction(task_id, qualified, parsed)


# --- calls written in the text ------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_OPENER = re.compile(r"[\[{]")
#: Hermes/Qwen-style calls: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
#: fields of an acknowledgement or result, never of a call
_REPORT_KEYS = frozenset({"status", "call_id", "result", "result_expected_at", "eta"})


def _echo_spans(text: str) -> list[tuple[int, int]]:
    """Where the reply copies a line about an earlier call (start and end of each line)."""
    spans = []
    for match in ECHO_LINE.finditer(text):
        end = text.find("\n", match.start())
        spans.append((match.start(), len(text) if end == -1 else end))
    return spans


def _json_values(text: str) -> Iterator[tuple[int, Any]]:
    """JSON values in a reply with where they start: the whole text, fenced blocks, then
    each top-level value that decodes at a ``{`` or ``[``, left to right."""
    decoder = json.JSONDecoder()
    candidates = [(len(text) - len(text.lstrip()), text)]
    candidates += [(match.start(1), match.group(1)) for match in _FENCE.finditer(text)]
    for start, candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        yield start, value
    position = 0
    while True:
        found = _OPENER.search(text, position)
        if found is None:
            return
        try:
            value, end = decoder.raw_decode(text, found.start())
        except ValueError:
            position = found.start() + 1
            continue
        yield found.start(), value
        position = end


def _is_call(item: Any) -> bool:
    """Shaped like a call: our ``tool`` field, or a ``name``/``function`` with arguments
    (OpenAI's and Hermes' shapes). A bare ``{"name": ...}`` is an argument object, not a call."""
    if not isinstance(item, dict):
        return False
    if "tool" in item or isinstance(item.get("function"), dict):
        return True
    named = "name" in item or "function" in item
    return named and ("arguments" in item or "parameters" in item)


def _call_objects(value: Any) -> list[Any] | None:
    if isinstance(value, dict) and isinstance(value.get("calls"), list):
        return list(value["calls"])
    if _is_call(value):
        return [value]
    if isinstance(value, list) and value and any(_is_call(item) for item in value):
        return value
    return None


def _content_call(item: Any, task_ids: Collection[str] | None) -> Action | ProtocolError:
    if not isinstance(item, dict):
        return ProtocolError("each entry of calls must be an object with tool and arguments")
    if _REPORT_KEYS & item.keys():
        return ProtocolError(
            "that object reports an earlier call (it has status/call_id/result fields); it is"
            " not a new call. Write only new calls.",
            kind=ECHO,
        )
    function = item.get("function")
    if isinstance(function, dict):  # the OpenAI tool-call shape, written out as text
        item = {**item, **function}
    name = item.get("tool", item.get("name", item.get("function")))
    if not isinstance(name, str):
        return ProtocolError("a call has no tool name (the `tool` field)")
    arguments = _arguments(name, item.get("arguments", item.get("parameters")))
    if isinstance(arguments, ProtocolError):
        return arguments
    for key in ("task_id", "answer"):  # allowed beside the arguments as well as inside
        if key in item and key not in arguments:
            arguments[key] = item[key]
    return parse_tool_call(name, arguments, task_ids)


def _tagged_calls(
    content: str, task_ids: Collection[str] | None
) -> list[Action | ProtocolError] | None:
    blocks = [match.group(1) for match in _TAGGED.finditer(content)]
    if not blocks:
        return None
    out: list[Action | ProtocolError] = []
    for block in blocks:
        try:
            value = json.loads(block)
        except ValueError as error:
            out.append(ProtocolError(f"a <tool_call> block is not valid JSON ({error})"))
            continue
        items = _call_objects(value)
        if items is None:
            out.append(ProtocolError("a <tool_call> block holds no call (name and arguments)"))
            continue
        out += [_content_call(item, task_ids) for item in items]
    return out


ECHO_MESSAGE = (
    "your reply copied a line that reports an earlier call (it starts with a call id such as"
    " c1); those lines are written for you, they are not calls. Write only new calls."
)


def _line_calls(
    content: str, task_ids: Collection[str] | None, issued: Collection[str]
) -> list[Action | ProtocolError]:
    """Report-shaped lines (``- c4 (task T1) maths__add {"a": 1}``) as calls: one that
    repeats a call already made (``issued``, by ``call_key``) or an earlier line of the same
    reply is a copy and makes nothing; a line naming a call never made is how the model chose
    to ask for it (the 1.5B model, offered tools through Qwen's template, wrote its first calls
    so)."""
    decoder = json.JSONDecoder()
    out: list[Action | ProtocolError] = []
    copies = 0
    written: set[str] = set()  # a line per call: the model wrote "started" and "running" for one
    for match in ECHO_LINE.finditer(content):
        task, function = match.group(1), match.group(2)
        try:
            arguments, end = decoder.raw_decode(content, match.end())
        except ValueError:
            arguments, end = None, match.end()
        key = call_key(task, function, arguments) if isinstance(arguments, dict) else ""
        if not key or key in issued or key in written:
            copies += 1
            continue
        written.add(key)
        if content[end:].lstrip().startswith(("returned", "failed")):
            # the model wrote the call's result itself: it is playing the whole episode out
            out.append(ProtocolError(INVENTED_MESSAGE, function, ECHO))
            continue
        out.append(parse_tool_call(function, {**arguments, "task_id": task}, task_ids))
    if copies and not out:
        out.append(ProtocolError(ECHO_MESSAGE, kind=ECHO))
    return out


INVENTED_MESSAGE = (
    "your reply wrote a result for a call that was never made; results come only in the"
    " messages you receive. Write only the calls, and wait for their results."
)


def parse_content_calls(
    content: str,
    task_ids: Collection[str] | None = None,
    issued: Collection[str] | None = None,
) -> list[Action | ProtocolError] | None:
    """Calls written in a reply's text: ``<tool_call>`` blocks, ``{"calls": [...]}``, a list
    of calls or one call, fenced or not; None when the text holds nothing shaped like a call.
    JSON inside a report line (``- c1 (task T1) ...``) is never read as a call object. Without
    ``issued`` every report line is a copy (one ECHO error); with it (``call_key`` of the calls
    made), only those repeating a call made are, and the others are read as new calls."""
    tagged = _tagged_calls(content, task_ids)
    if tagged is not None:
        return tagged
    echoes = _echo_spans(content)
    for start, value in _json_values(content):
        items = _call_objects(value)
        if items is None or any(left <= start < right for left, right in echoes):
            continue
        return [_content_call(item, task_ids) for item in items]
    if not echoes:
        return None
    if issued is None:
        return [ProtocolError(ECHO_MESSAGE, kind=ECHO)]
    return _line_calls(content, task_ids, issued)


def text_form(content: str) -> str:
    """Which form ``parse_content_calls`` read calls in: ``tagged`` (``<tool_call>``),
    ``json``, ``lines`` (report-shaped lines) or ``none``."""
    if _TAGGED.search(content):
        return "tagged"
    echoes = _echo_spans(content)
    for start, value in _json_values(content):
        if _call_objects(value) is not None and not any(a <= start < b for a, b in echoes):
            return "json"
    return "lines" if echoes else "none"


def parse_native_calls(
    tool_calls: Sequence[Mapping[str, Any]], task_ids: Collection[str] | None = None
) -> list[Action | ProtocolError]:
    """OpenAI ``tool_calls`` entries as actions, in order."""
    out: list[Action | ProtocolError] = []
    for call in tool_calls:
        function = call.get("function")
        if not isinstance(function, Mapping):
            out.append(ProtocolError("a tool call has no function"))
            continue
        out.append(
            parse_tool_call(str(function.get("name") or ""), function.get("arguments"), task_ids)
        )
    return out
