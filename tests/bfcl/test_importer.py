"""Importing BFCL multi-turn files: both granularities, inferred dependencies, self-contained
turns (kept, merged with earlier turns, or dropped with a code), the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.bfcl import importer
from pipeline.bfcl.data import load_tasks
from pipeline.bfcl.importer import (
    MAX_MERGED_CALLS,
    MAX_MERGED_TURNS,
    Granularity,
    Outcome,
    import_bfcl,
    join_requests,
    multi_turn_files,
    tasks_from_bfcl,
    turn_outcomes,
)
from pipeline.cli import main
from pipeline.jsonl import read_records
from pipeline.models import RejectionCode, Task
from pipeline.replay import replay
from pipeline.validate.chain import validate_task


def _upstream(bfcl_dir: Path, task_id: str):  # type: ignore[no-untyped-def]
    tasks = {t.id: t for t in load_tasks(bfcl_dir / "BFCL_v4_multi_turn_base.json")}
    return tasks[task_id]


def test_turn_granularity_starts_from_the_state_before_the_turn(bfcl_dir: Path) -> None:
    upstream = _upstream(bfcl_dir, "multi_turn_base_0")
    outcomes = turn_outcomes(upstream)
    # turns 0, 1 and 3 have at least two calls; turn 2 has one
    assert [o.source for o in outcomes] == [
        "bfcl:multi_turn_base_0#turn0",
        "bfcl:multi_turn_base_0#turn1",
        "bfcl:multi_turn_base_0#turn3",
    ]
    first = outcomes[0].task
    assert outcomes[0].outcome is Outcome.KEPT and first is not None
    assert first.envs == ["filesystem"] and first.category == "filesystem"
    assert [c.tool for c in first.calls] == ["filesystem.cd", "filesystem.mkdir", "filesystem.mv"]
    # mkdir happens inside the folder cd entered; mv moves into the folder mkdir made
    assert [c.depends_on for c in first.calls] == [[], ["s1"], ["s2"]]
    # a task starts where the turns before its first turn left the filesystem
    states = [turn.state["filesystem"] for turn in importer._replay_turns(upstream)]
    assert states[1] != states[0]  # inside document/, temp/ already made
    tasks = list(tasks_from_bfcl(upstream, Granularity.TURN))
    assert tasks == [o.task for o in outcomes if o.task is not None]
    for task in tasks:
        span = (task.lineage.source or "").split("#turn")[1]
        assert task.initial_config["filesystem"] == states[int(span.split("-")[0])]
        assert replay(task).ok


def test_task_granularity_joins_all_turns(bfcl_dir: Path) -> None:
    upstream = _upstream(bfcl_dir, "multi_turn_base_0")
    (task,) = tasks_from_bfcl(upstream, Granularity.TASK)
    assert task.question.count("\n") == len(upstream.turns) - 1
    assert len(task.calls) == sum(len(turn) for turn in upstream.ground_truth)
    assert set(task.initial_config) <= set(task.envs) == {"filesystem", "posting"}
    assert task.id == task.content_id()


def test_all_base_tasks_import_and_replay(bfcl_dir: Path) -> None:
    report = import_bfcl([bfcl_dir / "BFCL_v4_multi_turn_base.json"], Granularity.TURN)
    print("\n" + report.summary())
    assert not report.skipped, report.skipped[:5]
    # turns that do not stand on their own are merged or dropped (see the tests below); about
    # two in five make a task (76 of 192 on 2026-11-30), a third is the floor
    assert len(report.tasks) >= (report.kept + report.merged + len(report.dropped)) / 3
    clean = sum(replay(task).ok for task in report.tasks)
    print(f"replay without ToolError: {clean}/{len(report.tasks)}")
    assert clean / len(report.tasks) >= 0.9
    with_deps = sum(any(c.depends_on for c in task.calls) for task in report.tasks)
    assert with_deps / len(report.tasks) >= 0.6
    for task in report.tasks:
        ids = [c.id for c in task.calls]
        for position, call in enumerate(task.calls):
            assert set(call.depends_on) <= set(ids[:position])


@pytest.mark.slow
def test_cli_imports_every_multi_turn_file(
    bfcl_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tasks.jsonl"
    assert main(["import-bfcl", str(bfcl_dir), "--granularity", "task", "--out", str(out)]) == 0
    tasks = list(read_records(out, Task))
    files = multi_turn_files(bfcl_dir)
    assert len(files) >= 3  # base, miss_func, miss_param (and long_context where present)
    assert len(tasks) >= 150
    assert "imported" in capsys.readouterr().out
    assert main(["import-bfcl", str(tmp_path)]) == 2


# --- self-contained turns on synthetic upstream tasks (no peer data needed) -------------------

_FILES = {
    "home": {
        "type": "directory",
        "contents": {
            "report.txt": {"type": "file", "content": "Quarterly numbers are up."},
            "notes.txt": {"type": "file", "content": "Call the bank."},
        },
    }
}

# turn 0 stands alone; turn 1 names neither the folder nor the file, only turn 0 does;
# turn 2 reads a file that does not exist: a tool error, not a matter of context
_TURNS = [
    ("Create a folder named 'archive' and move 'report.txt' into it.",
     ["mkdir(dir_name='archive')", "mv(source='report.txt', destination='archive')"]),
    ("Open the new folder and show me what the file says.",
     ["cd(folder='archive')", "cat(file_name='report.txt')"]),
    ("Show me 'missing.txt' and then 'report.txt'.",
     ["cat(file_name='missing.txt')", "cat(file_name='report.txt')"]),
]  # fmt: skip


_LEANS_ON_EARLIER_TURNS = {
    RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    RejectionCode.GROUNDING_HIDDEN_STATE,
    RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT,
}


def _write_bfcl(folder: Path, task_id: str, turns: list[tuple[str, list[str]]]) -> Path:
    """A BFCL-shaped task file with its ground truth in ``possible_answer/`` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    task_file = folder / "BFCL_v4_multi_turn_base.json"
    row = {
        "id": task_id,
        "question": [[{"role": "user", "content": text}] if text else [] for text, _ in turns],
        "initial_config": {"GorillaFileSystem": {"root": _FILES}},
        "involved_classes": ["GorillaFileSystem"],
    }
    task_file.write_text(json.dumps(row) + "\n")
    (folder / "possible_answer").mkdir(exist_ok=True)
    answer = {"id": task_id, "ground_truth": [calls for _, calls in turns]}
    (folder / "possible_answer" / task_file.name).write_text(json.dumps(answer) + "\n")
    return task_file


