"""An evaluation killed half-way resumes: finished episodes are read back from their logs and
only the others are played; a log made under other settings is never reused (issue 15)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.harness import runner
from pipeline.harness.evaluate import load_split
from pipeline.harness.oracles import OracleSync
from pipeline.harness.sim import Episode

REPO = Path(__file__).resolve().parents[2]

#: the CLI with an oracle that thinks for 50 ms a turn, so that a kill lands mid-evaluation
SLOW_EVAL = """
import asyncio, sys
from pipeline.cli import main
from pipeline.harness import runner
from pipeline.harness.evaluate import load_split
from pipeline.harness.oracles import OracleSync

class Slow(OracleSync):
    async def __call__(self, observation):
        await asyncio.sleep(0.05)
        return await super().__call__(observation)

runner.ORACLES["oracle-sync"] = Slow
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def run_dir(built_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    for name in ("evolved.jsonl", "instances.jsonl"):
        shutil.copy(built_run / name, run / name)
    return run


@pytest.fixture
def played(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Instance ids the oracle-sync agent is made for, in order."""
    ids: list[str] = []

    def make(episode: Episode) -> OracleSync:
        ids.append(episode.instance.id)
        return OracleSync(episode)

    monkeypatch.setitem(runner.ORACLES, "oracle-sync", make)
    yield ids


def _argv(run: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--run-dir", str(run), "--agent", "oracle-sync", "--out", str(out),
            "--concurrency", "1", "--plots", "1", *extra]  # fmt: skip


def _logs(out: Path) -> list[Path]:
    return sorted((out / "oracle-sync-clock" / "episodes").glob("*.jsonl"))


@pytest.mark.slow
def test_a_killed_evaluation_resumes_where_it_stopped(
    run_dir: Path, tmp_path: Path, played: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_EVAL, *_argv(run_dir, out)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300  # a bound on a stuck child, not a timing claim
        while len(_logs(out)) < 3 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        _, err = child.communicate()
    assert child.returncode == -signal.SIGKILL, err.decode()
    done = len(_logs(out))
    capsys.readouterr()

    assert main(_argv(run_dir, out)) == 0
    total = len(played) + done
    assert f"resuming: {done} of {total} episodes already scored" in capsys.readouterr().err
    assert len(played) == total - done < total
    assert len(_logs(out)) == total

    # the resumed evaluation reports exactly what one uninterrupted evaluation does
    assert main(_argv(run_dir, tmp_path / "whole")) == 0
    resumed = (out / "oracle-sync-clock" / "episodes.csv").read_text()
    assert resumed == (tmp_path / "whole" / "oracle-sync-clock" / "episodes.csv").read_text()


@pytest.mark.slow
def test_only_a_log_made_under_the_same_settings_is_reused(
    run_dir: Path, tmp_path: Path, played: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    assert main(_argv(run_dir, out, "--limit", "4")) == 0
    assert len(played) == 4
    assert main(_argv(run_dir, out, "--limit", "4")) == 0
    assert len(played) == 4, "nothing is played twice"
    assert "resuming: 4 of 4" in capsys.readouterr().err
    assert main(_argv(run_dir, out, "--limit", "4", "--turn-cost", "2")) == 0
    assert len(played) == 8, "another turn cost is another episode"
    assert main(_argv(run_dir, out, "--limit", "4", "--turn-cost", "2", "--fresh")) == 0
    assert len(played) == 12, "--fresh plays every episode again"
    # a log cut short (no score line) is played again
    first = _logs(out)[0]
    lines = first.read_text().splitlines()
    first.write_text("\n".join(lines[:-1]) + "\n")
    assert main(_argv(run_dir, out, "--limit", "4", "--turn-cost", "2")) == 0
    assert len(played) == 13
    # so is an instance whose content changed under the same id (a republished release)
    changed = load_split(run_dir, "test")[1]
    tool = next(iter(changed.latency))
    edited = changed.model_copy(update={"latency": {**changed.latency, tool: 9.5}})
    lines = (run_dir / "instances.jsonl").read_text().splitlines()
    mine = f'{{"id":"{changed.id}"'
    lines = [edited.model_dump_json() if line.startswith(mine) else line for line in lines]
    (run_dir / "instances.jsonl").write_text("\n".join(lines) + "\n")
    assert main(_argv(run_dir, out, "--limit", "4", "--turn-cost", "2")) == 0
    assert played[13:] == [changed.id]


@pytest.mark.slow
def test_a_distributed_evaluation_resumes_too(
    run_dir: Path, tmp_path: Path, played: list[str], prefect_harness: None
) -> None:
    """The Prefect runner's shards read back logged episodes as the inline runner does (its
    threads share this process, so the counting oracle sees every episode played)."""
    out = tmp_path / "eval"
    argv = [*_argv(run_dir, out), "--runner", "threads"]
    assert main(argv) == 0
    total = len(played)
    assert total > 0 and len(_logs(out)) == total
    assert main(argv) == 0
    assert len(played) == total, "a rerun of a finished distributed evaluation plays nothing"
    assert main([*argv, "--fresh"]) == 0
    assert len(played) == 2 * total, "--fresh plays every episode again"
    # it reports what the inline runner does
    assert main(_argv(run_dir, tmp_path / "inline")) == 0
    distributed = (out / "oracle-sync-clock" / "episodes.csv").read_text()
    assert distributed == (tmp_path / "inline" / "oracle-sync-clock" / "episodes.csv").read_text()


def test_shards_left_by_a_killed_evaluation_are_not_read_back(
    run_dir: Path, tmp_path: Path, played: list[str]
) -> None:
    """Eval's shards are scratch: the episode logs carry its resume, checked against their key,
    so a shard a killed evaluation left (perhaps under other settings) is planned away, and a
    finished evaluation leaves none."""
    out = tmp_path / "eval"
    assert main(_argv(run_dir, out, "--limit", "4")) == 0
    folder = out / "oracle-sync-clock"
    shards = folder / "shards"
    assert not shards.exists()
    whole = (folder / "episodes.csv").read_text()
    shards.mkdir()
    (shards / "00000.scores.jsonl").write_text("")
    (shards / "00000.stats.json").write_text('{"index": 0, "episodes": 0, "resumed": 0}')
    assert main(_argv(run_dir, out, "--limit", "4")) == 0
    assert len(played) == 4, "the logs resume every episode"
    assert (folder / "episodes.csv").read_text() == whole
    assert not shards.exists()
