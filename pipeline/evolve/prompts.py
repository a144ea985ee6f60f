"""Rendering the operation prompts in ``prompts/`` and hashing them for the LLM cache key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pipeline.calls import format_call
from pipeline.envs import ENVIRONMENTS, ToolSpec
from pipeline.models import Rejection, Task

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
MAX_STATE_CHARS = 6000


@cache
def _jinja() -> Environment:
    return Environment(
        loader=FileSystemLoader(PROMPTS_DIR),
        undefined=StrictUndefined,
        autoescape=False,  # plain-text prompts, never HTML  # noqa: S701
        keep_trailing_newline=True,
    )


@cache
def template_hash(operation: str) -> str:
    """Hash of the operation's template and the shared blocks it imports."""
    digest = hashlib.sha256()
    for name in (f"{operation}.j2", "_context.j2"):
        digest.update((PROMPTS_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def _signature(spec: ToolSpec) -> str:
    parts = []
    for name in spec.param_names:
        schema = spec.parameters["properties"][name]
        kind = schema.get("type") or "|".join(
            str(branch.get("type", "?")) for branch in schema.get("anyOf", [])
        )
        optional = "" if name in spec.parameters.get("required", []) else "=optional"
        parts.append(f"{name}: {kind}{optional}")
    return ", ".join(parts)


def _tools(task: Task) -> list[dict[str, str]]:
    return [
        {"name": name, "signature": _signature(spec), "description": spec.description}
        for env_name in task.envs
        for name, spec in ENVIRONMENTS[env_name].tool_specs().items()
    ]


def _task_view(task: Task) -> dict[str, Any]:
    state = json.dumps(task.initial_config, ensure_ascii=False, sort_keys=True)
    if len(state) > MAX_STATE_CHARS:
        state = state[:MAX_STATE_CHARS] + " ... (truncated)"
    return {
        "question": task.question,
        "state_json": state,
        "calls": [format_call(call.function, call.arguments) for call in task.calls],
    }


@dataclass(frozen=True)
class Prompt:
    operation: str
    messages: list[dict[str, str]]
    template_hash: str


def render(operation: str, task: Task, rejection: Rejection | None = None) -> Prompt:
    context: dict[str, Any] = {"task": _task_view(task), "tools": _tools(task)}
    if rejection is not None:
        evidence = rejection.evidence.model_dump(mode="json", exclude_defaults=True)
        context["rejection"] = {
            "code": rejection.code.value,
            "message": rejection.message,
            "evidence": json.dumps(evidence, ensure_ascii=False)[:2000] if evidence else "",
        }
    text = _jinja().get_template(f"{operation}.j2").render(**context).strip()
    return Prompt(operation, [{"role": "user", "content": text}], template_hash(operation))
