"""``asynctool eval``: run one agent in one mode over a split of a dataset's instances.

Writes, under ``<eval_dir>/<agent>-<mode>/``: ``episodes/<instance>.jsonl`` (every event with
simulated and wall time, then the score and the key it was made under), ``episodes.csv``,
``summary.csv`` and ``summary.md`` (the summary row, then what each column means), and
timeline plots of the first few episodes drawn from their logs. ``<eval_dir>/summary.*`` keeps
one row per agent and mode across evaluations, and ``<eval_dir>/plots/<mode>/`` shows every
agent evaluated in that mode on one instance over one shared time axis.

A rerun into the same folder reads back every episode already logged under the same key
(agent and model, mode, turn cost, the instance's content) and plays only the others, so an
evaluation killed half-way resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

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
from pipeline.splits import DEFAULT_TEST_FRACTION

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


def play_episodes(
    instances: Sequence[Instance], agent: str, mode: Mode, out_dir: Path, concurrency: int,
    turn_cost: float | None, measure_turns: bool, llm: Any, resume: bool, say: Say,
) -> list[EpisodeScore]:  # fmt: skip
    """Every instance's score, read back from its log when it was already played under the
    same key (``resume``), else played now. A shard of a distributed eval runs it too, so
    both resume alike."""
    key_name = agent_key(agent, llm)
    scores: list[EpisodeScore | None] = [None] * len(instances)
    if resume:
        for index, instance in enumerate(instances):
            key = episode_key(instance, key_name, mode, turn_cost, measure_turns)
            scores[index] = logged_score(log_path(out_dir, instance.id), key)
    todo = [index for index, score in enumerate(scores) if score is None]
    if len(todo) < len(instances):
        say(
            f"resuming: {len(instances) - len(todo)} of {len(instances)} episodes already "
            f"scored in {out_dir}; playing {len(todo)}"
        )
    if todo:
        played = asyncio.run(
            run_many(
                [instances[i] for i in todo],
                agent_factory(agent, llm),
                agent,
                mode,
                out_dir,
                concurrency,
                turn_cost,
                measure_turns,
                key_name,
            )  # fmt: skip
        )
        for index, score in zip(todo, played):
            scores[index] = score
    return [score for score in scores if score is not None]


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
    """Run (or, given ``scores`` from a distributed run, only report) the episodes.

    ``context`` (e.g. split and source) is recorded in the summary rows; ``say`` hears what a
    user should know (how many episodes were resumed, plots that could not be drawn).
    """
    tell: Say = say or (lambda _: None)
    if scores is None:
        scores = play_episodes(
            instances, agent, mode, out_dir, concurrency, turn_cost, measure_turns, llm,
            resume, tell,
        )  # fmt: skip
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
