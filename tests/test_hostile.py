"""Hostile records and operator mistakes (issue 13): each ends in a per-record rejection with its
own code, or in one clear whole-input error and a non-zero exit — never a traceback, never a
silent change, never a second process mixing its results into a run."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline import jsonl
from pipeline.cli import main
from pipeline.jsonl import read_records, replace_folder, write_parts
from pipeline.models import Call, Rejection, Task
from pipeline.names import new_run_id
from pipeline.replay import build_envs, run_call
from pipeline.runguard import RunBusy, run_lock, sweep_leftovers
from pipeline.seeds import load_seeds
from pipeline.validate.chain import validate_line, validate_task
from pipeline.validate.limits import Limits
from pipeline.validate.static import parse_candidate


def _seed_line() -> dict[str, Any]:
    seed = next(t for t in load_seeds() if t.category == "maths")
    record: dict[str, Any] = json.loads(seed.model_dump_json())
    return record


def _sums(count: int) -> dict[str, Any]:
    """``count`` additions, each of the previous sum and the next number."""
    calls: list[dict[str, Any]] = [{"id": "s1", "tool": "maths.add", "arguments": {"a": 1, "b": 2}}]
    total = 3
    for step in range(2, count + 1):
        calls.append(
            {"id": f"s{step}", "tool": "maths.add", "arguments": {"a": total, "b": step + 1},
             "depends_on": [f"s{step - 1}"], "bindings": {"a": f"s{step - 1}.result"}}
        )  # fmt: skip
        total += step + 1
    question = "Add 1 and 2" + "".join(f", then add {n + 1} to that" for n in range(2, count + 1))
    return {"category": "maths", "envs": ["maths"], "question": question + ".", "calls": calls}


def _with(change: Callable[[dict[str, Any]], None]) -> bytes:
    record = _seed_line()
    change(record)
    return json.dumps(record).encode("utf-8")


def _question(text: str) -> Callable[[dict[str, Any]], None]:
    return lambda record: record.update(question=text)


_BAD_BYTE = _with(_question("Add 3.5 and 4.25 \udcff")).replace(b"\\udcff", b"\xff")
HOSTILE_LINES: list[tuple[str, bytes, str]] = [
    ("too many calls", json.dumps(_sums(101)).encode(), "limit.calls"),
    ("a 30,000-character question", _with(_question("Add 3.5 and 4.25. " * 1700)),
     "limit.question"),
    ("invalid UTF-8", _BAD_BYTE, "parse.malformed"),
    ("NUL in the question", _with(_question("Add 3.5\u0000 and 4.25, then multiply by 2.")),
     "parse.malformed"),
    ("escape in the id", _with(lambda r: r.update(id="seed\u001b[2J")), "parse.malformed"),
    ("a round past int64", _with(lambda r: r["lineage"].update(round=2**63)), "parse.malformed"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "line", "code"), HOSTILE_LINES, ids=[c[0] for c in HOSTILE_LINES])
def test_hostile_line_is_rejected_with_its_code_through_the_cli(
    case: str, line: bytes, code: str, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(_with(lambda r: None) + b"\n" + line + b"\n")
    args = ["validate", str(source), "--output", str(tmp_path), "--run-id", "r", "--inline"]
    assert main(args) == 0, case
    run = tmp_path / "runs" / "r"
    rejected = list(read_records(run / "rejected.jsonl", Rejection))
    assert [r.code.value for r in rejected] == [code], case
    assert len(list(read_records(run / "accepted.jsonl", Task))) == 1
    text = (run / "accepted.jsonl").read_text(encoding="utf-8")
    assert "\ufffd" not in text and "\\u0000" not in text


def test_invalid_utf8_is_reported_not_replaced() -> None:
    verdict = validate_line(b'{"question": "caf\xe9"}')
    assert verdict.rejection is not None
    assert "not valid UTF-8" in verdict.rejection.message and "e9" in verdict.rejection.message


def test_repeated_task_id_keeps_the_first_and_rejects_the_rest(tmp_path: Path) -> None:
    first = _with(lambda r: None)
    other = _with(_question("Add 3.5 and 4.25, then multiply that sum by 2, please."))
    source = tmp_path / "in.jsonl"
    source.write_bytes(first + b"\n" + other + b"\n" + first + b"\n")
    args = ["validate", str(source), "--output", str(tmp_path), "--run-id", "r", "--inline"]
    assert main(args) == 0
    run = tmp_path / "runs" / "r"
    accepted = list(read_records(run / "accepted.jsonl", Task))
    assert len(accepted) == 1 and accepted[0].question == json.loads(first)["question"]
    rejected = list(read_records(run / "rejected.jsonl", Rejection))
    assert [r.code.value for r in rejected] == ["parse.duplicate_id"] * 2
    counts = json.loads((run / "manifest.json").read_text())["validate"]["counts"]
    assert (counts["accepted"], counts["rejected"], counts["input"]) == (1, 2, 3)
    assert counts["rejected_by_code"] == {"parse.duplicate_id": 2}


def test_time_and_output_limits_reject_with_their_codes() -> None:
    task = parse_candidate(json.dumps(_sums(40)))
    slow = validate_task(task, limits=Limits(seconds_per_candidate=1e-9))
    assert slow.rejection is not None and slow.rejection.code.value == "limit.time"
    big = validate_task(task, limits=Limits(max_output_chars=50))
    assert big.rejection is not None and big.rejection.code.value == "limit.output"
    assert validate_task(task).accepted  # within the default limits


def test_a_result_json_cannot_hold_fails_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    envs = build_envs(["maths"], {})
    monkeypatch.setattr(envs["maths"], "invoke", lambda name, arguments: {"result": float("inf")})
    outcome = run_call(envs, Call(id="s1", tool="maths.add", arguments={"a": 1, "b": 2}))
    assert outcome.error is not None and "infinite or NaN" in outcome.error


def _validate_args(source: Path, root: Path, *extra: str) -> list[str]:
    return ["validate", str(source), "--output", str(root), "--run-id", "r", "--inline", *extra]


def test_resuming_under_another_input_or_shard_size_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(t.model_dump_json().encode() for t in load_seeds()[:6]) + b"\n")
    assert main(_validate_args(source, tmp_path, "--shard-size", "2")) == 0
    before = (tmp_path / "runs" / "r" / "accepted.jsonl").read_bytes()
    capsys.readouterr()
    assert main(_validate_args(source, tmp_path, "--shard-size", "3")) == 2
    assert "other shard_size" in capsys.readouterr().err
    other = tmp_path / "other.jsonl"
    other.write_bytes(source.read_bytes()[: len(source.read_bytes()) // 2].rsplit(b"\n", 1)[0])
    assert main(_validate_args(other, tmp_path, "--shard-size", "2")) == 2
    assert "other input_sha256" in capsys.readouterr().err
    assert (tmp_path / "runs" / "r" / "accepted.jsonl").read_bytes() == before
    assert main(_validate_args(source, tmp_path, "--shard-size", "2")) == 0  # same: resumes


_HOLDER = """
import sys
import time
from pathlib import Path
from pipeline.runguard import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_process_on_one_run_is_refused_until_the_first_dies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "runs" / "r"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(run)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        source = tmp_path / "in.jsonl"
        source.write_bytes(_with(lambda r: None) + b"\n")
        assert main(_validate_args(source, tmp_path)) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "in use by another process" in err
        assert not (run / "accepted.jsonl").exists()
        with pytest.raises(RunBusy), run_lock(run):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(_validate_args(source, tmp_path)) == 0  # the kernel dropped the dead one's lock


