"""What an evaluation reports: summary tables that define their columns and show the makespan
beside the optimum, and timelines drawn from the scored episodes (issue 14 item 7, issue 15
item 4)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from matplotlib.text import Text

from pipeline.cli import main
from pipeline.harness import runner
from pipeline.harness.oracles import OracleAsync, OracleSync
from pipeline.harness.plot import LABEL_GID, Timeline, draw_timelines
from pipeline.harness.runner import file_stem, read_log
from pipeline.harness.sim import Episode

pytestmark = pytest.mark.slow  # an evaluated run plotted: seconds


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """The oracles, counting the episodes they are made for."""
    calls = {"oracle-async": 0, "oracle-sync": 0}

    def counting(name: str, oracle: type[OracleAsync] | type[OracleSync]) -> Any:
        def make(episode: Episode) -> OracleAsync | OracleSync:
            calls[name] += 1
            return oracle(episode)

        return make

    monkeypatch.setitem(runner.ORACLES, "oracle-async", counting("oracle-async", OracleAsync))
    monkeypatch.setitem(runner.ORACLES, "oracle-sync", counting("oracle-sync", OracleSync))
    yield calls


def _table(markdown: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    return header, rows


def _episodes(out: Path) -> list[dict[str, str]]:
    with (out / "episodes.csv").open() as handle:
        return list(csv.DictReader(handle))


def _evaluate(run: Path, out: Path, agent: str, *extra: str) -> None:
    argv = ["eval", "--run-dir", str(run), "--agent", agent, "--out", str(out), *extra]
    assert main([*argv, "--limit", "8", "--plots", "3"]) == 0


@pytest.fixture(scope="module")
def evaluated(built_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both oracles on the same eight instances, into one eval folder."""
    out = tmp_path_factory.mktemp("reports") / "eval"
    _evaluate(built_run, out, "oracle-async")
    _evaluate(built_run, out, "oracle-sync")
    return out


def test_summary_defines_its_columns_and_shows_the_optimum(evaluated: Path) -> None:
    for folder in (evaluated / "oracle-sync-clock", evaluated):  # one agent, and the run-wide
        text = (folder / "summary.md").read_text()
        header, rows = _table(text)
        for column in header:
            assert re.search(rf"^- `{column}`: \S", text, re.M), f"{column} is not defined"
        where = header.index("makespan")
        assert header[where + 1] == "optimal_makespan"
        assert {"split", "source", "episodes", "efficiency"} <= set(header)
    header, rows = _table((evaluated / "summary.md").read_text())
    assert [row[header.index("agent")] for row in rows] == ["oracle-async", "oracle-sync"]
    for row in rows:
        episodes = _episodes(evaluated / f"{row[header.index('agent')]}-clock")
        for column in ("makespan", "optimal_makespan"):
            mean = sum(float(e[column]) for e in episodes) / len(episodes)
            assert float(row[header.index(column)]) == pytest.approx(mean, abs=1e-3)
    sync = rows[1]
    assert float(sync[header.index("makespan")]) > float(sync[header.index("optimal_makespan")])


def test_timelines_name_agent_and_mode_and_show_the_scored_episode(evaluated: Path) -> None:
    for agent in ("oracle-async", "oracle-sync"):
        out = evaluated / f"{agent}-clock"
        episodes = _episodes(out)[:3]
        for episode in episodes:
            svg = (out / "plots" / f"{file_stem(episode['instance_id'])}.svg").read_text()
            assert f"{agent} · clock mode" in svg
            assert "optimal makespan" in svg and "sequential makespan" in svg
            # the plot shows the episode that was scored: its makespan and optimum
            makespan, optimal = float(episode["makespan"]), float(episode["optimal_makespan"])
            assert f"makespan {makespan:.2f} s, optimal {optimal:.2f} s" in svg


