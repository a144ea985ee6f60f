"""Data management: an in-memory table store (create, insert, select, update, delete, sort, group, join, export)."""

from __future__ import annotations

from pipeline.envs.base import EnvState, Environment


class DataManagementState(EnvState):
    """TODO: the state of the data_management environment."""


class DataManagement(Environment[DataManagementState]):
    name = "data_management"
    state_model = DataManagementState
