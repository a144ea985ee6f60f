"""Conformance of our environments with upstream BFCL's simulators.

Replays every base task's ground truth and compares each class's final state with
``reference_states_base.jsonl`` after :func:`normalise_reference`, the one place where naming
differences between upstream and us are mapped. Run ``python -m pipeline.bfcl.conformance
<bfcl v4 folder> [--env NAME] [--show N]`` to see mismatches with readable diffs.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.bfcl.data import (
    BASE_FILE,
    REFERENCE_STATES,
    fresh_envs,
    load_tasks,
    read_jsonl,
    to_arguments,
)
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


@dataclass
class ClassResult:
    matched: int = 0
    total: int = 0


@dataclass
class ConformanceReport:
    tasks: int = 0
    tasks_matched: int = 0
    per_class: dict[str, ClassResult] = field(default_factory=dict)
    call_errors: Counter[str] = field(default_factory=Counter)
    mismatches: list[tuple[str, str, list[str]]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.tasks_matched / self.tasks if self.tasks else 0.0

    def summary(self) -> str:
        lines = [
            f"tasks matching upstream final state: {self.tasks_matched}/{self.tasks}"
            f" ({self.rate:.1%})"
        ]
        for name, result in sorted(self.per_class.items()):
            lines.append(f"  {name:20s} {result.matched}/{result.total}")
        if self.call_errors:
            lines.append(f"  calls that raised ToolError: {sum(self.call_errors.values())}")
        return "\n".join(lines)


def check_conformance(folder: Path, only_env: str | None = None) -> ConformanceReport:
    tasks = load_tasks(folder / BASE_FILE)
    references = {row["id"]: row for row in read_jsonl(folder / REFERENCE_STATES)}
    report = ConformanceReport()
    for task in tasks:
        if task.id not in references:
            continue
        if only_env and only_env not in task.env_names:
            continue
        envs = fresh_envs(task)
        for turn in task.ground_truth:
            for source in turn:
                try:
                    tool, arguments = to_arguments(source, task.env_names)
                    env_name, function = tool.split(".", 1)
                    envs[env_name].invoke(function, arguments)
                except (ToolError, CallParseError) as error:
                    report.call_errors[f"{task.id}: {source} -> {error}"] += 1
        report.tasks += 1
        all_match = True
        for bfcl_class, expected in references[task.id]["final_state"].items():
            env_name = BFCL_CLASSES[bfcl_class].name
            ours = envs[env_name].bfcl_state()
            theirs = normalise_reference(bfcl_class, expected)
            result = report.per_class.setdefault(bfcl_class, ClassResult())
            result.total += 1
            if ours == theirs:
                result.matched += 1
            else:
                all_match = False
                report.mismatches.append((task.id, bfcl_class, state_diff(theirs, ours, limit=20)))
        report.tasks_matched += all_match
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("folder", type=Path, help="BFCL v4 folder (../shared/peers/bfcl/v4)")
    parser.add_argument("--env", help="only tasks involving this environment")
    parser.add_argument("--show", type=int, default=5, help="mismatches to print")
    args = parser.parse_args(argv)
    report = check_conformance(args.folder, args.env)
    print(report.summary())
    for line in list(report.call_errors)[: args.show]:
        print("ERROR", line)
    shown = [m for m in report.mismatches if not args.env or BFCL_CLASSES[m[1]].name == args.env]
    for task_id, bfcl_class, diff in shown[: args.show]:
        print(f"--- {task_id} {bfcl_class} (reference -> ours)")
        for line in diff:
            print("   ", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