def test_a_turn_leaning_on_the_turn_before_is_merged_with_it(tmp_path: Path) -> None:
    (upstream,) = load_tasks(_write_bfcl(tmp_path, "synthetic_0", _TURNS))
    outcomes = turn_outcomes(upstream)
    assert [(o.source, o.outcome) for o in outcomes] == [
        ("bfcl:synthetic_0#turn0", Outcome.KEPT),
        ("bfcl:synthetic_0#turn1", Outcome.MERGED),
        ("bfcl:synthetic_0#turn2", Outcome.DROPPED),
    ]
    kept, merged = outcomes[0].task, outcomes[1].task
    assert kept is not None and merged is not None
    assert merged.lineage.source == "bfcl:synthetic_0#turn0-1"
    # one question holding both requests, in order, each as written
    first, second = _TURNS[0][0], _TURNS[1][0]
    assert merged.question == f"{first} {second}"
    # all calls of both turns in order, from the state before turn 0, dependencies re-inferred
    assert [c.tool for c in merged.calls] == [
        "filesystem.mkdir", "filesystem.mv", "filesystem.cd", "filesystem.cat"
    ]  # fmt: skip
    assert [c.id for c in merged.calls] == ["s1", "s2", "s3", "s4"]
    assert merged.initial_config == kept.initial_config
    assert merged.calls[2].depends_on  # cd enters the folder turn 0 made and filled
    assert "s3" in merged.calls[3].depends_on  # cat reads inside that folder
    assert validate_task(merged).accepted and replay(merged).ok
    # alone, turn 1 is rejected for leaning on turn 0 (the values it needs are only there)
    turns = importer._replay_turns(upstream)
    alone = importer._span_task(upstream, turns[1:2], "bfcl:synthetic_0#turn1")
    rejection = validate_task(alone).rejection
    assert rejection is not None and rejection.code in _LEANS_ON_EARLIER_TURNS
    # turn 2 fails for another reason: dropped with that code and its message, never merged
    assert outcomes[2].task is None
    assert outcomes[2].code == RejectionCode.EXECUTE_TOOL_ERROR.value
    assert "missing.txt" in outcomes[2].message
    assert list(tasks_from_bfcl(upstream, Granularity.TURN)) == [kept, merged]