def test_the_lock_is_reentrant_within_one_process(tmp_path: Path) -> None:
    with run_lock(tmp_path / "r"), run_lock(tmp_path / "r"):
        pass
    with run_lock(tmp_path / "r"):
        pass


def test_taking_the_lock_sweeps_what_a_killed_process_left(tmp_path: Path) -> None:
    run = tmp_path / "r"
    (run / "shards").mkdir(parents=True)
    (run / "shards" / ".00001.accepted.jsonl.abc.tmp").write_text("half")
    (run / ".accepted.jsonl.tmp").write_text("half")
    aside = run / ".dataset-old-x1" / "dataset"  # killed between the two renames of a swap
    aside.mkdir(parents=True)
    (aside / "README.md").write_text("the published card")
    (run / ".dataset-new-x2").mkdir()
    (run / "evolved.jsonl").write_text("kept\n")
    with run_lock(run):
        pass
    left = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert left == [".lock", "dataset", "dataset/README.md", "evolved.jsonl", "shards"]
    assert (run / "dataset" / "README.md").read_text() == "the published card"
    assert sweep_leftovers(run) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_replace_folder_swaps_in_the_new_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(jsonl, "_exchange", lambda a, b: False)
    target, built = tmp_path / "dataset", tmp_path / ".dataset-new-1"
    target.mkdir()
    (target / "old.txt").write_text("old")
    built.mkdir()
    (built / "new.txt").write_text("new")
    replace_folder(built, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_a_failed_join_leaves_no_temporary_file(tmp_path: Path) -> None:
    good = tmp_path / "a.jsonl"
    good.write_text("x\n" * 1000)
    with pytest.raises(FileNotFoundError):
        write_parts([good, tmp_path / "missing.jsonl"], tmp_path / "out" / "joined.jsonl")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_full_disk_is_one_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "accepted.jsonl")

    monkeypatch.setattr("pipeline.validate.runner.write_atomic", full)
    source = tmp_path / "in.jsonl"
    source.write_bytes(_with(lambda r: None) + b"\n")
    assert main(_validate_args(source, tmp_path)) == 3
    err = capsys.readouterr().err
    assert "disk is full" in err and "rerun the same command to resume" in err
    assert "Traceback" not in err


