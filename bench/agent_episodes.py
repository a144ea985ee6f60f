"""Summarise the ``openai`` agent's episodes of an evaluation: one row per episode and a total.

    .venv/bin/python bench/agent_episodes.py output/runs/<run>/eval/openai-clock [--markdown]

Read from the episode logs only (``episodes/*.jsonl``): the score, the agent's ``agent`` event
(requests, tokens, seconds waited for the model, context overflows, trims, echoes, stopped
repeats and running copies) and its ``model_reply`` events (which path each reply's calls came
back on: ``native`` tool calls, or the text fallback — ``tagged``, ``json``, ``lines`` — or
``none``). Episode seconds are the log's wall time at its end, so a replay from the cache says
about 0 s; the agent's ``seconds`` are what it waited for answers when they were made.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

PATHS = ("native", "tagged", "json", "lines", "none")
COUNTS = ("context_overflows", "trims", "echoes", "repeated_calls", "running_copies")


def episode_row(path: Path) -> dict[str, Any] | None:
    """One episode's row, or None while its log has no score (still being played)."""
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    score = next((e for e in events if e["event"] == "score"), None)
    agent = next((e for e in events if e["event"] == "agent"), None)
    if score is None or agent is None:
        return None
    replies = Counter(e.get("path", "none") for e in events if e["event"] == "model_reply")
    end = next((e for e in events if e["event"] == "end"), {})
    stopped = next((e["message"] for e in events if e["event"] == "agent_stopped"), "")
    return {
        "instance": score["instance_id"],
        "subtasks": f"{score['subtasks_solved']}/{score['subtasks']}",
        "solved": score["subtasks_solved"],
        "of": score["subtasks"],
        "name_f1": score["name_f1"],
        "argument_f1": score["argument_f1"],
        "labels": score["labels"] or "-",
        "calls": score["calls"],
        "paths": ", ".join(f"{n} {p}" for p in PATHS if (n := replies.get(p, 0))) or "-",
        "replies": dict(replies),
        "requests": agent.get("requests", 0),
        "prompt_tokens": agent.get("prompt_tokens", 0),
        "completion_tokens": agent.get("completion_tokens", 0),
        "model_seconds": agent.get("seconds", 0.0),
        "episode_seconds": round(float(end.get("wall_time", 0.0)), 1),
        "tools": agent.get("tools", ""),
        **{name: agent.get(name, 0) for name in COUNTS},
        "stopped": stopped,
    }


def rows_of(folder: Path) -> list[dict[str, Any]]:
    rows = [episode_row(path) for path in sorted((folder / "episodes").glob("*.jsonl"))]
    return [row for row in rows if row is not None]


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| instance | sub-tasks solved | name F1 | argument F1 | failure labels | reply paths"
        " | replies (sent now) | tokens (prompt + completion) | model s |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    lines = [head]
    for row in rows:
        lines.append(
            f"| {row['instance'][:8]} | {row['subtasks']} | {row['name_f1']:.2f}"
            f" | {row['argument_f1']:.2f} | {row['labels'].replace(',', ', ')} | {row['paths']}"
            f" | {sum(row['replies'].values())} ({row['requests']})"
            f" | {row['prompt_tokens']:,} + {row['completion_tokens']:,}"
            f" | {row['model_seconds']:.0f} |"
        )
    if rows:
        paths: Counter[str] = Counter()
        for row in rows:
            paths.update(row["replies"])
        mean = sum(r["name_f1"] for r in rows) / len(rows)
        argument = sum(r["argument_f1"] for r in rows) / len(rows)
        lines.append(
            f"| **all {len(rows)}** | {sum(r['solved'] for r in rows)}/{sum(r['of'] for r in rows)}"
            f" | {mean:.2f} | {argument:.2f} | |"
            f" {', '.join(f'{paths[p]} {p}' for p in PATHS if paths[p])}"
            f" | {sum(sum(r['replies'].values()) for r in rows)}"
            f" ({sum(r['requests'] for r in rows)})"
            f" | {sum(r['prompt_tokens'] for r in rows):,} +"
            f" {sum(r['completion_tokens'] for r in rows):,}"
            f" | {sum(r['model_seconds'] for r in rows):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="an evaluation's <agent>-<mode> folder")
    parser.add_argument("--markdown", action="store_true", help="a table instead of JSON lines")
    args = parser.parse_args(argv)
    if not (args.folder / "episodes").is_dir():
        print(f"error: {args.folder} has no episodes/ folder", file=sys.stderr)
        return 1
    rows = rows_of(args.folder)
    if args.markdown:
        print(markdown(rows))
    else:
        for row in rows:
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