def test_a_turn_with_calls_but_no_text_joins_the_request_before_it(tmp_path: Path) -> None:
    # as in BFCL's miss_func files: the request comes in one turn, its calls in the next
    turns = [(_TURNS[0][0], []), ("", _TURNS[0][1])]
    (upstream,) = load_tasks(_write_bfcl(tmp_path, "synthetic_1", turns))
    (outcome,) = turn_outcomes(upstream)
    assert outcome.outcome is Outcome.MERGED and outcome.task is not None
    assert outcome.task.lineage.source == "bfcl:synthetic_1#turn0-1"
    assert outcome.task.question == _TURNS[0][0]
    # with no earlier turn to give the request, the turn is dropped as asking for nothing
    (upstream,) = load_tasks(_write_bfcl(tmp_path / "alone", "synthetic_2", [("", _TURNS[0][1])]))
    (outcome,) = turn_outcomes(upstream)
    assert outcome.outcome is Outcome.DROPPED
    assert outcome.code == RejectionCode.QUESTION_NO_REQUEST.value


def test_merging_stops_at_the_cap(tmp_path: Path) -> None:
    # the request sits MAX_MERGED_TURNS turns back: too far to merge, so the turn is dropped
    replies = ["Thanks.", "Good to know.", "Noted, carry on.", "Great.", "Fine."]
    chatter: list[tuple[str, list[str]]] = [(text, []) for text in replies[: MAX_MERGED_TURNS - 1]]
    turns = [(_TURNS[0][0], []), *chatter, ("", _TURNS[0][1])]
    (upstream,) = load_tasks(_write_bfcl(tmp_path, "synthetic_3", turns))
    (outcome,) = turn_outcomes(upstream)
    assert outcome.outcome is Outcome.DROPPED
    assert outcome.code == RejectionCode.QUESTION_CONTEXT_DEPENDENT.value
    assert f"{MAX_MERGED_TURNS} turns and {MAX_MERGED_CALLS} calls" in outcome.message


def test_a_later_turn_that_passes_alone_still_starts_the_conversation(tmp_path: Path) -> None:
    # turn 1 names everything it needs and passes the checks alone, but it was said after turn
    # 0: the task keeps turn 0's request and starts from the conversation's initial state
    turns = [
        ("Create a folder named 'archive'.", ["mkdir(dir_name='archive')", "ls()"]),
        ("Show me 'notes.txt' and then 'report.txt'.",
         ["cat(file_name='notes.txt')", "cat(file_name='report.txt')"]),
    ]  # fmt: skip
    upstream = load_tasks(_write_bfcl(tmp_path, "synthetic_4", turns))[0]
    alone = importer._span_task(upstream, importer._replay_turns(upstream)[1:], "alone")
    assert validate_task(alone).accepted
    outcome = turn_outcomes(upstream)[1]
    assert outcome.outcome is Outcome.MERGED and outcome.task is not None
    assert outcome.task.lineage.source == "bfcl:synthetic_4#turn0-1"
    assert outcome.task.question.startswith("Create a folder named 'archive'.")
    assert [c.tool for c in outcome.task.calls][-2:] == ["filesystem.cat", "filesystem.cat"]


def test_join_requests_reads_as_one_message() -> None:
    assert join_requests(["Open 'a'.", "", "  Then close it  "]) == "Open 'a'. Then close it"
    assert join_requests(["Say 'hi!'", "Go"]) == "Say 'hi!' Go"
    assert join_requests(["My password is pw123", "Log in."]) == "My password is pw123. Log in."


