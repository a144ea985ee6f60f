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


def _answers(task_file: Path) -> dict[str, list[list[str]]]:
    path = answer_file_for(task_file)
    if not path.is_file():
        raise ValueError(f"{task_file}: no ground truth file {path} beside it")
    answers: dict[str, list[list[str]]] = {}
    for number, row in enumerate(read_jsonl(path), 1):
        where = f"{path}, row {number}"
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise ValueError(f"{where}: an answer row is an object with a string 'id'")
        truth = row.get("ground_truth")
        if not isinstance(truth, list) or not all(
            isinstance(turn, list) and all(isinstance(call, str) for call in turn) for turn in truth
        ):
            raise ValueError(f"{where}: 'ground_truth' must be a list of lists of call strings")
        if row["id"] in answers:
            raise ValueError(f"{where}: the id {row['id']!r} is answered twice")
        answers[row["id"]] = truth
    if not answers:
        raise ValueError(f"{path}: no ground truth in it")
    return answers


def _task(row: Any, where: str, answers: Mapping[str, list[list[str]]]) -> BfclTask:
    """One upstream row, checked field by field: a malformed row is a clear error naming it."""
    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
        raise ValueError(f"{where}: a task row is an object with a string 'id'")
    question = row.get("question")
    if not isinstance(question, list) or not all(
        isinstance(turn, list) and all(isinstance(message, dict) for message in turn)
        for turn in question
    ):
        raise ValueError(f"{where}: 'question' must be a list of turns, each a list of messages")
    config = row.get("initial_config", {})
    if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
        raise ValueError(f"{where}: 'initial_config' must map class names to objects")
    classes = row.get("involved_classes")
    if not isinstance(classes, list) or not all(isinstance(name, str) for name in classes):
        raise ValueError(f"{where}: 'involved_classes' must be a list of class names")
    if row["id"] not in answers:
        raise ValueError(f"{where}: task {row['id']} has no ground truth")
    truth = answers[row["id"]]
    if len(truth) < len(question):
        raise ValueError(
            f"{where}: task {row['id']} has {len(question)} turns but ground truth for {len(truth)}"
        )
    return BfclTask(
        id=row["id"],
        turns=[_turn_text(turn) for turn in question],
        initial_config=config,
        involved_classes=list(classes),
        ground_truth=truth,
    )


def load_tasks(task_file: Path) -> list[BfclTask]:
    """Join a BFCL task file with its ground truth in ``possible_answer/`` beside it. A
    malformed row, a missing or empty answer file, a task with fewer answered turns than
    turns, or an id seen twice is a ``ValueError`` naming the file and row: nothing is
    dropped silently."""
    if not task_file.is_file():
        raise ValueError(f"{task_file} is not a file")
    answers = _answers(task_file)
    tasks: list[BfclTask] = []
    seen: set[str] = set()
    for number, row in enumerate(read_jsonl(task_file), 1):
        task = _task(row, f"{task_file}, row {number}", answers)
        if task.id in seen:
            raise ValueError(f"{task_file}, row {number}: the id {task.id!r} appears twice")
        seen.add(task.id)
        tasks.append(task)
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
