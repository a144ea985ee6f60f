"""Reading upstream BFCL multi-turn files and turning their call strings into our calls."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.calls import CallParseError, parse_call
from pipeline.envs import BFCL_CLASSES, ENVIRONMENTS, Environment

BASE_FILE = "BFCL_v4_multi_turn_base.json"
REFERENCE_STATES = "reference_states_base.jsonl"


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not JSON ({error})") from None


@dataclass(frozen=True)
class BfclTask:
    """One upstream multi-turn task with its ground truth (one list of call strings per turn)."""

    id: str
    turns: list[str]
    initial_config: dict[str, dict[str, Any]]
    involved_classes: list[str]
    ground_truth: list[list[str]]

    @property
    def env_names(self) -> list[str]:
        return [env_name_for_class(name) for name in self.involved_classes]


def env_name_for_class(bfcl_class: str) -> str:
    cls = BFCL_CLASSES.get(bfcl_class)
    if cls is None:
        raise ValueError(f"no environment reproduces BFCL class {bfcl_class!r}")
    return cls.name


def _turn_text(turn: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(
        str(message.get("content", "")) for message in turn if message.get("role") == "user"
    )


def answer_file_for(task_file: Path) -> Path:
    return task_file.parent / "possible_answer" / task_file.name


def load_tasks(task_file: Path) -> list[BfclTask]:
    """Join a BFCL task file with its ground truth in ``possible_answer/`` beside it."""
    answers = {row["id"]: row["ground_truth"] for row in read_jsonl(answer_file_for(task_file))}
    tasks = []
    for row in read_jsonl(task_file):
        if row["id"] not in answers:
            raise ValueError(f"{task_file}: task {row['id']} has no ground truth")
        tasks.append(
            BfclTask(
                id=row["id"],
                turns=[_turn_text(turn) for turn in row["question"]],
                initial_config=row.get("initial_config", {}),
                involved_classes=list(row["involved_classes"]),
                ground_truth=answers[row["id"]],
            )
        )
    return tasks


def fresh_envs(task: BfclTask) -> dict[str, Environment[Any]]:
    """Our environments for an upstream task, built from its (upstream-named) config."""
    envs: dict[str, Environment[Any]] = {}
    for bfcl_class in task.involved_classes:
        cls = BFCL_CLASSES[bfcl_class]
        envs[cls.name] = cls.from_bfcl_config(task.initial_config.get(bfcl_class, {}))
    return envs


def resolve_function(function: str, env_names: Sequence[str]) -> str:
    """Qualify a bare upstream function name with the one involved environment that has it."""
    owners = [name for name in env_names if function in ENVIRONMENTS[name].tool_specs()]
    if len(owners) == 1:
        return f"{owners[0]}.{function}"
    if not owners:
        raise CallParseError(f"no involved environment ({', '.join(env_names)}) has {function!r}")
    raise CallParseError(f"{function!r} is ambiguous between {', '.join(owners)}")


def to_arguments(source: str, env_names: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """Parse an upstream call string into (qualified tool, named arguments)."""
    parsed = parse_call(source)
    qualified = resolve_function(parsed.name, env_names)
    env_name, function = qualified.split(".", 1)
    spec = ENVIRONMENTS[env_name].tool_specs()[function]
    return qualified, parsed.bind(spec.param_names)
