"""Travel: flights, credit cards, bookings and insurance behind a login (BFCL ``TravelAPI``)."""

from __future__ import annotations

from pipeline.envs.base import EnvState, Environment


class TravelState(EnvState):
    """TODO: the state of the travel environment."""


class Travel(Environment[TravelState]):
    name = "travel"
    state_model = TravelState
    bfcl_class = "TravelAPI"
