"""Conformance of our environments with upstream BFCL's simulators.

Replays every task's ground truth of a category (``base`` or ``long_context``) and compares
each class's final state with ``reference_states_<category>.jsonl`` after
:func:`normalise_reference`, the one place where naming differences between upstream and us are
mapped, and each call's result with upstream's recorded result. Run ``python -m
pipeline.bfcl.conformance <bfcl v4 folder> [--category C] [--env NAME] [--show N]`` to see
mismatches with readable diffs.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.bfcl.data import (
    BfclTask,
    fresh_envs,
    load_tasks,
    read_jsonl,
    to_arguments,
)
from pipeline.bfcl.importer import with_long_context
from pipeline.calls import CallParseError
from pipeline.envs import BFCL_CLASSES, ToolError
from pipeline.envs.diff import state_diff


def normalise_reference(bfcl_class: str, state: Mapping[str, Any]) -> dict[str, Any]:
    """Map an upstream state onto the shape ``Environment.bfcl_state`` produces.

    Upstream serialises some values in Python-specific ways; these are the only differences
    we normalise (each is listed in docs/conformance.md):
    - tuples are lists in JSON already; nothing to do;
    - everything else must match exactly.
    """
    return dict(state)


#: the categories the check covers: task file and reference-state file of each
CATEGORIES: dict[str, tuple[str, str]] = {
    "base": ("BFCL_v4_multi_turn_base.json", "reference_states_base.jsonl"),
    "long_context": (
        "BFCL_v4_multi_turn_long_context.json",
        "reference_states_long_context.jsonl",
    ),
}


def parse_reference_result(text: str) -> Any:
    """Upstream records a call's result as JSON, or as Python's ``repr`` where JSON failed
    (``None``, lists of strings, ``mpf`` numbers); the text itself when neither parses."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        # upstream's long-context watch list ends with Python's Ellipsis; ours with "..."
        return ast.literal_eval(text.replace(", Ellipsis]", ", '...']"))
    except (ValueError, SyntaxError):
        return text


@dataclass
class ClassResult:
    matched: int = 0
    total: int = 0
    #: call results compared / equal to upstream's / raised ToolError on our side
    calls: int = 0
    calls_matched: int = 0
    calls_raised: int = 0


@dataclass
class ConformanceReport:
    tasks: int = 0
    tasks_matched: int = 0
    per_class: dict[str, ClassResult] = field(default_factory=dict)
    call_errors: Counter[str] = field(default_factory=Counter)
    mismatches: list[tuple[str, str, list[str]]] = field(default_factory=list)
    #: (task, class, call, upstream's result, ours) for each call result that differs
    result_mismatches: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.tasks_matched / self.tasks if self.tasks else 0.0

    def summary(self) -> str:
        lines = [
            f"tasks matching upstream final state: {self.tasks_matched}/{self.tasks}"
            f" ({self.rate:.1%})"
        ]
        for name, result in sorted(self.per_class.items()):
            lines.append(
                f"  {name:20s} final states {result.matched}/{result.total}; call results "
                f"{result.calls_matched}/{result.calls} equal, {result.calls_raised} raised"
            )
        if self.call_errors:
            lines.append(f"  calls that raised ToolError: {sum(self.call_errors.values())}")
        return "\n".join(lines)


def _class_of(function: str, task: BfclTask) -> str:
    for bfcl_class in task.involved_classes:
        if function in BFCL_CLASSES[bfcl_class].tool_specs():
            return bfcl_class
    return "?"


def check_conformance(
    folder: Path, only_env: str | None = None, category: str = "base"
) -> ConformanceReport:
    task_file, reference_file = CATEGORIES[category]
    tasks = load_tasks(folder / task_file)
    if category == "long_context":
        tasks = [with_long_context(task) for task in tasks]
    references = {row["id"]: row for row in read_jsonl(folder / reference_file)}
    report = ConformanceReport()
    for task in tasks:
        if task.id not in references:
            continue
        if only_env and only_env not in task.env_names:
            continue
        reference = references[task.id]
        recorded = {turn["turn"]: turn for turn in reference.get("turns", [])}
        envs = fresh_envs(task)
        for number, turn in enumerate(task.ground_truth):
            results = recorded.get(number, {}).get("results", [])
            for position, source in enumerate(turn):
                ours: Any = None
                bfcl_class = "?"
                try:
                    tool, arguments = to_arguments(source, task.env_names)
                    env_name, function = tool.split(".", 1)
                    bfcl_class = _class_of(function, task)
                    ours = envs[env_name].invoke(function, arguments)
                    raised = False
                except (ToolError, CallParseError) as error:
                    report.call_errors[f"{task.id}: {source} -> {error}"] += 1
                    raised = True
                if position >= len(results):
                    continue
                counts = report.per_class.setdefault(bfcl_class, ClassResult())
                counts.calls += 1
                counts.calls_raised += raised
                theirs = parse_reference_result(results[position])
                if not raised and json.loads(json.dumps(ours)) == theirs:
                    counts.calls_matched += 1
                else:
                    report.result_mismatches.append(
                        (task.id, bfcl_class, source, str(theirs)[:300], str(ours)[:300])
                    )
        report.tasks += 1
        all_match = True
        for bfcl_class, expected in reference["final_state"].items():
            env_name = BFCL_CLASSES[bfcl_class].name
            ours_state = envs[env_name].bfcl_state()
            theirs_state = normalise_reference(bfcl_class, expected)
            result = report.per_class.setdefault(bfcl_class, ClassResult())
            result.total += 1
            if ours_state == theirs_state:
                result.matched += 1
            else:
                all_match = False
                report.mismatches.append(
                    (task.id, bfcl_class, state_diff(theirs_state, ours_state, limit=20))
                )
        report.tasks_matched += all_match
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("folder", type=Path, help="BFCL v4 folder (../shared/peers/bfcl/v4)")
    parser.add_argument("--category", choices=sorted(CATEGORIES), default="base")
    parser.add_argument("--env", help="only tasks involving this environment")
    parser.add_argument("--show", type=int, default=5, help="mismatches to print")
    args = parser.parse_args(argv)
    report = check_conformance(args.folder, args.env, args.category)
    print(report.summary())
    for line in list(report.call_errors)[: args.show]:
        print("ERROR", line)
    for task_id, bfcl_class, source, theirs, ours in report.result_mismatches[: args.show]:
        print(
            f"RESULT {task_id} {bfcl_class} {source}\n    upstream: {theirs}\n    ours:     {ours}"
        )
    shown = [m for m in report.mismatches if not args.env or BFCL_CLASSES[m[1]].name == args.env]
    for task_id, bfcl_class, diff in shown[: args.show]:
        print(f"--- {task_id} {bfcl_class} (reference -> ours)")
        for line in diff:
            print("   ", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