def test_agents_on_one_instance_share_one_time_axis(evaluated: Path) -> None:
    stem = file_stem(_episodes(evaluated / "oracle-sync-clock")[0]["instance_id"])
    svg = (evaluated / "plots" / "clock" / f"{stem}.svg").read_text()
    assert "oracle-async · clock mode" in svg and "oracle-sync · clock mode" in svg
    timelines = [
        Timeline.from_log(read_log(evaluated / f"{agent}-clock" / "episodes" / f"{stem}.jsonl"))
        for agent in ("oracle-async", "oracle-sync")
    ]
    figure = draw_timelines(timelines)
    fast, slow = figure.axes[0], figure.axes[1]
    assert fast.get_xlim() == slow.get_xlim()
    assert fast.get_shared_x_axes().joined(fast, slow)
    assert fast.get_xlim()[1] >= max(t.makespan for t in timelines)
    # each agent's own plot spans at least the sequential bound, so they line up as well
    alone = [draw_timelines([t]).axes[0].get_xlim() for t in timelines]
    assert alone[0] == alone[1] == fast.get_xlim()


def test_plots_do_not_play_episodes_again(
    built_run: Path, tmp_path: Path, counted: dict[str, int]
) -> None:
    _evaluate(built_run, tmp_path / "eval", "oracle-async")
    assert counted["oracle-async"] == 8  # one per episode; the three plots read the logs
    assert len(list((tmp_path / "eval" / "oracle-async-clock" / "plots").glob("*.png"))) == 3


def _crowded_log(calls: int) -> list[dict[str, Any]]:
    """An episode whose calls start 0.05 s apart in two lanes: names cannot all fit."""
    events: list[dict[str, Any]] = [
        {"event": "start", "sim_time": 0, "instance_id": "crowded", "mode": "clock",
         "turn_cost": 0.05, "task_ids": ["t1", "t2"]},
    ]  # fmt: skip
    for number in range(calls):
        start = number * 0.05
        events.append({"event": "turn", "sim_time": start, "cost": 0.05})
        events.append(
            {"event": "call", "sim_time": start, "call_id": f"c{number}", "status": "pending",
             "task_id": f"t{number % 2 + 1}", "tool": "filesystem.find_by_long_name",
             "started_at": start + 0.05, "eta": start + 0.4},
        )  # fmt: skip
        events.append({"event": "delivery", "sim_time": start + 0.4, "call_id": f"c{number}",
                       "error": "boom" if number % 7 == 0 else None})  # fmt: skip
    end = calls * 0.05 + 0.4
    events += [
        {"event": "finish", "sim_time": end, "task_id": "t1"},
        {"event": "finish", "sim_time": end, "task_id": "t2"},
        {"event": "end", "sim_time": end},
        {"event": "score", "makespan": end, "optimal_makespan": 1.0,
         "sequential_makespan": 30.0, "key": {"agent": "crowd"}},
    ]  # fmt: skip
    return events


def _boxes(texts: list[Text], renderer: Any) -> list[Any]:
    return [text.get_window_extent(renderer) for text in texts]


@pytest.mark.parametrize("calls", [6, 80])
def test_call_names_never_overlap(calls: int, evaluated: Path) -> None:
    real = Timeline.from_log(read_log(next((evaluated / "oracle-sync-clock").glob("*/*.jsonl"))))
    for timeline in (Timeline.from_log(_crowded_log(calls)), real):
        figure = draw_timelines([timeline])
        renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
        labels = [t for t in figure.axes[0].texts if t.get_gid() == LABEL_GID]
        boxes = _boxes(labels, renderer)
        assert all(not a.overlaps(b) for a, b in combinations(boxes, 2))
        frame = figure.axes[0].bbox
        assert all(frame.x0 <= box.x0 and box.x1 <= frame.x1 for box in boxes)
        notes = [t.get_text() for t in figure.texts if "left out" in t.get_text()]
        left_out = int(notes[0].split()[0]) if notes else 0
        assert len(labels) + left_out == len(timeline.bars)
        assert labels, "some names always fit"
    assert Timeline.from_log(_crowded_log(calls)).bars[0].failed
