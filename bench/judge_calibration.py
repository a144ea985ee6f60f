"""Calibrate the LLM judge: its precision and recall per rubric label on a labelled set.

Runs the real judge (``pipeline.evolve.judge.rate``) over every task of the labelled set
(``bench/data/judge_labelled.jsonl``: one task per line with the rubric labels that make it
invalid, none for a valid one) against an OpenAI-compatible endpoint, and prints per label:
how many tasks carry it, the base rate (the precision of a judge that flags at random), the
judge's precision and recall, and whether the label clears the trust rule. The result is merged
per model into the calibration file the evolve run reads (``prompts/judge_calibration.json``);
each task's answers go to a JSON-lines file for reading. Answers are cached like every LLM call
(``output/cache``), so a rerun or an interrupted run sends only what is missing; after a change
to the checks alone, ``--rescore`` that file measures them again in seconds, asking nothing.

    python bench/judge_calibration.py --base-url http://127.0.0.1:8181/v1 \\
        --model qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.evolve.judge import (
    DEFAULT_CALIBRATION,
    LABELS,
    RULE,
    Verdict,
    checked,
    prompt_hash,
    rate,
    template_hash,
    trusted_labels,
)
from pipeline.llm import LLMClient, LLMConfig, UsageLedger
from pipeline.models import Task, content_hash

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SET = REPO / "bench" / "data" / "judge_labelled.jsonl"


class SetError(ValueError):
    """The labelled set cannot be read; the message says where and why."""


def load_set(path: Path) -> list[tuple[Task, frozenset[str]]]:
    """The labelled tasks: each line ``{"task": <Task JSON>, "labels": [rubric labels]}``."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError as error:
        raise SetError(f"{path}: {error.strerror or error}") from None
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            task = Task.model_validate(record["task"])
            labels = frozenset(record["labels"])
        except (ValueError, KeyError, TypeError) as error:
            raise SetError(f"{path}, line {number}: not a labelled task ({error})") from None
        unknown = sorted(labels - set(LABELS))
        if unknown:
            raise SetError(f"{path}, line {number}: unknown label(s) {', '.join(unknown)}")
        items.append((task, labels))
    if not items:
        raise SetError(f"{path}: no labelled tasks")
    return items


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def label_stats(
    truth: list[frozenset[str]], found: list[frozenset[str]], label: str
) -> dict[str, Any]:
    """Precision, recall and base rate of one label over the judged tasks."""
    positives = sum(label in labels for labels in truth)
    flagged = sum(label in labels for labels in found)
    hits = sum(label in t and label in f for t, f in zip(truth, found))
    return {
        "positives": positives,
        "flagged": flagged,
        "true_positives": hits,
        "base_rate": _ratio(positives, len(truth)),
        "precision": _ratio(hits, flagged),
        "recall": _ratio(hits, positives),
    }


def summarise(items: list[tuple[Task, frozenset[str]]], verdicts: list[Verdict]) -> dict[str, Any]:
    """Per-label statistics over the tasks the endpoint judged, and task-level ones (any
    label found against the task being invalid)."""
    judged = [(labels, v) for (_, labels), v in zip(items, verdicts) if v.judged]
    truth = [labels for labels, _ in judged]
    found = [frozenset(v.found) for _, v in judged]
    invalid = [frozenset({"invalid"}) if labels else frozenset() for labels in truth]
    flagged = [frozenset({"invalid"}) if labels else frozenset() for labels in found]
    return {
        "tasks": len(items),
        "judged": len(judged),
        "coverage": _ratio(len(judged), len(items)) or 0.0,
        "labels": {label: label_stats(truth, found, label) for label in LABELS},
        "any_label": label_stats(invalid, flagged, "invalid"),
    }


async def judge_all(
    config: LLMConfig,
    items: list[tuple[Task, frozenset[str]]],
    usage: UsageLedger,
    stop_after: float | None = None,
) -> list[Verdict | None]:
    """The judge's verdict on each task, in order; ``None`` for a task not reached within
    ``stop_after`` seconds (a shared CPU server may not get through the whole set)."""
    async with LLMClient(config, usage) as client:
        done = 0

        async def one(task: Task) -> Verdict:
            nonlocal done
            verdict = await rate(task, client)
            done += 1
            print(f"  {done}/{len(items)} answered", file=sys.stderr, flush=True)
            return verdict

        jobs = [asyncio.ensure_future(one(task)) for task, _ in items]
        finished, pending = await asyncio.wait(jobs, timeout=stop_after)
        for job in pending:
            job.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return [job.result() if job in finished else None for job in jobs]


