"""Timelines of episodes, drawn from their logs: tasks as lanes, calls as bars from start to
delivery, turns shaded, finishes marked, and the optimal and sequential makespans as lines.

A plot reads the episode's log (``episodes/<instance>.jsonl``), so it shows the very episode
that was scored — never a second run — and works for episodes a Dask worker or an earlier,
resumed evaluation played. Several agents' episodes of one instance can share one figure and
one time axis (``plot_timelines``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

#: the gid of every call label, so tests (and SVG readers) can find them
LABEL_GID = "call-label"
#: vertical positions tried for a call's label inside its lane before it is left out
_LABEL_OFFSETS = (0.0, 0.19, -0.19)
_FAILED = "#c0392b"


class LogError(ValueError):
    """An episode log that does not describe an episode (no start event or no score)."""


@dataclass(frozen=True)
class Bar:
    task_id: str
    tool: str
    start: float
    end: float
    failed: bool


@dataclass
class Timeline:
    """What a plot needs from one episode; ``from_log`` reads it from the episode's log."""

    instance_id: str
    agent: str
    mode: str
    turn_cost: float
    task_ids: list[str]
    turns: list[tuple[float, float]] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    finished: dict[str, float] = field(default_factory=dict)
    end_time: float = 0.0
    makespan: float = 0.0
    optimal_makespan: float = 0.0
    sequential_makespan: float = 0.0
    instance_sha256: str = ""

    @classmethod
    def from_log(cls, events: Sequence[dict[str, Any]], agent: str | None = None) -> Timeline:
        starts = [e for e in events if e.get("event") == "start"]
        scores = [e for e in events if e.get("event") == "score"]
        if not starts or not scores:
            raise LogError("an episode log needs its start event and its score")
        start, score = starts[0], scores[-1]
        key = score.get("key") or {}
        timeline = cls(
            instance_id=str(start["instance_id"]),
            agent=agent or str(key.get("agent", "unknown agent")),
            mode=str(start["mode"]),
            turn_cost=float(start["turn_cost"]),
            task_ids=[str(t) for t in start["task_ids"]],
            makespan=float(score["makespan"]),
            optimal_makespan=float(score["optimal_makespan"]),
            sequential_makespan=float(score["sequential_makespan"]),
            instance_sha256=str(key.get("instance_sha256", "")),
        )
        timeline._read_events(events)
        return timeline

    def _read_events(self, events: Iterable[dict[str, Any]]) -> None:
        calls: dict[str, dict[str, Any]] = {}
        failed: set[str] = set()
        for event in events:
            kind, time = event.get("event"), float(event.get("sim_time", 0.0))
            if kind == "turn":
                self.turns.append((time, time + float(event["cost"])))
            elif kind == "call" and event.get("status") == "pending":
                calls[str(event["call_id"])] = event
            elif kind == "delivery" and event.get("error") is not None:
                failed.add(str(event["call_id"]))
            elif kind == "finish":
                self.finished[str(event["task_id"])] = time
            elif kind == "end":
                self.end_time = time
        for call_id, call in calls.items():
            start = float(call.get("started_at", call["sim_time"]))
            bar = Bar(str(call["task_id"]), str(call["tool"]), start, float(call["eta"]),
                      call_id in failed)  # fmt: skip
            self.bars.append(bar)
        self.end_time = max([self.end_time, *(t for _, t in self.turns)])

    def time_span(self) -> float:
        """The time the axis must show: the episode, and both makespan bounds."""
        ends = [self.end_time, self.makespan, self.optimal_makespan, self.sequential_makespan]
        return max([*ends, *(bar.end for bar in self.bars), 0.1])


def _overlaps(box: Bbox, placed: Sequence[Bbox]) -> bool:
    return any(box.overlaps(other) for other in placed)


def _label_calls(figure: Figure, axes: Axes, timeline: Timeline, lanes: dict[str, int]) -> int:
    """Name each call inside its bar's lane where the name fits without touching another
    label or leaving the axes: from the bar's start (or, near the right edge, ending at its
    end), in the lane's middle, then just above and below it; a name that fits nowhere is left
    out. Returns how many were left out."""
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    frame = axes.bbox
    placed: list[Bbox] = []
    left_out = 0
    for bar in sorted(timeline.bars, key=lambda b: (lanes.get(b.task_id, -1), b.start)):
        lane = lanes.get(bar.task_id)
        if lane is None:
            continue
        name = bar.tool.split(".", 1)[-1]
        text = axes.text(bar.start, lane, f" {name} ", fontsize=6, va="center", clip_on=True,
                         gid=LABEL_GID)  # fmt: skip
        ends: list[tuple[float, Literal["left", "right"]]] = [
            (bar.start, "left"),
            (bar.end, "right"),
        ]
        spots = [(x, align, lane + dy) for x, align in ends for dy in _LABEL_OFFSETS]
        for x, align, y in spots:
            text.set_position((x, y))
            text.set_horizontalalignment(align)
            box = text.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1
            if inside and not _overlaps(box, placed):
                placed.append(box)
                break
        else:
            text.remove()
            left_out += 1
    return left_out


