"""The agent protocol in the OpenAI chat format: tool schemas, the system prompt, parsing calls.

Every environment tool an instance's tasks use is offered once, named ``env__function`` (OpenAI
function names allow no dot) and given a required ``task_id`` argument, since one tool serves
several tasks with separate states. The harness adds ``wait`` and ``finish_task``. Model output
is only ever read with ``json.loads``; anything that does not fit becomes a ``ProtocolError``
whose message is meant to be shown to the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.envs import ENVIRONMENTS, ToolError, ToolSpec, resolve_tool
from pipeline.harness.sim import Action, CallAction, FinishAction, WaitAction
from pipeline.models import Instance

WAIT = "wait"
FINISH = "finish_task"
SEPARATOR = "__"  # env__function; env names are [a-z][a-z0-9_]* and never hold a double "_"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ProtocolError:
    """A call the harness cannot act on; ``message`` is written for the model."""

    message: str
    name: str = ""


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


def _env_tools(instance: Instance) -> Iterator[tuple[str, ToolSpec]]:
    for env in instance_envs(instance):
        for function, spec in ENVIRONMENTS[env].tool_specs().items():
            yield f"{env}.{function}", spec


def _task_id_schema(task_ids: list[str]) -> dict[str, Any]:
    return {"type": "string", "enum": task_ids, "description": "The task this call is for."}


def _function(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def agent_tools(instance: Instance) -> list[dict[str, Any]]:
    """The OpenAI ``tools`` list for an instance: its environments' tools, then wait/finish."""
    task_ids = [task.id for task in instance.tasks]
    tools: list[dict[str, Any]] = []
    for qualified, spec in _env_tools(instance):
        parameters = dict(spec.parameters)
        # task_id first: models fill arguments in order, and it decides everything else
        parameters["properties"] = {
            "task_id": _task_id_schema(task_ids),
            **spec.parameters["properties"],
        }
        parameters["required"] = ["task_id", *spec.parameters.get("required", [])]
        description = spec.description
        if spec.returns:
            description = f"{description} Returns: {spec.returns}"
        tools.append(_function(openai_name(qualified), description, parameters))
    tools.append(
        _function(
            WAIT,
            "Do nothing until the next pending result is delivered. Only useful while calls"
            " are pending and no task can make progress without their results.",
            {"type": "object", "properties": {}, "required": [], "additionalProperties": False},
        )
    )
    tools.append(
        _function(
            FINISH,
            "Declare a task complete and give its final answer. Call once per task, after the"
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


# --- the system prompt --------------------------------------------------------------------------


def _type_of(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return "|".join(json.dumps(value) for value in schema["enum"])
    if "anyOf" in schema:
        return "|".join(_type_of(part) for part in schema["anyOf"])
    kind = schema.get("type")
    if kind == "array":
        return f"list[{_type_of(schema.get('items', {}))}]"
    return str(kind) if kind else "any"


def signature(qualified: str, spec: ToolSpec) -> str:
    """A one-line description: ``maths__add(a: number, b: number) - Add two numbers.``"""
    required = set(spec.parameters.get("required", []))
    parts = []
    for name, schema in spec.parameters.get("properties", {}).items():
        part = f"{name}: {_type_of(schema)}"
        if name not in required:
            part += f" = {json.dumps(schema.get('default'))}"
        parts.append(part)
    return f"{openai_name(qualified)}({', '.join(parts)}) - {spec.description}"


FALLBACK_EXAMPLE = (
    '{"calls": [{"tool": "<function name>", "task_id": "<task id>", "arguments": {...}},'
    ' {"tool": "finish_task", "task_id": "<task id>", "arguments": {"answer": "..."}}]}'
)

RULES = """\
You are working on {count} separate tasks at the same time. Each task has its own id and its \
own environments with their own state; a tool call acts only on the task it names.

How the tools behave:
- Every tool call is asynchronous. You get an immediate acknowledgement with status \
"pending" and a call id (such as c7), not the result. The result is delivered later, in a \
message that lists results by call id. Results may arrive in a different order than you made \
the calls.
- You may make several calls in one reply, for one task or for several. They all start \
together, so only combine calls that do not need each other's results.
- Never use a value before the result that contains it has arrived. If an argument depends \
on an earlier call, wait for that call's result; never guess or invent values.
- While calls are pending, use the time to advance the other tasks. Call `wait` only when no \
task can make progress until a pending result arrives; it skips ahead to the next delivery.
- Every tool call must name its task in the `task_id` argument.
- When a task is done, call `finish_task` with its task id and its answer. Finish every task.
- Each reply you give takes time on the clock; waiting does not. Finish all tasks as early \
as you can.

If you cannot make function calls, reply with only a JSON object in this form, nothing else:
{example}
Use the same function names and arguments as for function calls; `wait` takes no arguments."""


def system_prompt(instance: Instance, list_signatures: bool = False) -> str:
    """The rules, the tools (names only, or full signatures for servers that are not given
    the tool schemas), then the tasks."""
    lines = [RULES.format(count=len(instance.tasks), example=FALLBACK_EXAMPLE), "", "Tools:"]
    for qualified, spec in _env_tools(instance):
        lines.append(
            f"- {signature(qualified, spec) if list_signatures else openai_name(qualified)}"
        )
    lines.append(f"- {WAIT}() - wait for the next pending result.")
    lines.append(f"- {FINISH}(task_id: string, answer: string) - finish a task.")
    lines += ["", "Tasks:"]
    for task in instance.tasks:
        envs = ", ".join(task.envs)
        lines.append(f"- task_id {task.id} (environments: {envs}): {task.question}")
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


# --- the JSON-in-content fallback ---------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)


def _json_values(text: str) -> Iterator[Any]:
    """JSON values in a reply: the whole text, fenced blocks, then the first value that
    decodes at a ``{`` or ``[``."""
    decoder = json.JSONDecoder()
    for candidate in [text, *(match.group(1) for match in _FENCE.finditer(text))]:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        yield value
    for match in re.finditer(r"[\[{]", text):
        try:
            value = decoder.raw_decode(text, match.start())[0]
        except ValueError:
            continue
        yield value
        return


def _call_objects(value: Any) -> list[Any] | None:
    if isinstance(value, dict) and isinstance(value.get("calls"), list):
        return list(value["calls"])
    if isinstance(value, dict) and any(key in value for key in ("tool", "name", "function")):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return value
    return None


def _content_call(item: Any, task_ids: Collection[str] | None) -> Action | ProtocolError:
    if not isinstance(item, dict):
        return ProtocolError("each entry of calls must be an object with tool and arguments")
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


def parse_content_calls(
    content: str, task_ids: Collection[str] | None = None
) -> list[Action | ProtocolError] | None:
    """Calls written as JSON in a reply's text (``{"calls": [...]}``, a list of calls or one
    call, fenced or not); None when the text holds no such JSON."""
    for value in _json_values(content):
        items = _call_objects(value)
        if items is not None:
            return [_content_call(item, task_ids) for item in items]
    return None


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
