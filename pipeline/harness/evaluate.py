"""``asynctool eval``: run one agent in one mode over a split of a dataset's instances.

Writes, under ``<eval_dir>/<agent>-<mode>/``: ``episodes/<instance>.jsonl`` (every event with
simulated and wall time, then the score and the key it was made under), ``episodes.csv``,
``summary.csv`` and ``summary.md`` (the summary row, then what each column means), and
timeline plots of the first few episodes drawn from their logs. ``<eval_dir>/summary.*`` keeps
one row per agent and mode across evaluations, and ``<eval_dir>/plots/<mode>/`` shows every
agent evaluated in that mode on one instance over one shared time axis.

Episodes are played as a sharded stage (:mod:`pipeline.shards`): the instances are cut into
shards of positions, each shard is processed once into ``shards/NNNNN.scores.jsonl`` (its
stats last), the shards' scores are merged in plan order, and the reports, plots and summary
rows are the record. The same shards run inline or as Prefect tasks on threads or Dask
(:func:`pipeline.flows.run_eval_flow`).

A rerun into the same folder reads back every episode already logged under the same key
(agent and model, mode, turn cost, the instance's content) and plays only the others, so an
evaluation killed half-way resumes where it stopped. The episode log is the unit of resume,
finer than a shard and checked against its key, so the ``shards/`` folder is scratch: cleared
when the shards are planned and removed once they are merged.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from pipeline.harness.plot import Timeline, plot_timelines
from pipeline.harness.runner import (
    ORACLES,
    AgentFactory,
    episode_key,
    file_stem,
    log_path,
    logged_score,
    read_log,
    run_many,
    summarise,
    write_reports,
    write_summary,
)
from pipeline.harness.scoring import EpisodeScore
from pipeline.harness.sim import Mode
from pipeline.harness.source import load_instances
from pipeline.jsonl import write_atomic
from pipeline.models import Instance
from pipeline.shards import ShardRunner, ShardSlot, merge_in_order, process_once, run_inline
from pipeline.splits import DEFAULT_TEST_FRACTION

#: instances per shard: enough episodes that one Prefect task's few milliseconds do not matter
DEFAULT_SHARD_SIZE = 100

Say = Callable[[str], None]


def load_split(
    folder: Path, split: str, test_fraction: float = DEFAULT_TEST_FRACTION
) -> list[Instance]:
    """The instances of ``split`` (``all`` for every one) in a dataset folder or a run folder
    (its published dataset when it has one); see ``pipeline.harness.source``."""
    return load_instances(folder, split, test_fraction)


def agent_factory(name: str, llm: Any = None) -> AgentFactory:
    if name in ORACLES:
        return ORACLES[name]
    if name == "openai":
        from pipeline.harness.openai_agent import openai_agent_factory
        from pipeline.llm import LLMClient

        return openai_agent_factory(LLMClient(llm), None)
    raise ValueError(f"unknown agent {name!r}; known: {', '.join([*ORACLES, 'openai'])}")


def agent_key(name: str, llm: Any = None) -> str:
    """The agent as logs and plots name it: a model agent with its model and endpoint."""
    if llm is None or not getattr(llm, "model", None):
        return name
    return f"{name}:{llm.model}@{llm.base_url}"


@dataclass(frozen=True)
class EvalOptions:
    """What an episode's score depends on besides agent and mode: every shard gets it whole, so
    a distributed eval scores and logs exactly as an inline one."""

    turn_cost: float | None = None
    measure_turns: bool = False
    #: read back episodes already logged under the same key instead of playing them again
    resume: bool = True


@dataclass(frozen=True)
class EvalSetup:
    """One evaluation: who plays, in which mode, where the logs go; small and picklable, so it
    travels with each shard to a Dask worker."""

    agent: str
    mode: Mode
    out_dir: Path
    options: EvalOptions = EvalOptions()
    llm: Any = None
    concurrency: int = 8

    def key(self, instance: Instance) -> dict[str, Any]:
        """The key an episode of ``instance`` is logged and read back under."""
        opts = self.options
        name = agent_key(self.agent, self.llm)
        return episode_key(instance, name, self.mode, opts.turn_cost, opts.measure_turns)


class InstanceSource(Protocol):
    """Where a shard reads the instances it plays (it takes its positions of them)."""

    def load(self) -> Sequence[Instance]: ...


@dataclass(frozen=True)
class GivenInstances:
    """Instances already in this process (the inline runner)."""

    instances: tuple[Instance, ...]

    def load(self) -> Sequence[Instance]:
        return self.instances


@dataclass(frozen=True)
class SplitInstances:
    """A split of a dataset or run folder, read by each shard itself: only the folder's path
    crosses to a Dask worker, not the instances."""

    folder: Path
    split: str

    def load(self) -> Sequence[Instance]:
        return load_split(self.folder, self.split)


@dataclass(frozen=True)
class EvalJob:
    index: int
    start: int  # positions start:stop of the instances
    stop: int


@dataclass
class EvalShardStats:
    index: int
    episodes: int
    resumed: int  # of them read back from their logs

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> EvalShardStats:
        return cls(**json.loads(text))


def _shards(out_dir: Path) -> Path:
    return out_dir / "shards"


def logged_scores(instances: Sequence[Instance], setup: EvalSetup) -> list[EpisodeScore | None]:
    """Each instance's score as logged under its key, None where it must be played."""
    if not setup.options.resume:
        return [None] * len(instances)
    return [logged_score(log_path(setup.out_dir, i.id), setup.key(i)) for i in instances]


def play_shard(source: InstanceSource, setup: EvalSetup, job: EvalJob) -> EvalShardStats:
    """One shard of an evaluation (a module-level function: it travels to Dask workers)."""
    slot = ShardSlot(_shards(setup.out_dir), job.index)
    return process_once(slot, EvalShardStats.from_json, lambda: _play(source, setup, job))


