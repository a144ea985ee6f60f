"""Data generation: deterministic generators seeded from the state (sequences, records, ids, dates, choices)."""

from __future__ import annotations

from pipeline.envs.base import EnvState, Environment


class DataGenerationState(EnvState):
    """TODO: the state of the data_generation environment."""


class DataGeneration(Environment[DataGenerationState]):
    name = "data_generation"
    state_model = DataGenerationState
