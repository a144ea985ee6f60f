"""Data formats: JSON, CSV, key/value and Markdown tables; parse, validate, pretty-print, flatten."""

from __future__ import annotations

from pipeline.envs.base import EnvState, Environment


class DataFormatState(EnvState):
    """TODO: the state of the data_format environment."""


class DataFormat(Environment[DataFormatState]):
    name = "data_format"
    state_model = DataFormatState
