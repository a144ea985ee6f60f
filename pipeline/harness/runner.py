"""Running agents over many instances: episodes concurrently, logs, scores and a summary."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
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


def episode_key(
    instance: Instance, agent: str, mode: Mode, turn_cost: float | None, measure_turns: bool
) -> dict[str, Any]:
    """What decides an episode's outcome; a logged score is reused only under the same key (a
    republished instance with the same id but other content, or another model, runs again)."""
    content = instance.model_dump_json().encode("utf-8", "surrogatepass")
    return {
        "agent": agent,
        "mode": mode.value,
        "turn_cost": turn_cost,
        "measure_turns": measure_turns,
        "instance_sha256": hashlib.sha256(content).hexdigest(),
    }


def write_log(
    path: Path, trace: EpisodeTrace, score: EpisodeScore, key: dict[str, Any] | None = None
) -> None:
    """Every event, then the score (with the key it was made under) as the last line."""
    lines = [json.dumps(event, default=str) for event in trace.events]
    lines.append(json.dumps({"event": "score", **score.record(), "key": key}, default=str))
    write_atomic(path, "\n".join(lines) + "\n")


def read_log(path: Path) -> list[dict[str, Any]]:
    """The events of an episode log (its last line is the score)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def logged_score(path: Path, key: dict[str, Any]) -> EpisodeScore | None:
    """The score of a finished episode logged under ``key``; None when it must (re)run.

    Logs are written whole (temp file, then rename), so a killed run leaves either a complete
    log or none; an unreadable or foreign one is simply run again.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        last = json.loads(lines[-1]) if lines else None
        if not isinstance(last, dict) or last.get("event") != "score" or last.get("key") != key:
            return None
        return EpisodeScore.from_record(last)
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def run_many(
    instances: Sequence[Instance],
    make_agent: AgentFactory,
    agent_name: str,
    mode: Mode,
    out_dir: Path | None = None,
    concurrency: int = 8,
    turn_cost: float | None = None,
    measure_turns: bool = False,
    agent_key: str | None = None,
) -> list[EpisodeScore]:
    """Score every instance, in order, logging each episode under ``out_dir/episodes`` with its
    key (``agent_key`` names the agent there, default its name: give the model too)."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    limit = asyncio.Semaphore(concurrency)

    async def one(instance: Instance) -> EpisodeScore:
        async with limit:
            trace, score = await run_episode(instance, make_agent, mode, turn_cost, measure_turns)
        if out_dir is not None:
            key = episode_key(instance, agent_key or agent_name, mode, turn_cost, measure_turns)
            write_log(log_path(out_dir, instance.id), trace, score, key)
        return score

    return list(await asyncio.gather(*(one(instance) for instance in instances)))


def log_path(out_dir: Path, instance_id: str) -> Path:
    return out_dir / "episodes" / f"{file_stem(instance_id)}.jsonl"


def _mean(frame: pd.DataFrame, column: str, digits: int) -> float:
    return round(float(frame[column].mean()), digits) if len(frame) else 0.0


