"""What a release reports: every count from one source (card, published manifest, command line)
agreeing with the rows ``load_dataset`` returns, every drop said with its reason, and a rejected
config a reviewer on the Hub can read."""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import datasets
import pytest

from pipeline.cli import main
from pipeline.jsonl import write_records
from pipeline.models import (
    Bounds,
    Composition,
    Decision,
    Instance,
    Rejection,
    RejectionCode,
    Review,
    Task,
)
from pipeline.publish.rows import row_to_rejection
from pipeline.seeds import load_seeds
from pipeline.splits import Split, split_of


@dataclass(frozen=True)
class ReviewedRun:
    run_dir: Path
    accepted: list[Task]
    instances: list[Instance]
    good: Task  # rejected, replays: a reviewer's override publishes it
    broken: Task  # rejected, fails on replay: its override cannot be published
    raw_id: str  # rejected before parsing: an override has nothing to publish
    cut: Task  # accepted, then rejected by a reviewer


def _rejection(sample: str, code: RejectionCode, message: str, raw: str | None = None) -> Rejection:
    return Rejection(sample_id=sample, stage=code.stage, code=code, message=message, raw=raw)


def _review(sample: str, decision: Decision, day: int, note: str = "") -> Review:
    at = datetime(2026, 3, day, tzinfo=UTC)
    return Review(sample_id=sample, decision=decision, reviewer="ann", note=note, at=at)


def _instances(tasks: list[Task]) -> list[Instance]:
    by_split = {split: [t for t in tasks if split_of(t.id) is split] for split in Split}
    instances = []
    for split, pool in by_split.items():
        for index in range(2):
            picked = pool[index * 2 : index * 2 + 2]
            instances.append(
                Instance(
                    id=f"{split.value}-{index}",
                    tasks=picked,
                    composition=Composition.SAME_CATEGORY,
                    latency_profile="uniform",
                    seed=index,
                    latency={call.tool: 1.0 for task in picked for call in task.calls},
                    bounds=Bounds(optimal_makespan=3.0, sequential_makespan=9.0, turn_cost=1.0),
                )
            )
    return instances


