"""Turn BFCL multi-turn files into our ``Task`` records.

Granularity ``task`` joins all turns of an upstream task into one question and one call
sequence. Granularity ``turn`` makes one task of each turn with at least two calls; its
initial state is the state our environments reach after replaying the earlier turns, and it
touches only the environments that turn calls.

Each call's ``depends_on`` and ``bindings`` come from :mod:`pipeline.dependencies`, which finds
them by executing the sequence (see its docstring for the rules). Calls that fail to parse or
name a function no involved environment has are reported, and their task is skipped with the
reason; nothing is dropped silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pipeline.bfcl.data import BfclTask, fresh_envs, load_tasks, to_arguments
from pipeline.calls import CallParseError
from pipeline.dependencies import infer_dependencies
from pipeline.models import Call, Lineage, Task
from pipeline.replay import run_call


class Granularity(StrEnum):
    TASK = "task"
    TURN = "turn"


@dataclass
class ImportReport:
    tasks: list[Task] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    duplicates: int = 0

    def summary(self) -> str:
        categories = Counter(task.category for task in self.tasks)
        text = ", ".join(f"{name} {count}" for name, count in sorted(categories.items()))
        return (
            f"imported {len(self.tasks)} tasks ({text}); skipped {len(self.skipped)}; "
            f"duplicates merged {self.duplicates}"
        )


def _to_calls(sources: Sequence[str], env_names: Sequence[str], first_step: int) -> list[Call]:
    calls = []
    for offset, source in enumerate(sources):
        tool, arguments = to_arguments(source, env_names)
        calls.append(Call(id=f"s{first_step + offset}", tool=tool, arguments=arguments))
    return calls


def _category(calls: Sequence[Call], env_names: Sequence[str]) -> str:
    counts = Counter(call.env for call in calls)
    return max(env_names, key=lambda name: (counts[name], -env_names.index(name)))


def _make_task(
    question: str,
    env_names: Sequence[str],
    initial_config: dict[str, dict[str, Any]],
    calls: list[Call],
    source: str,
) -> Task:
    calls = infer_dependencies(env_names, initial_config, calls, question)
    task = Task(
        id="pending",
        category=_category(calls, env_names),
        envs=list(env_names),
        question=question,
        initial_config=initial_config,
        calls=calls,
        lineage=Lineage(operator="import", source=source),
    )
    return task.with_content_id()


def tasks_from_bfcl(
    upstream: BfclTask, granularity: Granularity, skipped: list[tuple[str, str]] | None = None
) -> Iterator[Task]:
    """Yield our tasks for one upstream task (``CallParseError`` if a call cannot be read).

    Turns that cannot become a task (no user text) are appended to ``skipped`` with the reason.
    """
    env_names = upstream.env_names
    if granularity is Granularity.TASK:
        sources = [source for turn in upstream.ground_truth for source in turn]
        envs = fresh_envs(upstream)
        config = {name: env.snapshot() for name, env in envs.items()}
        question = "\n".join(text for text in upstream.turns if text.strip())
        yield _make_task(
            question, env_names, config, _to_calls(sources, env_names, 1), f"bfcl:{upstream.id}"
        )
        return
    envs = fresh_envs(upstream)
    for number, (text, sources) in enumerate(zip(upstream.turns, upstream.ground_truth)):
        calls = _to_calls(sources, env_names, 1)
        source = f"bfcl:{upstream.id}#turn{number}"
        if len(calls) >= 2 and not text.strip() and skipped is not None:
            skipped.append((source, "the turn has calls but no user text"))
        elif len(calls) >= 2:
            used = [name for name in env_names if any(call.env == name for call in calls)]
            config = {name: envs[name].snapshot() for name in used}
            yield _make_task(text, used, config, calls, source)
        for call in calls:  # advance the shared state to the start of the next turn
            run_call(envs, call)


def import_bfcl(files: Sequence[Path], granularity: Granularity) -> ImportReport:
    report = ImportReport()
    seen: set[str] = set()
    for path in files:
        for upstream in load_tasks(path):
            try:
                produced = list(tasks_from_bfcl(upstream, granularity, report.skipped))
            except CallParseError as error:
                report.skipped.append((f"{path.name}:{upstream.id}", str(error)))
                continue
            for task in produced:
                if task.id in seen:
                    report.duplicates += 1
                    continue
                seen.add(task.id)
                report.tasks.append(task)
    return report


def multi_turn_files(folder: Path) -> list[Path]:
    """The multi-turn task files in a BFCL data folder that have ground truth beside them."""
    files = sorted(folder.glob("BFCL_v*_multi_turn_*.json"))
    return [path for path in files if (path.parent / "possible_answer" / path.name).exists()]
