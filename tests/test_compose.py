"""Composition: instance shapes, splits, distinct tasks, latency tables and bounds."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from pipeline.compose import ComposeSettings, LatencyProfile, compose, latency_table
from pipeline.evolve.engine import EvolveSettings, evolve
from pipeline.jsonl import read_records
from pipeline.models import Composition, Task
from pipeline.seeds import load_seeds
from pipeline.splits import root_ancestors, split_of


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> list[Task]:
    run = tmp_path_factory.mktemp("evolve") / "run"
    evolve(load_seeds(), run, EvolveSettings(rounds=1))
    return list(read_records(run / "evolved.jsonl", Task))


def test_instances_follow_the_rules(pool: list[Task]) -> None:
    settings = ComposeSettings(count=400, seed=3)
    report = compose(pool, settings)
    assert len(report.instances) == 400
    roots = root_ancestors(pool)
    shapes = Counter()
    for instance in report.instances:
        tasks = instance.tasks
        assert 2 <= len(tasks) <= 3
        assert len({roots[t.id] for t in tasks}) == len(tasks), "tasks come from different seeds"
        assert len({t.question for t in tasks}) == len(tasks)
        assert len({split_of(roots[t.id], settings.test_fraction) for t in tasks}) == 1
        categories = {t.category for t in tasks}
        if instance.composition is Composition.SAME_CATEGORY:
            assert len(categories) == 1
        else:
            assert len(categories) == len(tasks)
        assert set(instance.latency) == {call.tool for t in tasks for call in t.calls}
        assert all(value >= 0 for value in instance.latency.values())
        assert 0 < instance.bounds.optimal_makespan <= instance.bounds.sequential_makespan
        shapes[(instance.composition, len(tasks), instance.latency_profile)] += 1
    assert len({i.id for i in report.instances}) == 400
    # every combination of composition, size and profile occurs
    assert len(shapes) == 2 * 2 * 3
    assert 0.1 < report.per_split.get("test", 0) / 400 < 0.35


def test_composition_is_deterministic_and_configurable(pool: list[Task]) -> None:
    first = compose(pool, ComposeSettings(count=50, seed=9))
    again = compose(pool, ComposeSettings(count=50, seed=9))
    assert [i.id for i in first.instances] == [i.id for i in again.instances]
    other = compose(pool, ComposeSettings(count=50, seed=10))
    assert [i.id for i in first.instances] != [i.id for i in other.instances]
    only_pairs = compose(
        pool, ComposeSettings(count=60, three_task_share=0.0, cross_category_share=1.0)
    )
    assert all(
        len(i.tasks) == 2 and i.composition is Composition.CROSS_CATEGORY
        for i in only_pairs.instances
    )
    with pytest.raises(ValueError):
        ComposeSettings(profiles={"warp-speed": 1.0})


def test_latency_profiles() -> None:
    tools = ["filesystem.cd", "trading.place_order", "maths.add"]
    defaults = latency_table(tools, LatencyProfile.DEFAULTS, random.Random(0), 1.0)
    rounds = latency_table(tools, LatencyProfile.PAPER_ROUNDS, random.Random(0), 1.0)
    uniform = latency_table(tools, LatencyProfile.UNIFORM, random.Random(0), 1.0)
    assert set(rounds.values()) == {1.0}
    for tool in tools:
        assert 0.5 * defaults[tool] - 1e-3 <= uniform[tool] <= 1.5 * defaults[tool] + 1e-3
    assert latency_table(tools, LatencyProfile.LOGNORMAL, random.Random(1), 1.0) == latency_table(
        tools, LatencyProfile.LOGNORMAL, random.Random(1), 1.0
    )


def test_new_categories_mix_with_the_bfcl_ones(pool: list[Task]) -> None:
    own = {"data_management", "data_generation", "string_manipulation", "data_format"}
    report = compose(pool, ComposeSettings(count=300, seed=2, cross_category_share=1.0))
    mixed = [
        i
        for i in report.instances
        if {t.category for t in i.tasks} & own and {t.category for t in i.tasks} - own
    ]
    assert len(mixed) > 30


@pytest.mark.slow
def test_compose_on_dask_matches_inline(
    pool: list[Task], tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> None:
    from pipeline.cli import main
    from pipeline.jsonl import write_records

    run = tmp_path_factory.mktemp("compose-run")
    write_records(run / "evolved.jsonl", pool)
    base = ["compose", "--run-dir", str(run), "--count", "150", "--seed", "4"]
    assert main(base) == 0
    inline = (run / "instances.jsonl").read_bytes()
    assert main([*base, "--runner", "dask"]) == 0
    assert (run / "instances.jsonl").read_bytes() == inline