def _play(
    source: InstanceSource, setup: EvalSetup, job: EvalJob
) -> tuple[dict[str, str], EvalShardStats]:
    instances = source.load()[job.start : job.stop]
    scores = logged_scores(instances, setup)
    todo = [index for index, score in enumerate(scores) if score is None]
    if todo:
        opts = setup.options
        played = asyncio.run(
            run_many(
                [instances[i] for i in todo],
                agent_factory(setup.agent, setup.llm),
                setup.agent,
                setup.mode,
                setup.out_dir,
                setup.concurrency,
                opts.turn_cost,
                opts.measure_turns,
                agent_key(setup.agent, setup.llm),
            )  # fmt: skip
        )
        for index, score in zip(todo, played, strict=True):
            scores[index] = score
    # the score record that ends each log, so the merged scores rebuild exactly
    lines = "".join(json.dumps(s.record(), default=str) + "\n" for s in scores if s is not None)
    stats = EvalShardStats(job.index, len(scores), len(scores) - len(todo))
    return {"scores": lines}, stats


def play_sharded(
    source: InstanceSource,
    count: int,
    setup: EvalSetup,
    runner: ShardRunner[EvalJob, EvalShardStats],
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> list[EpisodeScore]:
    """Plan shards of ``count`` instances, play them with ``runner``, merge their scores in
    instance order. Shards left by an earlier evaluation are dropped first: what they hold may
    be under another key, and the episode logs already resume it."""
    folder = _shards(setup.out_dir)
    shutil.rmtree(folder, ignore_errors=True)
    jobs = [
        EvalJob(index, start, min(start + shard_size, count))
        for index, start in enumerate(range(0, count, shard_size))
    ]
    runner(partial(play_shard, source, setup), jobs)
    merged = folder / "scores.jsonl"
    merge_in_order([ShardSlot(folder, job.index) for job in jobs], "scores", merged)
    lines = merged.read_text(encoding="utf-8").splitlines() if jobs else []
    shutil.rmtree(folder, ignore_errors=True)
    return [EpisodeScore.from_record(json.loads(line)) for line in lines]


def evaluate(
    instances: list[Instance],
    agent: str,
    mode: Mode,
    out_dir: Path,
    concurrency: int = 8,
    plots: int = 3,
    turn_cost: float | None = None,
    measure_turns: bool = False,
    llm: Any = None,
    scores: list[EpisodeScore] | None = None,
    context: Mapping[str, str] | None = None,
    resume: bool = True,
    say: Say | None = None,
) -> dict[str, Any]:
    """Play the episodes in shards here (or, given ``scores`` from a distributed run, only
    report them): episodes.csv, summary tables and plots of the first ``plots`` episodes.

    ``context`` (e.g. split and source) is recorded in the summary rows; ``say`` hears what a
    user should know (how many episodes were resumed, plots that could not be drawn).
    """
    tell: Say = say or (lambda _: None)
    if scores is None:
        options = EvalOptions(turn_cost, measure_turns, resume)
        setup = EvalSetup(agent, mode, out_dir, options, llm, concurrency)
        done = sum(score is not None for score in logged_scores(instances, setup))
        if done:
            tell(
                f"resuming: {done} of {len(instances)} episodes already scored in {out_dir}; "
                f"playing {len(instances) - done}"
            )
        source = GivenInstances(tuple(instances))
        scores = play_sharded(source, len(instances), setup, run_inline)
    summary = summarise(scores, agent, mode, context)
    write_reports(out_dir, scores, [summary])
    for instance in instances[:plots]:
        _plot_episode(instance, agent_key(agent, llm), mode, out_dir, tell)
    _update_overall(out_dir.parent, summary)
    return summary


def _timeline(path: Path, agent: str | None = None) -> Timeline | None:
    try:
        return Timeline.from_log(read_log(path), agent)
    except (OSError, ValueError, KeyError, TypeError):  # a LogError is a ValueError too
        return None


def _plot_episode(instance: Instance, agent: str, mode: Mode, out_dir: Path, say: Say) -> None:
    """The scored episode's timeline, and every agent's in this mode on one shared axis."""
    stem = file_stem(instance.id)
    own = _timeline(log_path(out_dir, instance.id), agent)
    if own is None:
        say(f"no plot for {instance.id}: its log {log_path(out_dir, instance.id)} is unreadable")
        return
    plot_timelines([own], out_dir / "plots" / stem)
    eval_dir = out_dir.parent
    peers = []
    for folder in sorted(p for p in eval_dir.iterdir() if p.is_dir() and p != out_dir):
        peer = _timeline(log_path(folder, instance.id))
        # the same instance content in the same mode: other versions are not comparable
        if peer and peer.mode == mode.value and peer.instance_sha256 == own.instance_sha256:
            peers.append(peer)
    together = sorted([own, *peers], key=lambda t: t.agent)
    title = f"instance {instance.id} — every agent evaluated in {mode.value} mode, one time axis"
    plot_timelines(together, eval_dir / "plots" / mode.value / stem, title)


def _update_overall(eval_dir: Path, summary: dict[str, Any]) -> None:
    """Keep one summary row per (agent, mode) across evaluations into one folder."""
    store = eval_dir / "summary.json"
    rows: list[dict[str, Any]] = json.loads(store.read_text()) if store.exists() else []
    rows = [r for r in rows if (r["agent"], r["mode"]) != (summary["agent"], summary["mode"])]
    rows.append(summary)
    rows.sort(key=lambda r: (r["agent"], r["mode"]))
    write_atomic(store, json.dumps(rows, indent=2) + "\n")
    write_summary(eval_dir, rows)
