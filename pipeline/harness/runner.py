"""Running agents over many instances: episodes concurrently, logs, scores and a summary."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from pipeline.harness.oracles import OracleAsync, OracleSync
from pipeline.harness.scoring import EpisodeScore, score_episode
from pipeline.harness.sim import Action, Episode, EpisodeTrace, Mode, Observation
from pipeline.jsonl import write_atomic
from pipeline.models import Instance


class Agent(Protocol):
    name: str

    async def __call__(self, observation: Observation) -> list[Action]: ...


AgentFactory = Callable[[Episode], Agent]

ORACLES: dict[str, AgentFactory] = {"oracle-async": OracleAsync, "oracle-sync": OracleSync}


async def run_episode(
    instance: Instance, make_agent: AgentFactory, mode: Mode, turn_cost: float | None = None,
    measure_turns: bool = False,
) -> tuple[EpisodeTrace, EpisodeScore]:  # fmt: skip
    episode = Episode(instance, mode, turn_cost=turn_cost, measure_turns=measure_turns)
    agent = make_agent(episode)
    trace = await episode.run(agent)
    optimal, sequential = episode.bounds()
    return trace, score_episode(instance, trace, optimal, sequential)


_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def file_stem(instance_id: str) -> str:
    """The name of an instance's log and plots: its id when that is a plain file name (as the
    composed content hashes are), else a cleaned prefix and a hash of the id, so that an id from
    an edited instances file can never point outside the folder (``../x``, ``/etc/x``)."""
    if _PLAIN_NAME.fullmatch(instance_id):
        return instance_id
    digest = hashlib.sha256(instance_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", instance_id)[:40].strip("_")
    return f"{cleaned}-{digest}" if cleaned else digest


def write_log(path: Path, trace: EpisodeTrace, score: EpisodeScore) -> None:
    lines = [json.dumps(event, default=str) for event in trace.events]
    summary = {"event": "score", **score.row(), "label_details": score.label_details}
    lines.append(json.dumps(summary, default=str))
    write_atomic(path, "\n".join(lines) + "\n")


async def run_many(
    instances: Sequence[Instance],
    make_agent: AgentFactory,
    agent_name: str,
    mode: Mode,
    out_dir: Path | None = None,
    concurrency: int = 8,
    turn_cost: float | None = None,
    measure_turns: bool = False,
) -> list[EpisodeScore]:
    limit = asyncio.Semaphore(concurrency)

    async def one(instance: Instance) -> EpisodeScore:
        async with limit:
            trace, score = await run_episode(instance, make_agent, mode, turn_cost, measure_turns)
        if out_dir is not None:
            write_log(out_dir / "episodes" / f"{file_stem(instance.id)}.jsonl", trace, score)
        return score

    return list(await asyncio.gather(*(one(instance) for instance in instances)))


def summarise(scores: Sequence[EpisodeScore], agent: str, mode: Mode) -> dict[str, Any]:
    frame = pd.DataFrame([score.row() for score in scores])
    labels: dict[str, int] = {}
    for score in scores:
        for name in score.labels:
            labels[name] = labels.get(name, 0) + 1
    return {
        "agent": agent,
        "mode": mode.value,
        "episodes": len(scores),
        "task_success": round(float(frame["success"].mean()), 4) if len(frame) else 0.0,
        "subtask_success": round(float(frame["subtasks_solved"].sum() / frame["subtasks"].sum()), 4)
        if len(frame)
        else 0.0,
        "name_f1": round(float(frame["name_f1"].mean()), 4) if len(frame) else 0.0,
        "argument_f1": round(float(frame["argument_f1"].mean()), 4) if len(frame) else 0.0,
        "efficiency": round(float(frame["efficiency"].mean()), 4) if len(frame) else 0.0,
        "overlap": round(float(frame["overlap"].mean()), 4) if len(frame) else 0.0,
        "same_task_streak": round(float(frame["same_task_streak"].mean()), 4)
        if len(frame)
        else 0.0,
        "turns": round(float(frame["turns"].mean()), 2) if len(frame) else 0.0,
        "extra_calls": round(float(frame["extra_calls"].mean()), 3) if len(frame) else 0.0,
        **{f"label_{name}": count for name, count in sorted(labels.items())},
    }


def write_reports(
    out_dir: Path, scores: Sequence[EpisodeScore], summary_rows: list[dict[str, Any]]
) -> None:
    """Per-episode scores and the summary table, as CSV and Markdown."""
    episodes = pd.DataFrame([score.row() for score in scores])
    write_atomic(out_dir / "episodes.csv", episodes.to_csv(index=False))
    table = pd.DataFrame(summary_rows).fillna(0)
    write_atomic(out_dir / "summary.csv", table.to_csv(index=False))
    write_atomic(out_dir / "summary.md", _markdown(table) + "\n")


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
