"""A freshly built dataset (evolve, then compose) shared by the harness tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.compose import ComposeSettings, compose
from pipeline.evolve.engine import EvolveSettings, evolve
from pipeline.jsonl import read_records, write_records
from pipeline.models import Instance, Task
from pipeline.seeds import load_seeds


@pytest.fixture(scope="session")
def built_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("harness") / "run"
    evolve(load_seeds(), run, EvolveSettings(rounds=1))
    tasks = list(read_records(run / "evolved.jsonl", Task))
    write_records(
        run / "instances.jsonl", compose(tasks, ComposeSettings(count=300, seed=5)).instances
    )
    return run


@pytest.fixture(scope="session")
def instances(built_run: Path) -> list[Instance]:
    return list(read_records(built_run / "instances.jsonl", Instance))
