"""Timeline of one episode: tasks as lanes, calls as bars from start to delivery, turns shaded."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

from pipeline.harness.sim import EpisodeTrace  # noqa: E402


def plot_timeline(
    trace: EpisodeTrace, task_ids: list[str], stem: Path, title: str = ""
) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.svg``; returns the paths."""
    lanes = {task_id: index for index, task_id in enumerate(task_ids)}
    height = 1.2 + 0.7 * len(task_ids)
    figure, axes = plt.subplots(figsize=(10, height))
    for start, end in trace.turns:
        axes.axvspan(start, end, color="#d9d9d9", alpha=0.6, linewidth=0)
    colours = plt.get_cmap("tab10")
    for call in trace.calls:
        lane = lanes.get(call.task_id)
        if lane is None or call.delivered_at is None:
            continue
        width = max(call.delivered_at - call.started_at, 0.02)
        colour = "#c0392b" if call.error else colours(lane % 10)
        axes.broken_barh(
            [(call.started_at, width)], (lane - 0.3, 0.6), facecolors=colour, alpha=0.85
        )
        axes.text(call.started_at, lane, call.tool.split(".", 1)[1], fontsize=6, va="center")
    for task_id, (finished_at, _) in trace.finished.items():
        if task_id in lanes:
            axes.plot([finished_at], [lanes[task_id]], marker="D", color="black", markersize=5)
    axes.set_yticks(range(len(task_ids)))
    axes.set_yticklabels([f"task {i + 1}\n{t[:8]}" for i, t in enumerate(task_ids)], fontsize=7)
    axes.set_xlabel("simulated time (s) — grey: agent turns, bars: calls in flight, ◆: finished")
    axes.set_xlim(0, max(trace.end_time, 0.1) * 1.02)
    axes.set_ylim(-0.6, len(task_ids) - 0.4)
    axes.set_title(title or f"episode {trace.instance_id} ({trace.mode.value})", fontsize=9)
    figure.tight_layout()
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        figure.savefig(path, dpi=110)
    plt.close(figure)
    return paths