def _draw_panel(axes: Axes, timeline: Timeline) -> dict[str, int]:
    lanes = {task_id: index for index, task_id in enumerate(timeline.task_ids)}
    for start, end in timeline.turns:
        axes.axvspan(start, end, color="#d9d9d9", alpha=0.6, linewidth=0)
    colours = plt.get_cmap("tab10")
    for bar in timeline.bars:
        lane = lanes.get(bar.task_id)
        if lane is None:
            continue
        colour = _FAILED if bar.failed else colours(lane % 10)
        width = max(bar.end - bar.start, 0.02)
        axes.broken_barh([(bar.start, width)], (lane - 0.3, 0.6), facecolors=colour, alpha=0.6)
    for task_id, finished_at in timeline.finished.items():
        if task_id in lanes:
            axes.plot([finished_at], [lanes[task_id]], marker="D", color="black", markersize=5)
    axes.axvline(timeline.optimal_makespan, color="#1e8449", linestyle="--", linewidth=1.2)
    axes.axvline(timeline.sequential_makespan, color="#7f8c8d", linestyle=":", linewidth=1.2)
    axes.axvline(timeline.makespan, color="black", linewidth=0.8)
    axes.set_yticks(range(len(timeline.task_ids)))
    axes.set_yticklabels(
        [f"task {i + 1}\n{t[:8]}" for i, t in enumerate(timeline.task_ids)], fontsize=7
    )
    axes.set_ylim(-0.6, len(timeline.task_ids) - 0.4)
    axes.set_title(
        f"{timeline.agent} · {timeline.mode} mode · turn {timeline.turn_cost:g} s — "
        f"makespan {timeline.makespan:.2f} s, optimal {timeline.optimal_makespan:.2f} s, "
        f"sequential {timeline.sequential_makespan:.2f} s",
        fontsize=8,
        loc="left",
    )
    return lanes


def _legend(figure: Figure) -> None:
    handles = [
        Patch(color="#d9d9d9", label="agent turn"),
        Patch(color=plt.get_cmap("tab10")(0), alpha=0.6, label="call in flight"),
        Patch(color=_FAILED, alpha=0.6, label="failed call"),
        Line2D([], [], marker="D", color="black", linestyle="", label="task finished"),
        Line2D([], [], color="black", linewidth=0.8, label="makespan"),
        Line2D([], [], color="#1e8449", linestyle="--", label="optimal makespan"),
        Line2D([], [], color="#7f8c8d", linestyle=":", label="sequential makespan"),
    ]
    figure.legend(handles=handles, loc="lower center", ncol=7, fontsize=7, frameon=False)


def draw_timelines(timelines: Sequence[Timeline], title: str = "") -> Figure:
    """One panel per episode, stacked over one shared time axis."""
    if not timelines:
        raise ValueError("nothing to draw: no episodes")
    heights = [1.0 + 0.55 * len(t.task_ids) for t in timelines]
    figure, grid = plt.subplots(
        len(timelines), 1, figsize=(11, sum(heights) + 1.1), sharex=True,
        gridspec_kw={"height_ratios": heights}, squeeze=False,
    )  # fmt: skip
    panels: list[Axes] = [row[0] for row in grid]
    lanes = [_draw_panel(axes, timeline) for axes, timeline in zip(panels, timelines)]
    span = max(timeline.time_span() for timeline in timelines)
    panels[0].set_xlim(0, span * 1.03)
    panels[-1].set_xlabel("simulated time (s)")
    first = timelines[0]
    figure.suptitle(title or f"instance {first.instance_id}", fontsize=9)
    _legend(figure)
    # the layout is fixed before labels are placed: their room is measured on the final axes
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    left_out = sum(
        _label_calls(figure, axes, timeline, lane_map)
        for axes, timeline, lane_map in zip(panels, timelines, lanes)
    )
    if left_out:
        figure.text(0.99, 0.005, f"{left_out} call names left out where bars crowd",
                    fontsize=6, ha="right", va="bottom", color="#555555")  # fmt: skip
    return figure


def save_figure(figure: Figure, stem: Path) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` (with real text, so it can be searched)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    with plt.rc_context({"svg.fonttype": "none"}):
        for path in paths:
            figure.savefig(path, dpi=110)
    plt.close(figure)
    return paths


def plot_timelines(timelines: Sequence[Timeline], stem: Path, title: str = "") -> list[Path]:
    return save_figure(draw_timelines(timelines, title), stem)
