"""Draw a stratified blind-read sample of published single tasks (lineage removed).

Usage: python bench/blind_sample.py output/runs/<run>/dataset OUT_DIR [--per-operator 24]
[--readers 4] [--seed 0]. Given an evolve run's ``evolved.jsonl`` instead of a dataset folder,
it samples the tasks an LLM made there (lineage with a model), for the issue-17 read.
Writes ``OUT_DIR/reader_<k>.md`` (question, calls and what each call returns; no ids, operators
or lineage) and ``OUT_DIR/key.json`` (sample number -> operator), so readers judge tasks
against ../shared/validity/RUBRIC.md without knowing how they were made. ``--folders K`` also
lays out ``OUT_DIR/r1`` .. ``rK`` for K readers who each read every task: ``tasks.md``, the
rubric, ``tools.md`` (``asynctool tools --full``) and ``bench/blind_read_prompt.md``; a reader
is told to open nothing else and writes ``verdicts.md`` there.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import shutil
from pathlib import Path

import pandas as pd

from pipeline.cli import _print_full_tools
from pipeline.models import Call, Task
from pipeline.replay import replay

PROMPT = Path(__file__).with_name("blind_read_prompt.md")


def _load(source: Path) -> pd.DataFrame:
    if source.suffix == ".jsonl":
        return _llm_made(source)
    files = sorted((source / "data" / "single").glob("*.parquet"))
    return pd.concat([pd.read_parquet(path) for path in files], ignore_index=True)


def _llm_made(path: Path) -> pd.DataFrame:
    """The tasks of an evolve run an LLM made, in the dataset's columns."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        task = Task.model_validate_json(line)
        if task.lineage.model is None:
            continue
        rows.append(
            {
                "category": task.category,
                "envs": json.dumps(task.envs),
                "question": task.question,
                "initial_config": json.dumps(task.initial_config),
                "calls": json.dumps([call.model_dump(mode="json") for call in task.calls]),
                "operator": task.lineage.operator,
            }
        )
    return pd.DataFrame(rows)


def _render(number: int, row: pd.Series) -> str:
    calls = [Call.model_validate(call) for call in json.loads(row["calls"])]
    task = Task(
        id="blind",
        category=row["category"],
        envs=json.loads(row["envs"]),
        question=row["question"],
        initial_config=json.loads(row["initial_config"]),
        calls=calls,
    )
    outcomes = replay(task).outcomes
    lines = [f"## Task {number:03d}", "", f"**Question:** {task.question}", "", "**Calls:**"]
    for call, outcome in zip(calls, outcomes):
        lines.append(
            f"- `{call.id}` `{call.tool}({json.dumps(call.arguments, ensure_ascii=False)})`"
            f" depends_on={call.depends_on} bindings={call.bindings}"
        )
        result = json.dumps(outcome.result if outcome.ok else outcome.error, ensure_ascii=False)
        lines.append(f"  - returns: `{result[:600]}`")
    return "\n".join(lines) + "\n"


def _lay_out_folders(out: Path, tasks: str, count: int, folders: int, rubric: Path) -> None:
    """One folder per reader with everything a blind read needs and nothing else."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        _print_full_tools()
    prompt = PROMPT.read_text(encoding="utf-8").replace("of N", f"of {count}")
    for reader in range(1, folders + 1):
        folder = out / f"r{reader}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tasks.md").write_text("# Tasks\n\n" + tasks, encoding="utf-8")
        (folder / "tools.md").write_text(buffer.getvalue(), encoding="utf-8")
        (folder / "prompt.md").write_text(prompt, encoding="utf-8")
        shutil.copyfile(rubric, folder / "RUBRIC.md")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-operator", type=int, default=24)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folders", type=int, default=0, help="readers who read every task")
    parser.add_argument(
        "--rubric", type=Path, default=Path("../shared/validity/RUBRIC.md"), help="for --folders"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    frame = _load(args.dataset)
    picked: list[pd.Series] = []
    for operator in sorted(frame["operator"].unique()):
        rows = frame[frame["operator"] == operator]
        take = rng.sample(range(len(rows)), min(args.per_operator, len(rows)))
        picked += [rows.iloc[index] for index in take]
    rng.shuffle(picked)
    args.out.mkdir(parents=True, exist_ok=True)
    key = {}
    for reader in range(args.readers):
        chunk = [
            (number, row)
            for number, row in enumerate(picked, start=1)
            if (number - 1) % args.readers == reader
        ]
        text = "".join(_render(number, row) for number, row in chunk)
        (args.out / f"reader_{reader + 1}.md").write_text(text, encoding="utf-8")
        key.update({number: str(row["operator"]) for number, row in chunk})
    (args.out / "key.json").write_text(json.dumps(key, indent=1), encoding="utf-8")
    if args.folders:
        every = "".join(_render(number, row) + "\n" for number, row in enumerate(picked, start=1))
        _lay_out_folders(args.out, every, len(picked), args.folders, args.rubric)
    print(f"{len(picked)} tasks for {args.readers} readers in {args.out}")


if __name__ == "__main__":
    main()