def make_reviewed_run(run_dir: Path) -> ReviewedRun:
    seeds = sorted(load_seeds(), key=lambda t: t.id)
    accepted, good = seeds[:40], seeds[40]
    first = seeds[41].calls[0].model_copy(update={"arguments": {"no_such_argument": 1}})
    broken = seeds[41].model_copy(update={"calls": [first, *seeds[41].calls[1:]]})
    broken = broken.with_content_id()
    instances = _instances(accepted)
    cut = instances[0].tasks[0]
    write_records(run_dir / "evolved.jsonl", accepted)
    write_records(run_dir / "instances.jsonl", instances)
    write_records(
        run_dir / "evolve_rejected.jsonl",
        [
            _rejection(good.id, RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT, "value x ungrounded"),
            _rejection(broken.id, RejectionCode.EXECUTE_TOOL_ERROR, "step s1 raised"),
            _rejection("raw-1", RejectionCode.PARSE_MALFORMED, "not JSON", raw='{"calls": ['),
        ],
    )
    write_records(run_dir / "rejected_tasks.jsonl", [good, broken])
    write_records(
        run_dir / "reviews.jsonl",
        [
            _review(good.id, Decision.CONFIRM_REJECT, 1),
            _review(good.id, Decision.OVERRIDE_ACCEPT, 2),  # supersedes the first
            _review(broken.id, Decision.OVERRIDE_ACCEPT, 2),
            _review("raw-1", Decision.OVERRIDE_ACCEPT, 2),
            _review(cut.id, Decision.REJECT, 3, note="the question is ambiguous"),
            _review("no-such-task", Decision.REJECT, 3),
        ],
    )
    # a manifest whose code breakdown leaves codes out, as older evolve stages wrote it
    counts = {"seeds": 40, "seeds_accepted": 40, "seeds_rejected": 0, "rounds": 0}
    counts |= {"new_accepted": 0, "evolved": 40, "rejected": 3, "duplicates_merged": 0}
    counts["rejected_by_code"] = {"execute.tool_error": 1}
    manifest = {
        "run_id": run_dir.name,
        "evolve": {
            "settings": {},
            "counts": counts,
            "operators": {},
            "token_usage": {},
            "seconds": 0.5,
        },
        "compose": {"settings": {}, "instances": 4, "per_split": {"train": 2, "test": 2}},
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return ReviewedRun(run_dir, accepted, instances, good, broken, "raw-1", cut)


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ReviewedRun, str, dict[str, dict[str, list[dict[str, Any]]]]]:
    """The run, what `asynctool publish` printed, and every row `load_dataset` returns."""
    run = make_reviewed_run(tmp_path_factory.mktemp("reviewed"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["publish", "--run-dir", str(run.run_dir)]) == 0
    cache = tmp_path_factory.mktemp("cache")
    folder = str(run.run_dir / "dataset")
    loaded: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for config in ("single", "multi", "rejected"):
        splits: Any = datasets.load_dataset(folder, config, cache_dir=str(cache))
        loaded[config] = {split: list(rows) for split, rows in splits.items()}
    return run, out.getvalue(), loaded


def _ids(rows: dict[str, list[dict[str, Any]]], key: str = "id") -> set[str]:
    return {row[key] for split in rows.values() for row in split}


def test_reviews_are_applied_and_every_drop_is_reported(
    published: tuple[ReviewedRun, str, dict[str, dict[str, list[dict[str, Any]]]]],
) -> None:
    run, out, loaded = published
    expected_single = {t.id for t in run.accepted} - {run.cut.id} | {run.good.id}
    assert _ids(loaded["single"]) == expected_single
    kept = {i.id for i in run.instances if run.cut not in i.tasks}
    assert _ids(loaded["multi"]) == kept and len(kept) == 3
    card = (run.run_dir / "dataset" / "README.md").read_text("utf-8")
    block = json.loads((run.run_dir / "dataset" / "manifest.json").read_text("utf-8"))["published"]
    reviews = block["reviews"]
    assert (reviews["decisions"], reviews["samples"], reviews["superseded"]) == (6, 5, 1)
    assert reviews["latest"] == {"override_accept": 3, "reject": 2}
    assert block["tasks"]["overrides_published"] == [run.good.id]
    reasons = {item["id"]: item["reason"] for item in reviews["overrides_not_published"]}
    assert set(reasons) == {run.broken.id, run.raw_id}
    tool = run.broken.calls[0].tool
    assert reasons[run.broken.id].startswith(f"step s1 ({tool}) now fails: invalid arguments")
    assert "no candidate task was stored" in reasons[run.raw_id]
    assert reviews["rejects_of_unknown_samples"] == ["no-such-task"]
    (removed,) = block["instances"]["removed_by_review"]
    assert removed["id"] == run.instances[0].id and run.cut.id in removed["reason"]
    # each drop is said in the card and on the command line, with its reason
    for text in (card, out):
        assert run.broken.id in text and reasons[run.broken.id] in text
        assert run.raw_id in text and run.cut.id in text and run.instances[0].id in text
        assert "the question is ambiguous" in text and "no-such-task" in text
    assert "5 samples" in card and "(1 superseded by a later decision" in card
    assert "1 overrides (`override_accept`) were published in `single`, 2 could not be" in card


def _card_table(card: str, header: str) -> dict[str, int]:
    section = card.split(f"| {header} | count |\n| --- | --- |\n", 1)[1].split("\n\n", 1)[0]
    return {
        match[0]: int(match[1]) for match in re.findall(r"^\| (.+?) \| (\d+) \|$", section, re.M)
    }


def test_every_count_agrees_with_the_rows_loaded(
    published: tuple[ReviewedRun, str, dict[str, dict[str, list[dict[str, Any]]]]],
) -> None:
    run, out, loaded = published
    rows = {config: {s: len(r) for s, r in splits.items()} for config, splits in loaded.items()}
    folder = run.run_dir / "dataset"
    block = json.loads((folder / "manifest.json").read_text("utf-8"))["published"]
    assert block["rows"] == rows
    card = (folder / "README.md").read_text("utf-8")
    # the ledger walks from the run's files to the published rows
    ledger = _card_table(card.split("## From the run's files")[1], "")
    assert ledger["validated tasks (`evolved.jsonl`)"] == 40
    for config in ("single", "multi", "rejected"):
        assert ledger[f"**= rows of `{config}`**"] == sum(rows[config].values())
    assert ledger["validated tasks (`evolved.jsonl`)"] + ledger[
        "+ rejected candidates a reviewer accepted that still replay"
    ] - ledger["- accepted tasks a reviewer rejected"] == sum(rows["single"].values())
    # rejections: the printed total, the printed codes, the card's code table, the rows
    rejected = loaded["rejected"]["full"]
    codes = _card_table(card.split("## Rejections")[1], "code")
    assert codes == {
        "execute.tool_error": 1,
        "grounding.ungrounded_argument": 1,
        "parse.malformed": 1,
        "review.rejected": 1,
    }
    assert sum(codes.values()) == len(rejected) == block["rejections"]["published"] == 4
    total = re.search(r"rejected candidates: (\d+) \(3 by the validator, 1 by reviewers\)", out)
    printed = {m[0]: int(m[1]) for m in re.findall(r"^  ([a-z_]+\.[a-z_]+): (\d+)$", out, re.M)}
    assert total is not None and int(total[1]) == sum(printed.values()) == len(rejected)
    assert printed == codes
    single = f"single {{train: {rows['single']['train']}, test: {rows['single']['test']}}}"
    assert single in out and "rejected {full: 4}" in out
    # the manifest's incomplete code breakdown is named, not silently contradicted
    assert "evolve.counts.rejected_by_code (manifest vs evolve_rejected.jsonl)" in card
    note = "note: the run manifest disagrees with its files: evolve.counts.rejected_by_code"
    assert note in out


def test_rejected_config_carries_question_task_and_decision(
    published: tuple[ReviewedRun, str, dict[str, dict[str, list[dict[str, Any]]]]],
) -> None:
    run, _, loaded = published
    rows = {row["sample_id"]: row for row in loaded["rejected"]["full"]}
    for task, decision in ((run.good, "override_accept"), (run.broken, "override_accept")):
        row = rows[task.id]
        assert row["question"] == task.question and row["category"] == task.category
        assert Task.model_validate_json(row["task"]) == task
        assert row["review"] == decision
    raw = rows[run.raw_id]
    assert raw["question"] is None and raw["task"] is None and raw["raw"] == '{"calls": ['
    cut = rows[run.cut.id]  # an accepted task a reviewer rejected is published as a rejection
    assert (cut["stage"], cut["code"], cut["review"]) == ("review", "review.rejected", "reject")
    assert cut["question"] == run.cut.question
    assert Task.model_validate_json(cut["task"]) == run.cut
    assert "rejected by reviewer ann on 2026-03-03: the question is ambiguous" in cut["message"]
    # the extra columns do not get in the way of reading a row back as its contract
    assert row_to_rejection(raw).raw == '{"calls": ['
