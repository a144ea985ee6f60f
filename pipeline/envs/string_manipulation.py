"""String manipulation: case, split/join, replace, bounded regular expressions, padding, counts, slicing."""

from __future__ import annotations

from pipeline.envs.base import EnvState, Environment


class StringManipulationState(EnvState):
    """TODO: the state of the string_manipulation environment."""


class StringManipulation(Environment[StringManipulationState]):
    name = "string_manipulation"
    state_model = StringManipulationState