def test_report_counts_every_turn_and_the_cli_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task_file = _write_bfcl(tmp_path, "synthetic_0", _TURNS)
    report = import_bfcl([task_file], Granularity.TURN)
    assert (report.kept, report.merged, len(report.dropped)) == (1, 1, 1)
    assert report.dropped_by_code() == {"execute.tool_error": 1}
    assert len(report.tasks) == 2
    assert "kept alone 1, merged with earlier turns 1, dropped 1" in report.summary()
    assert "dropped execute.tool_error: 1" in report.summary()
    out = tmp_path / "tasks.jsonl"
    assert main(["import-bfcl", str(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "dropped execute.tool_error: 1" in printed
    assert "dropped bfcl:synthetic_0#turn2 [execute.tool_error]" in printed
    assert len(list(read_records(out, Task))) == 2


def test_gather_prints_the_import_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_bfcl(tmp_path / "bfcl", "synthetic_0", _TURNS)
    out = tmp_path / "candidates.jsonl"
    assert main(["gather", "--bfcl", str(tmp_path / "bfcl"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "kept alone 1, merged with earlier turns 1, dropped 1" in printed
    assert "'bfcl': 2" in printed


# --- self-contained turns on the real BFCL base file ------------------------------------------


def test_every_base_turn_is_kept_merged_or_dropped(bfcl_dir: Path) -> None:
    upstream = load_tasks(bfcl_dir / "BFCL_v4_multi_turn_base.json")
    report = import_bfcl([bfcl_dir / "BFCL_v4_multi_turn_base.json"], Granularity.TURN)
    print(f"\n{report.summary()}")  # bench/replay.py times this import
    candidates = sum(len(calls) >= 2 for task in upstream for calls in task.ground_truth)
    assert report.kept + report.merged + len(report.dropped) == candidates
    assert len(report.tasks) == report.kept + report.merged - report.duplicates
    assert sum(report.dropped_by_code().values()) == len(report.dropped)
    assert all(item.code and item.message for item in report.dropped)
    assert report.duplicates == 0 and report.merged > 0
    merged = [t for t in report.tasks if "-" in (t.lineage.source or "").split("#")[1]]
    assert len(merged) == report.merged
    for task in merged:
        first, last = map(int, (task.lineage.source or "").split("#turn")[1].split("-"))
        assert 2 <= last - first + 1 <= MAX_MERGED_TURNS and len(task.calls) <= MAX_MERGED_CALLS
    # every span starts the conversation: no task is cut from its middle
    assert all(
        (t.lineage.source or "").split("#turn")[1].split("-")[0] == "0" for t in report.tasks
    )
    for task in report.tasks:  # every task the import emits passes the validation chain
        assert validate_task(task).accepted, task.lineage.source
    assert len({task.id for task in report.tasks}) == len(report.tasks)


def test_long_context_file_keeps_the_flag_and_the_long_state(tmp_path: Path) -> None:
    base = _write_bfcl(tmp_path, "synthetic_lc", _TURNS[:1])
    long_file = base.with_name("BFCL_v4_multi_turn_long_context.json")
    base.rename(long_file)
    (base.parent / "possible_answer" / base.name).rename(
        base.parent / "possible_answer" / long_file.name
    )
    report = import_bfcl([long_file], Granularity.TASK)
    (task,) = report.tasks
    config: Any = task.initial_config["filesystem"]
    assert config["long_context"] is True
    home = config["root"]["home"]["contents"]
    assert len(home["notes.txt"]["content"]) > 1000  # upstream's long file content
    assert home["report.txt"]["content"] == "Quarterly numbers are up."  # kept short upstream
    assert sum(name.startswith("image_") for name in home) == 30


_GOOD_ROW = {
    "id": "t1",
    "question": [[{"role": "user", "content": "Add 1 and 2."}]],
    "initial_config": {},
    "involved_classes": ["MathAPI"],
}


@pytest.mark.parametrize(
    ("rows", "answers", "said"),
    [
        ([{**_GOOD_ROW, "involved_classes": None}], None, "'involved_classes' must be"),
        ([[1, 2, 3]], None, "a task row is an object"),
        ([{**_GOOD_ROW, "question": "a string"}], None, "'question' must be"),
        ([{**_GOOD_ROW, "initial_config": []}], None, "'initial_config' must map"),
        ([_GOOD_ROW], [], "no ground truth in it"),
        ([_GOOD_ROW], [{"id": "t1"}], "'ground_truth' must be"),
        ([{**_GOOD_ROW, "question": _GOOD_ROW["question"] * 2}], None, "2 turns but ground"),
        ([_GOOD_ROW, _GOOD_ROW], None, "appears twice"),
        ([{**_GOOD_ROW, "id": "t9"}], None, "has no ground truth"),
    ],
)
def test_a_malformed_upstream_file_is_one_clear_error(
    tmp_path: Path,
    rows: list[object],
    answers: list[object] | None,
    said: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "possible_answer").mkdir()
    name = "BFCL_v4_multi_turn_base.json"
    (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    truth = [{"id": "t1", "ground_truth": [["add(a=1, b=2)"]]}] if answers is None else answers
    (tmp_path / "possible_answer" / name).write_text(
        "".join(json.dumps(r) + "\n" for r in truth), encoding="utf-8"
    )
    assert main(["import-bfcl", str(tmp_path / name), "--out", str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
