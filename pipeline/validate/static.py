"""Parse and static checks: everything that can be judged without running a tool."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from pipeline.calls import CallParseError, parse_call
from pipeline.envs import ENVIRONMENTS, ToolError, resolve_tool
from pipeline.models import Call, Evidence, RejectionCode, Task
from pipeline.semantics import Sem
from pipeline.validate.context import Reject, ValidationContext

MIN_CALLS = 2


def raw_sample_id(raw: str) -> str:
    return "raw-" + hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()[:16]


def _calls_from_strings(data: dict[str, Any]) -> None:
    """Let a candidate give calls as call strings (``"cd(folder='x')"``), as LLMs often do.

    A bare name is qualified with the one environment of the task that has that tool.
    """
    calls = data.get("calls")
    if not isinstance(calls, list):
        return
    envs = data.get("envs")
    names = envs if isinstance(envs, list) else []  # a wrong "envs" is reported by Task
    env_names = [name for name in names if isinstance(name, str) and name in ENVIRONMENTS]
    converted: list[Any] = []
    for index, call in enumerate(calls, 1):
        if not isinstance(call, str):
            converted.append(call)
            continue
        parsed = parse_call(call)
        owners = [n for n in env_names if parsed.name in ENVIRONMENTS[n].tool_specs()]
        if len(owners) != 1:
            where = "no environment of the task" if not owners else "several environments"
            raise CallParseError(f"{where} has a tool named {parsed.name!r}", call)
        spec = ENVIRONMENTS[owners[0]].tool_specs()[parsed.name]
        converted.append(
            {
                "id": f"s{index}",
                "tool": f"{owners[0]}.{parsed.name}",
                "arguments": parsed.bind(spec.param_names),
            }
        )
    data["calls"] = converted


def parse_candidate(raw: str) -> Task:
    """A JSON line -> Task; raises ``Reject`` with a ``parse.*`` code and keeps nothing silent."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, int-digit limits
        raise Reject(RejectionCode.PARSE_MALFORMED, f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise Reject(RejectionCode.PARSE_MALFORMED, "a candidate must be a JSON object")
    try:
        _calls_from_strings(data)
    except CallParseError as error:
        code = RejectionCode.PARSE_UNSAFE if error.unsafe else RejectionCode.PARSE_MALFORMED
        raise Reject(code, str(error)) from None
    try:  # what json.loads accepts but no output line can hold
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:  # a "\ud800" escape
        raise Reject(
            RejectionCode.PARSE_MALFORMED,
            "the candidate holds a lone surrogate (such as a \\ud800 escape): not valid Unicode",
        ) from None
    except (ValueError, RecursionError) as error:  # NaN, Infinity, 1e999
        raise Reject(
            RejectionCode.PARSE_MALFORMED, f"the candidate holds a non-JSON value ({error})"
        ) from None
    data.setdefault("id", "pending")
    try:
        task = Task.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '(task)'}: {item['msg']}"
            for item in error.errors(include_url=False)[:5]
        )
        raise Reject(RejectionCode.PARSE_MALFORMED, f"not a valid task: {problems}") from None
    return task if task.id != "pending" else task.with_content_id()


def check_tools(ctx: ValidationContext) -> None:
    for call in ctx.task.calls:
        try:
            resolve_tool(call.tool)
        except ToolError as error:
            raise Reject(
                RejectionCode.STATIC_UNKNOWN_TOOL,
                f"step {call.id}: {error}",
                Evidence(step_id=call.id),
            ) from None
        if call.env not in ctx.task.envs:
            raise Reject(
                RejectionCode.STATIC_UNKNOWN_TOOL,
                f"step {call.id} uses {call.tool}, but {call.env!r} is not among the task's "
                f"environments {ctx.task.envs}",
                Evidence(step_id=call.id),
            )


def check_arguments(ctx: ValidationContext) -> None:
    for call in ctx.task.calls:
        try:
            _, spec = resolve_tool(call.tool)
        except ToolError:
            continue  # reported by check_tools
        try:
            spec.args_model.model_validate(call.arguments)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}"
                for item in error.errors(include_url=False)
            )
            raise Reject(
                RejectionCode.STATIC_BAD_ARGUMENTS,
                f"step {call.id} ({call.tool}) has arguments that do not fit its schema: "
                f"{problems}",
                Evidence(step_id=call.id, output=call.arguments),
            ) from None