def test_run_ids_made_in_one_second_differ() -> None:
    assert len({new_run_id() for _ in range(20)}) == 20


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux)")
def test_a_killed_flow_run_leaves_no_temporary_prefect_server(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [t.model_dump_json() for t in load_seeds()] * 40
    source.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    command = [sys.executable, "-m", "pipeline.cli", "validate", str(source), "--run-id", "r",
               "--output", str(tmp_path), "--shard-size", "50"]  # fmt: skip
    run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        servers: list[int] = []
        while not servers and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.2)
            servers = _children(run.pid)
        assert servers, "validate finished or stalled before starting its Prefect server"
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    deadline = time.monotonic() + 120  # a bound on a stuck server, not a timing claim
    while any(_alive(pid) for pid in servers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in servers), "the temporary server outlived its run"


def test_evolve_counts_a_repeated_seed_id_instead_of_dropping_it(tmp_path: Path) -> None:
    from pipeline.evolve.engine import EvolveSettings, Operator, evolve

    seeds = [t for t in load_seeds() if t.category == "maths"][:2]
    settings = EvolveSettings(rounds=0, operators=[Operator.RENAME])
    counts = evolve([*seeds, seeds[0]], tmp_path / "run", settings).counts
    assert counts.seeds_accepted == 2
    assert counts.seeds_rejected == 1
    rejected = list(read_records(tmp_path / "run" / "evolve_rejected.jsonl", Rejection))
    assert [r.code.value for r in rejected] == ["parse.duplicate_id"]
    # one source for every count: the codes add up to the rejected total, seeds included
    assert counts.rejected_by_code == {"parse.duplicate_id": 1}
    assert sum(counts.rejected_by_code.values()) == counts.rejected


def test_replay_refuses_a_folder_and_names_a_task_it_cannot_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    unknown = _seed_line()
    unknown.update(id="odd", category="nope", envs=["nope"], initial_config={})
    source = tmp_path / "tasks.jsonl"
    source.write_text(json.dumps(_seed_line()) + "\n" + json.dumps(unknown) + "\n")
    assert main(["replay", str(source)]) == 1
    captured = capsys.readouterr()
    assert "odd: cannot replay: unknown environment 'nope'" in captured.err
    assert "replayed 1 tasks" in captured.out
