"""Vehicle control: engine, doors, climate, lights, tyres and navigation (BFCL ``VehicleControlAPI``)."""

from __future__ import annotations

from pipeline.envs.base import EnvState, Environment


class VehicleState(EnvState):
    """TODO: the state of the vehicle environment."""


class Vehicle(Environment[VehicleState]):
    name = "vehicle"
    state_model = VehicleState
    bfcl_class = "VehicleControlAPI"