def check_initial_state(ctx: ValidationContext) -> None:
    unknown = set(ctx.task.initial_config) - set(ctx.task.envs)
    if unknown:
        raise Reject(
            RejectionCode.STATIC_BAD_INITIAL_STATE,
            f"initial_config has environments the task does not use: {sorted(unknown)}",
        )
    for name in ctx.task.envs:
        if name not in ENVIRONMENTS:
            raise Reject(RejectionCode.STATIC_UNKNOWN_TOOL, f"unknown environment {name!r}")
        try:
            ENVIRONMENTS[name].from_state(ctx.task.initial_config.get(name))
        except ValueError as error:
            raise Reject(RejectionCode.STATIC_BAD_INITIAL_STATE, str(error)[:2000]) from None


def check_call_count(ctx: ValidationContext) -> None:
    if len(ctx.task.calls) < MIN_CALLS:
        raise Reject(
            RejectionCode.STATIC_TOO_FEW_CALLS,
            f"a task needs at least {MIN_CALLS} calls; this one has {len(ctx.task.calls)}",
        )


def check_consecutive_duplicates(ctx: ValidationContext) -> None:
    for before, after in zip(ctx.task.calls, ctx.task.calls[1:]):
        if before.tool == after.tool and before.arguments == after.arguments:
            raise Reject(
                RejectionCode.STATIC_IDENTICAL_CONSECUTIVE,
                f"steps {before.id} and {after.id} are the same call ({after.tool}) back to back",
                Evidence(step_id=after.id, output=after.arguments),
            )


#: the data format a name's extension says its text is in
_FORMAT_OF_EXTENSION = {"json": "json", "csv": "csv", "md": "markdown", "markdown": "markdown"}
_NAME_TYPES = frozenset({Sem.FILE_NAME, Sem.DOCUMENT_ID, Sem.PATH})


def check_name_format(ctx: ValidationContext) -> None:
    """A name's extension and the format a call gives the same text agree: saving JSON text
    as the document 'converted_to_json.csv' (run llm32) is no one's request."""
    for call in ctx.task.calls:
        try:
            spec = resolve_tool(call.tool)[1]
        except ToolError:
            continue  # check_tools reports it
        formats = {
            str(call.arguments[name]).lower()
            for name, sem in spec.param_types.items()
            if sem is Sem.FORMAT and isinstance(call.arguments.get(name), str)
        }
        if len(formats) != 1:
            continue  # a conversion names two formats: which one the name means is unknown
        for name, sem in spec.param_types.items():
            value = call.arguments.get(name)
            if sem not in _NAME_TYPES or not isinstance(value, str) or "." not in value:
                continue
            implied = _FORMAT_OF_EXTENSION.get(value.rsplit(".", 1)[1].lower())
            if implied is not None and implied not in formats:
                raise Reject(
                    RejectionCode.STATIC_NAME_FORMAT_MISMATCH,
                    f"step {call.id} ({call.tool}) names {value!r}, a {implied} name, for text"
                    f" it says is {next(iter(formats))}",
                    Evidence(step_id=call.id, output={name: value}),
                )