def rescore(items: list[tuple[Task, frozenset[str]]], path: Path) -> list[Verdict | None]:
    """The verdicts today's checks make of the lists a judge copied out before, stored in a
    verdicts file of this bench; ``None`` for a task the file lacks. Only answers to today's
    prompt count: a changed prompt may have been answered otherwise."""
    records: dict[str, dict[str, Any]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SetError(f"{path}: {error.strerror or error}") from None
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            records[str(record["task_id"])] = record
        except (ValueError, KeyError, TypeError):
            raise SetError(f"{path}, line {number}: not a judge verdict") from None
        if record.get("prompt_hash") != prompt_hash():
            raise SetError(
                f"{path}, line {number}: answers to judge prompt"
                f" {record.get('prompt_hash')}, not today's {prompt_hash()}: judge again"
            )
    verdicts: list[Verdict | None] = []
    for task, _ in items:
        record = records.get(task.id)
        if record is None:
            verdicts.append(None)
        elif not record.get("judged") or not isinstance(record.get("lists"), dict):
            verdicts.append(Verdict(task.id, judged=False, error=record.get("error")))
        else:
            try:
                verdicts.append(checked(task, record["lists"]))
            except ValueError as error:
                raise SetError(f"{path}: the lists for {task.id} do not parse: {error}") from None
    return verdicts


def table(model: str, entry: dict[str, Any]) -> str:
    rows = [
        f"model {model}: {entry['judged']} of {entry['tasks']} tasks judged",
        "| label | tasks with it | base rate | flagged | precision | recall | trusted |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    trusted = set(entry["trusted"])

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    for label, stats in [*entry["labels"].items(), ("any label", entry["any_label"])]:
        mark = "yes" if label in trusted else ("" if label == "any label" else "no")
        rows.append(
            f"| {label} | {stats['positives']} | {cell(stats['base_rate'])} | {stats['flagged']}"
            f" | {cell(stats['precision'])} | {cell(stats['recall'])} | {mark} |"
        )
    return "\n".join(rows)


def merge_into(path: Path, model: str, entry: dict[str, Any]) -> None:
    """Write ``entry`` for ``model`` into the calibration file, keeping other models'."""
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            data = {}
    data["rule"] = RULE.as_dict()
    data.setdefault("models", {})[model] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint (not with --rescore)")
    parser.add_argument("--model", required=True, help="model name the endpoint serves")
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="labelled tasks (JSONL)")
    parser.add_argument("--out", type=Path, default=DEFAULT_CALIBRATION, help="calibration file")
    parser.add_argument("--verdicts", type=Path, help="per-task answers (JSONL)")
    parser.add_argument("--limit", type=int, help="judge only the first N tasks (a smoke run)")
    parser.add_argument(
        "--stop-after",
        type=float,
        help="seconds; then measure on the tasks answered so far (the set is in random order)",
    )
    parser.add_argument(
        "--rescore",
        type=Path,
        help="a verdicts file of an earlier run: check its lists again with today's checks,"
        " asking nothing",
    )
    parser.add_argument("--llm-config", type=Path, help="TOML file with LLM settings")
    parser.add_argument("--cache", type=Path, help="LLM answer cache (default output/cache)")
    args = parser.parse_args(argv)
    if (args.base_url is None) == (args.rescore is None):
        print("error: give either --base-url (judge) or --rescore (check again)", file=sys.stderr)
        return 2
    try:
        items = load_set(args.set)
        total = len(items)
        if args.limit is not None:
            items = items[: max(args.limit, 0)]
        usage = UsageLedger()
        started = time.perf_counter()
        if args.rescore is not None:
            answers = rescore(items, args.rescore)
        else:
            overrides: dict[str, Any] = {"base_url": args.base_url, "model": args.model}
            if args.cache is not None:
                overrides["cache_path"] = str(args.cache)
            config = LLMConfig.load(overrides, args.llm_config)
            answers = asyncio.run(judge_all(config, items, usage, args.stop_after))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    reached = [(item, v) for item, v in zip(items, answers) if v is not None]
    if len(reached) < len(items):
        print(f"answers for {len(reached)} of {len(items)} tasks")
    items = [item for item, _ in reached]
    verdicts = [verdict for _, verdict in reached]
    entry = summarise(items, verdicts)
    entry["trusted"] = sorted(trusted_labels(entry))
    entry.update(
        template_hash=template_hash(),
        set=str(
            args.set.resolve().relative_to(REPO)
            if args.set.resolve().is_relative_to(REPO)
            else args.set
        ),  # fmt: skip
        set_hash=content_hash([[t.id, sorted(labels)] for t, labels in items]),
        usage=usage.as_dict(),
        seconds=round(seconds, 1),
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    if args.rescore is not None:  # no model time: the answers are those of the file
        entry["rescored_from"] = str(args.rescore)
    if len(items) < total:  # measured on part of the set
        entry["set_tasks"] = total
    merge_into(args.out, args.model, entry)
    verdicts_path = (
        args.verdicts or REPO / "output" / "bench" / f"judge_verdicts-{args.model}.jsonl"
    )
    verdicts_path.parent.mkdir(parents=True, exist_ok=True)
    with verdicts_path.open("w", encoding="utf-8") as handle:
        for (task, labels), verdict in zip(items, verdicts):
            record = {"truth": sorted(labels), "question": task.question, **verdict.as_dict()}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(table(args.model, entry))
    print(f"wrote {args.out} and {verdicts_path} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