def summarise(
    scores: Sequence[EpisodeScore],
    agent: str,
    mode: Mode,
    context: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One summary row; ``context`` (e.g. split and source) goes right after agent and mode."""
    frame = pd.DataFrame([score.row() for score in scores])
    labels: dict[str, int] = {}
    for score in scores:
        for name in score.labels:
            labels[name] = labels.get(name, 0) + 1
    subtasks = float(frame["subtasks"].sum()) if len(frame) else 0.0
    return {
        "agent": agent,
        "mode": mode.value,
        **(context or {}),
        "episodes": len(scores),
        "task_success": _mean(frame, "success", 4),
        "subtask_success": round(float(frame["subtasks_solved"].sum()) / subtasks, 4)
        if subtasks
        else 0.0,
        "name_f1": _mean(frame, "name_f1", 4),
        "argument_f1": _mean(frame, "argument_f1", 4),
        # the makespan beside its optimum, so the gap is read off directly
        "makespan": _mean(frame, "makespan", 3),
        "optimal_makespan": _mean(frame, "optimal_makespan", 3),
        "sequential_makespan": _mean(frame, "sequential_makespan", 3),
        "efficiency": _mean(frame, "efficiency", 4),
        "overlap": _mean(frame, "overlap", 4),
        "same_task_streak": _mean(frame, "same_task_streak", 4),
        "turns": _mean(frame, "turns", 2),
        "extra_calls": _mean(frame, "extra_calls", 3),
        **{f"label_{name}": count for name, count in sorted(labels.items())},
    }


#: what each summary column means (and its unit), printed under every summary table
COLUMN_MEANINGS: dict[str, str] = {
    "agent": "the agent evaluated",
    "mode": "latency mode: `clock` (per-tool seconds), `rounds` (every call takes one turn), "
    "`sync` (results arrive as the turn ends)",
    "split": "the split of the dataset evaluated (`train`, `test` or `all`)",
    "source": "where the instances came from (published dataset, Hub repo at a revision, "
    "or a run's unpublished instances.jsonl)",
    "episodes": "instances played, one episode each",
    "task_success": "share of episodes in which every sub-task succeeded (0-1)",
    "subtask_success": "share of all sub-tasks that succeeded: finished, final state equal to "
    "the ground truth's, every requested output delivered (0-1)",
    "name_f1": "mean F1 of the called function names against the ground truth, per task (0-1)",
    "argument_f1": "mean F1 of the (function, argument, value) triples (0-1)",
    "makespan": "mean simulated seconds until the last task was finished (or the episode stopped)",
    "optimal_makespan": "mean shortest possible makespan, in simulated seconds, under the same "
    "mode and turn cost",
    "sequential_makespan": "mean makespan of doing one task after another, one call per turn "
    "(simulated seconds)",
    "efficiency": "mean of optimal over actual makespan; 0 for an unsolved episode (0-1)",
    "overlap": "mean share of the time with calls in flight that the agent spent in turns "
    "rather than idle (0-1)",
    "same_task_streak": "mean run of consecutive calls for one task (1 = switching every call)",
    "turns": "mean agent turns per episode",
    "extra_calls": "mean calls per episode matching no ground-truth call",
}
LABEL_MEANING = "episodes with this failure label (see docs/harness.md)"


def _legend(columns: Sequence[str]) -> list[str]:
    lines = ["Columns:", ""]
    for column in columns:
        meaning = COLUMN_MEANINGS.get(column)
        if meaning is None and column.startswith("label_"):
            meaning = LABEL_MEANING
        if meaning is not None:
            lines.append(f"- `{column}`: {meaning}")
    return lines


def _table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows with different label columns in one frame: a missing count is 0, other gaps blank."""
    frame = pd.DataFrame(list(rows))
    for column in frame.columns:
        if column.startswith("label_"):
            frame[column] = frame[column].fillna(0).astype(int)
    return frame.fillna("")


def write_summary(folder: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """``summary.csv`` and ``summary.md`` (the table, then what each column means)."""
    table = _table(rows)
    write_atomic(folder / "summary.csv", table.to_csv(index=False))
    markdown = [_markdown(table), "", *_legend([str(c) for c in table.columns])]
    write_atomic(folder / "summary.md", "\n".join(markdown) + "\n")


def write_reports(
    out_dir: Path, scores: Sequence[EpisodeScore], summary_rows: list[dict[str, Any]]
) -> None:
    """Per-episode scores and the summary table, as CSV and Markdown."""
    episodes = pd.DataFrame([score.row() for score in scores])
    write_atomic(out_dir / "episodes.csv", episodes.to_csv(index=False))
    write_summary(out_dir, summary_rows)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")  # a path or repo must not split a row


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(_cell(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = [" | ".join(_cell(v) for v in row) for row in frame.itertuples(index=False)]
    rows = [f"| {row} |" for row in rows]
    return "\n".join([header, rule, *rows])