def _records_of(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except ValueError:
        return []
    items = data if isinstance(data, list) else [data]
    return [item for item in items if isinstance(item, dict)]


def _nested_only(name: str, records: list[dict[str, Any]]) -> bool:
    """``name`` is a dotted path that no record has as a key and some record has nested."""
    if "." not in name or any(name in record for record in records):
        return False
    for record in records:
        node: Any = record
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            return True
    return False


def _field_names(call: Call, param_types: Mapping[str, Sem]) -> list[str]:
    names: list[str] = []
    for name, sem in param_types.items():
        value = call.arguments.get(name)
        if sem is Sem.SCHEMA and isinstance(value, dict):
            names += [str(key) for key in value]
        elif sem is Sem.FIELD_NAME:
            items = value if isinstance(value, list) else [value]
            names += [item for item in items if isinstance(item, str)]
    return names


def check_field_names_fit_record(ctx: ValidationContext) -> None:
    """A field name written in the flattened form ('address.city') for a record where the
    field is nested ('address' -> 'city'): the tools read names literally, so the check can
    only fail, and no one asks for that (run llm73, and an llm32 reader before it)."""
    for call in ctx.task.calls:
        try:
            spec = resolve_tool(call.tool)[1]
        except ToolError:
            continue  # check_tools reports it
        texts = [
            value
            for name, sem in spec.param_types.items()
            if sem is Sem.JSON_TEXT and isinstance(value := call.arguments.get(name), str)
        ]
        records = [record for text in texts for record in _records_of(text)]
        for field in _field_names(call, spec.param_types):
            if records and _nested_only(field, records):
                raise Reject(
                    RejectionCode.STATIC_NAME_FORMAT_MISMATCH,
                    f"step {call.id} ({call.tool}) names the field {field!r} in its flattened"
                    " form, but the record it reads has it nested; the tool reads names"
                    " literally",
                    Evidence(step_id=call.id, output={"field": field}),
                )


def _looks_like_identifier(name: str) -> bool:
    return "_" in name or bool(re.search(r"[a-z][A-Z]", name))


def api_names_in(question: str, env_names: list[str]) -> list[str]:
    """Tool names the question spells out.

    A compound identifier (``get_stock_info``, ``startEngine``) counts wherever it stands as a
    word; a plain word that is also a tool (``sort``, ``add``, ``mean``) counts only when written
    as code: followed by ``(``, in backticks, or qualified as ``env.tool``. Ordinary English
    stays allowed.
    """
    words = {
        match.group()
        for match in _WORD.finditer(question)
        if match.start() == 0 or question[match.start() - 1] != "."
    }
    as_code = {name for pair in _AS_CODE.findall(question) for name in pair if name}
    qualified = set(_QUALIFIED.findall(question))
    found: list[str] = []
    for env_name in env_names:
        for name in ENVIRONMENTS[env_name].tool_specs():
            spelled = _looks_like_identifier(name) and name in words
            if spelled or name in as_code or (env_name, name) in qualified:
                found.append(name)
    return found


_WORD = re.compile(r"\w+")
#: a name written as code: in backticks, or called with "("
_AS_CODE = re.compile(r"`(\w+)`|\b(\w+)\s*\(")
#: ``env.tool``
_QUALIFIED = re.compile(r"\b(\w+)\.(\w+)\b")


def check_question(ctx: ValidationContext) -> None:
    names = api_names_in(ctx.task.question, [n for n in ctx.task.envs if n in ENVIRONMENTS])
    if names:
        raise Reject(
            RejectionCode.STATIC_API_NAME_IN_QUESTION,
            f"the question names tools directly: {', '.join(names)}; describe the goal instead",
            Evidence(output=ctx.task.question),
        )


def check_dependency_references(ctx: ValidationContext) -> None:
    seen: set[str] = set()
    for call in ctx.task.calls:
        if call.id in seen:
            raise _bad_reference(call, f"step id {call.id!r} is used twice")
        for parent in call.depends_on:
            if parent == call.id:
                raise _bad_reference(call, f"step {call.id} depends on itself")
            if parent not in seen:
                where = "a later step" if any(c.id == parent for c in ctx.task.calls) else "no step"
                raise _bad_reference(
                    call, f"step {call.id} depends on {parent!r}, which is {where}"
                )
        for argument, source in call.bindings.items():
            name, _, index = argument.partition(".")
            if name not in call.arguments:
                raise _bad_reference(call, f"binding for {argument!r}, which is not an argument")
            if index and not (index.isdigit() and isinstance(call.arguments[name], list)):
                raise _bad_reference(call, f"binding {argument!r} indexes a non-list argument")
            producer = source.split(".", 1)[0]
            if producer not in call.depends_on:
                raise _bad_reference(
                    call, f"argument {argument!r} is bound to {source!r}, not in depends_on"
                )
        seen.add(call.id)


def _bad_reference(call: Call, message: str) -> Reject:
    return Reject(RejectionCode.STATIC_BAD_DEPENDENCY, message, Evidence(step_id=call.id))


STATIC_CHECKS: tuple[Callable[[ValidationContext], None], ...] = (
    check_tools,
    check_arguments,
    check_initial_state,
    check_call_count,
    check_consecutive_duplicates,
    check_name_format,
    check_field_names_fit_record,
    check_question,
    check_dependency_references,
)
