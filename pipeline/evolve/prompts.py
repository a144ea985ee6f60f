"""Rendering the operation prompts in ``prompts/`` and hashing them for the LLM cache key.

The prompts are written for the small local models this project runs on a CPU (a 1.5B coder
model): short, concrete, and laid out so a server's prompt cache helps. Every prompt about one
parent starts with the same system message and the same shared block (the tools, the starting
state, the parent's question and its calls *with their real results*); what differs per operator
(one worked example from another environment, then the instruction) comes last. Calls are shown
as ``{"tool", "arguments"}`` objects, the same shape the answer must take. Fields that are the
simulator's bookkeeping (random seeds, generator positions, id counters) never reach a prompt:
a model cannot reason about them and copies them into tasks.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pipeline.dependencies import bindable
from pipeline.envs import ENVIRONMENTS
from pipeline.evolve.options import Option, option_view, options_for
from pipeline.jsontree import leaves
from pipeline.models import Call, Rejection, Task
from pipeline.replay import build_envs, run_call
from pipeline.seeds import SEED_DIR
from pipeline.semantics import Sem
from pipeline.tooldocs import parameters_in_words
from pipeline.toolgraph import generative_edge
from pipeline.validate.grounding import numbers_in

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
EXAMPLES_FILE = PROMPTS_DIR / "examples.json"
MAX_STATE_CHARS = 3000  # about 1k tokens: a CPU server reads ~40 tokens/s
MAX_RESULT_CHARS = 400
MAX_DESCRIPTION_CHARS = 160
MAX_FOLLOW_UPS = 6  # values listed with the tools that can take them
MAX_TAKERS = 6
#: state fields that are bookkeeping, whatever the environment
_INTERNAL_FIELDS = frozenset({"random_seed", "rng_words", "long_context", "generated_ids"})
_INTERNAL_SUFFIXES = ("_counter", "_counters", "_count")
#: the operations that share one system message (and so a prompt-cache prefix)
SYSTEM_PROMPT = "_system.j2"


@cache
def templates() -> Environment:
    """The one Jinja environment for the prompts in ``prompts/`` (the operators' and the
    judge's): plain text, and a missing variable is an error, never an empty string."""
    return Environment(
        loader=FileSystemLoader(PROMPTS_DIR),
        undefined=StrictUndefined,
        autoescape=False,  # plain-text prompts, never HTML  # noqa: S701
        keep_trailing_newline=True,
    )


@cache
def template_hash(operation: str) -> str:
    """Hash of the operation's template, the shared blocks and the worked examples."""
    digest = hashlib.sha256()
    for name in (f"{operation}.j2", "_context.j2", SYSTEM_PROMPT, EXAMPLES_FILE.name):
        digest.update((PROMPTS_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


# --- what the model is shown -------------------------------------------------------------------


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def tools_of(envs: list[str]) -> list[dict[str, str]]:
    return [
        {
            "name": name,
            "signature": parameters_in_words(spec),
            "description": _short(spec.description, MAX_DESCRIPTION_CHARS),
        }
        for env_name in envs
        for name, spec in ENVIRONMENTS[env_name].tool_specs().items()
    ]


def tool_names(envs: list[str]) -> tuple[str, ...]:
    return tuple(name for env in envs for name in ENVIRONMENTS[env].tool_specs())


def _internal(env_name: str, field: str) -> bool:
    env = ENVIRONMENTS.get(env_name)
    declared = env.internal_fields if env is not None else frozenset()
    if field == "cwd":  # filesystem lists it as BFCL-unknown, but the model needs it
        return False
    return field in _INTERNAL_FIELDS or field in declared or field.endswith(_INTERNAL_SUFFIXES)


def visible_state(task: Task) -> str:
    """The starting state without bookkeeping fields, as compact JSON (cut when long)."""
    shown = {
        env: {key: value for key, value in state.items() if not _internal(env, key)}
        for env, state in task.initial_config.items()
    }
    text = json.dumps(shown, ensure_ascii=False, separators=(",", ":"))
    if len(text) > MAX_STATE_CHARS:
        text = text[:MAX_STATE_CHARS] + " ... (cut)"
    return text


def call_json(call: Call) -> str:
    """A call as the answer must write it."""
    return json.dumps({"tool": call.function, "arguments": call.arguments}, ensure_ascii=False)


def _outcomes(task: Task) -> list[tuple[Any, str | None]]:
    """Each call's result and error when the task is replayed."""
    try:
        envs = build_envs(task.envs, task.initial_config)
    except ValueError as error:
        return [(None, f"not run: {_short(str(error), 200)}") for _ in task.calls]
    outcomes = []
    for call in task.calls:
        outcome = run_call(envs, call)
        outcomes.append((outcome.result, outcome.error))
    return outcomes


def _shown(result: Any, error: str | None) -> str:
    if error is not None:
        return "error: " + _short(error, MAX_RESULT_CHARS)
    return _short(json.dumps(result, ensure_ascii=False, separators=(",", ":")), MAX_RESULT_CHARS)


def call_results(task: Task) -> list[str]:
    """What each call returns when the task is replayed, as the model should read it."""
    return [_shown(result, error) for result, error in _outcomes(task)]


_NAMED_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"(?<![^.])\d+(?![^.])")  # a list index in a dotted path


def _takers(envs: list[str], sem: Sem) -> list[str]:
    """``tool (parameter)`` for each tool of ``envs`` that the tool graph lets take a value of
    type ``sem``."""
    found = []
    for env in envs:
        for name, spec in ENVIRONMENTS[env].tool_specs().items():
            for parameter, wanted in spec.param_types.items():
                if generative_edge(sem, wanted, f"{env}.{name}"):
                    found.append(f"{name} ({parameter})")
    return found


def _stated(value: Any, question: str) -> bool:
    if isinstance(value, str):
        return value in question
    return isinstance(value, int | float) and float(value) in numbers_in(question)


def follow_ups(task: Task) -> list[str]:
    """Values the task's calls return that another tool can take, with those tools: a concrete
    menu for "add a call that uses an earlier result", from the tool graph's edges."""
    lines: list[str] = []
    # the session's own settings (who is logged in): acting on oneself is no follow-up
    session = {
        v for state in task.initial_config.values() for v in state.values() if isinstance(v, str)
    }
    seen: set[str] = set()
    fields: set[tuple[int, str]] = set()
    for index, (call, (result, error)) in enumerate(zip(task.calls, _outcomes(task)), 1):
        if error is not None:
            continue
        spec = ENVIRONMENTS[call.env].tool_specs().get(call.function)
        if spec is None:
            continue
        for path, value in leaves(result, "", _NAMED_KEY.fullmatch):
            sem = spec.result_type(path)
            text = json.dumps(value, ensure_ascii=False)
            if sem is None or not bindable(value) or value in session or text in seen:
                continue
            if _stated(value, task.question):  # the user gave it: no result is needed for it
                continue
            field = (index, _INDEX.sub("*", path))
            if field in fields:  # one element of a returned list stands for all of them
                continue
            fields.add(field)
            takers = _takers(task.envs, sem)
            if takers:
                seen.add(text)
                shown = ", ".join(takers[:MAX_TAKERS]) + (
                    ", ..." if len(takers) > MAX_TAKERS else ""
                )
                lines.append(f"- {_short(text, 80)} (call {index}, {path or 'result'}): {shown}")
            if len(lines) >= MAX_FOLLOW_UPS:
                return lines
    return lines


def task_view(task: Task, menu: bool = False) -> dict[str, Any]:
    return {
        "question": task.question,
        "state_json": visible_state(task),
        "calls": [
            {"call": call_json(call), "result": result}
            for call, result in zip(task.calls, call_results(task))
        ],
        "follow_ups": follow_ups(task) if menu else [],
    }


# --- worked examples ---------------------------------------------------------------------------


@cache
def _seed(reference: str) -> Task:
    """``env:task_id`` of a task in ``seeds/``."""
    env, task_id = reference.split(":", 1)
    with (SEED_DIR / f"{env}.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            task = Task.model_validate_json(line)
            if task.id == task_id:
                return task
    raise LookupError(f"worked example {reference!r}: no such seed task")


@cache
def _examples() -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
    return data


def example_for(operation: str, task: Task) -> dict[str, Any] | None:
    """The operation's first worked example from an environment the task does not use: a
    model shown its own environment copies the example instead of editing the task."""
    for example in _examples().get(operation, []):
        if example["env"] in task.envs:
            continue
        shown = {**example, "answer_json": json.dumps(example["answer"], ensure_ascii=False)}
        if "seed" in example:  # the example's task with its real results
            shown["task"] = task_view(_seed(example["seed"]))
        if "calls" in example:  # a failing candidate (repair), shown without results
            shown["calls_json"] = json.dumps(example["calls"], ensure_ascii=False)
        return shown
    return None


#: what deepen and broaden both show, so their prompts about one task share everything but the
#: instruction: the label each operator's example answer gets
EDIT_LABELS = {"deepen": "A deeper version", "broaden": "A different task for the same state"}


def edit_examples(task: Task) -> list[dict[str, Any]]:
    """The deepen and broaden examples for ``task``, grouped by the seed they edit."""
    grouped: dict[str, dict[str, Any]] = {}
    for operation, label in EDIT_LABELS.items():
        example = example_for(operation, task)
        if example is None:
            continue
        group = grouped.setdefault(example["seed"], {"task": example["task"], "edits": []})
        group["edits"].append({"label": label, **example})
    return list(grouped.values())


def example_answers(operation: str) -> list[tuple[Task, dict[str, Any]]]:
    """Each worked example's parent seed and answer (the tests validate them)."""
    return [
        (_seed(item["seed"]), item["answer"])
        for item in _examples().get(operation, [])
        if "seed" in item
    ]


# --- rendering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    operation: str
    messages: list[dict[str, str]]
    template_hash: str
    #: the worked examples' requests the prompt shows: an answer must not copy from them
    shown: tuple[str, ...] = ()
    #: checked next steps the model chooses from (deepen, broaden), in the order shown
    options: tuple[Option, ...] = ()


def _example_requests(example: dict[str, Any] | None) -> list[str]:
    if example is None:
        return []
    found = [example.get("task", {}).get("question"), example.get("answer", {}).get("question")]
    return [text for text in found if isinstance(text, str)]


def literals_stated(task: Task) -> list[str]:
    """The calls' literal values that the question writes out (what a rewording must keep)."""
    from pipeline.evolve.novelty import stated_literals  # novelty imports this module

    return [text for text, _ in stated_literals(task)]


def render(
    operation: str, task: Task, rejection: Rejection | None = None, offer_steps: bool = True
) -> Prompt:
    context: dict[str, Any] = {
        "task": task_view(task, menu=operation in EDIT_LABELS),
        "tools": tools_of(task.envs),
        "example": example_for(operation, task),
        "examples": edit_examples(task) if operation in EDIT_LABELS else [],
        "literals": literals_stated(task) if operation == "paraphrase" else [],
        "parent_calls": len(task.calls),
    }
    options = tuple(options_for(operation, task)) if offer_steps else ()
    context["options"] = [option_view(option, task) for option in options]
    if rejection is not None:
        evidence = rejection.evidence.model_dump(mode="json", exclude_defaults=True)
        context["rejection"] = {
            "code": rejection.code.value,
            "message": _short(rejection.message, 600),
            "evidence": json.dumps(evidence, ensure_ascii=False)[:1000] if evidence else "",
        }
    jinja = templates()
    system = jinja.get_template(SYSTEM_PROMPT).render().strip()
    text = jinja.get_template(f"{operation}.j2").render(**context).strip()
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    examples = [context["example"], *(e for g in context["examples"] for e in g["edits"])]
    shown = tuple(dict.fromkeys(t for example in examples for t in _example_requests(example)))
    return Prompt(operation, messages, template_hash(operation), shown, options)
