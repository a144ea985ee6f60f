"""``asynctool eval``: run one agent in one mode over a split of a run's instances.

Writes, under ``<run_dir>/eval/<agent>-<mode>/``: ``episodes/<instance>.jsonl`` (every event
with simulated and wall time, then the score), ``episodes.csv``, ``summary.csv`` and
``summary.md`` (one row per agent and mode; rows of earlier evaluations of the same run are kept
in ``<run_dir>/eval/summary.*``), and timeline plots for the first few episodes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.harness.plot import plot_timeline
from pipeline.harness.runner import (
    ORACLES,
    AgentFactory,
    file_stem,
    run_episode,
    run_many,
    summarise,
    write_reports,
)
from pipeline.harness.scoring import EpisodeScore
from pipeline.harness.sim import Mode
from pipeline.jsonl import read_records, write_atomic
from pipeline.models import Instance, Task
from pipeline.splits import DEFAULT_TEST_FRACTION, root_ancestors, split_of


def load_split(
    run_dir: Path, split: str, test_fraction: float = DEFAULT_TEST_FRACTION
) -> list[Instance]:
    """The run's instances whose tasks descend from seeds of ``split`` (``all`` for every one)."""
    instances = list(read_records(run_dir / "instances.jsonl", Instance))
    if split == "all":
        return instances
    pool: list[Task] = list(read_records(run_dir / "evolved.jsonl", Task))
    # instance tasks join the lineage too: a long-context variant descends from a pool task
    roots = root_ancestors([*pool, *(task for i in instances for task in i.tasks)])
    return [
        i
        for i in instances
        if split_of(roots.get(i.tasks[0].id, i.tasks[0].id), test_fraction).value == split
    ]


def agent_factory(name: str, llm: Any = None) -> AgentFactory:
    if name in ORACLES:
        return ORACLES[name]
    if name == "openai":
        from pipeline.harness.openai_agent import openai_agent_factory
        from pipeline.llm import LLMClient

        return openai_agent_factory(LLMClient(llm), None)
    raise ValueError(f"unknown agent {name!r}; known: {', '.join([*ORACLES, 'openai'])}")


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
) -> dict[str, Any]:
    """Run (or, given ``scores`` from a distributed run, only report) the episodes."""
    make_agent = agent_factory(agent, llm)
    if scores is None:
        scores = asyncio.run(
            run_many(
                instances, make_agent, agent, mode, out_dir, concurrency, turn_cost, measure_turns
            )
        )
    summary = summarise(scores, agent, mode)
    write_reports(out_dir, scores, [summary])
    for instance in instances[:plots]:
        trace, _ = asyncio.run(run_episode(instance, make_agent, mode, turn_cost, measure_turns))
        stem = out_dir / "plots" / file_stem(instance.id)
        plot_timeline(trace, [t.id for t in instance.tasks], stem)
    _update_overall(out_dir.parent, summary)
    return summary


def _update_overall(eval_dir: Path, summary: dict[str, Any]) -> None:
    """Keep one summary row per (agent, mode) across evaluations of a run."""
    store = eval_dir / "summary.json"
    rows: list[dict[str, Any]] = json.loads(store.read_text()) if store.exists() else []
    rows = [r for r in rows if (r["agent"], r["mode"]) != (summary["agent"], summary["mode"])]
    rows.append(summary)
    rows.sort(key=lambda r: (r["agent"], r["mode"]))
    write_atomic(store, json.dumps(rows, indent=2) + "\n")
    table = pd.DataFrame(rows).fillna(0)
    write_atomic(eval_dir / "summary.csv", table.to_csv(index=False))
    header = "| " + " | ".join(table.columns) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    write_atomic(eval_dir / "summary.md", "\n".join([header, rule, *body]) + "\n")
