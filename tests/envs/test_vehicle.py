"""The vehicle environment (BFCL ``VehicleControlAPI``): behaviour, errors, RNG, schema."""

from __future__ import annotations

from typing import Any

import pytest
from envcheck import refusal

from pipeline.envs import ToolError
from pipeline.envs.vehicle import Vehicle

ALL_DOORS = ["driver", "passenger", "rear_left", "rear_right"]


def make(**state: Any) -> Vehicle:
    env = Vehicle.from_state(state)
    assert isinstance(env, Vehicle)
    return env


def ready_to_start(**state: Any) -> Vehicle:
    env = make(fuelLevel=20.0, **state)
    env.invoke("lockDoors", {"unlock": False, "door": ALL_DOORS})
    env.invoke("pressBrakePedal", {"pedalPosition": 1.0})
    return env


# ----- defaults and upstream configs -------------------------------------------------------
def test_defaults_match_upstream() -> None:
    state = make().bfcl_state()
    assert state["fuelLevel"] == 0.0
    assert state["engine_state"] == "stopped"
    assert state["remainingUnlockedDoors"] == 4
    assert state["doorStatus"] == dict.fromkeys(ALL_DOORS, "unlocked")
    assert state["destination"] == "None"
    assert state["long_context"] is False
    hidden = {"random_seed", "rng_words", "parkingBrakeForce", "slopeAngle", "brakePedalForce"}
    assert not hidden & set(state)


def test_from_bfcl_config_renames_and_derives() -> None:
    env = Vehicle.from_bfcl_config(
        {
            "engineState": "running",
            "doorStatus": {
                "driver": "locked",
                "passenger": "unlocked",
                "rear_left": "locked",
                "rear_right": "unlocked",
            },
            "remainingUnlockedDoors": 0,  # upstream recomputes this from the locks
            "parkingBrakeForce": 15.3,
            "slopeAngle": 10.0,
        }
    )
    assert env.state.engine_state == "running"
    assert env.state.remainingUnlockedDoors == 2
    assert env.invoke("displayCarStatus", {"option": "parkingBrake"}) == {
        "parkingBrakeStatus": "released",
        "parkingBrakeForce": 15.3,
        "slopeAngle": 10.0,
    }
    with pytest.raises(ValueError, match="unknown"):
        Vehicle.from_bfcl_config({"warpDrive": True})


def test_inconsistent_state_is_rejected() -> None:
    with pytest.raises(ValueError, match="remainingUnlockedDoors"):
        Vehicle.from_state({"remainingUnlockedDoors": 1})


# ----- engine, doors, brakes ---------------------------------------------------------------
def test_start_engine_needs_locked_doors_and_full_brake() -> None:
    env = make(fuelLevel=20.0)
    refusal(env, "startEngine", {"ignitionMode": "START"}, "rear_right")
    assert env.invoke("lockDoors", {"unlock": False, "door": ALL_DOORS}) == {
        "lockStatus": "locked",
        "remainingUnlockedDoors": 0,
    }
    refusal(env, "startEngine", {"ignitionMode": "START"}, "brake pedal")
    env.invoke("pressBrakePedal", {"pedalPosition": 0.4})
    refusal(env, "startEngine", {"ignitionMode": "START"}, "fully")
    assert env.invoke("pressBrakePedal", {"pedalPosition": 1.0}) == {
        "brakePedalStatus": "pressed",
        "brakePedalForce": 1000.0,
    }
    assert env.invoke("startEngine", {"ignitionMode": "START"}) == {
        "engineState": "running",
        "fuelLevel": 20.0,
        "batteryVoltage": 12.6,
    }
    refusal(env, "startEngine", {"ignitionMode": "START"}, "already running")
    assert env.invoke("startEngine", {"ignitionMode": "STOP"})["engineState"] == "stopped"


def test_empty_tank_blocks_start() -> None:
    env = ready_to_start()
    env.state.fuelLevel = 0.0
    refusal(env, "startEngine", {"ignitionMode": "START"}, "empty")


def test_lock_doors_counts_unlocked() -> None:
    env = make(doorStatus=dict.fromkeys(ALL_DOORS, "locked"))
    assert env.state.remainingUnlockedDoors == 0
    result = env.invoke("lockDoors", {"unlock": True, "door": ["driver", "driver", "rear_left"]})
    assert result == {"lockStatus": "unlocked", "remainingUnlockedDoors": 2}
    assert env.state.doorStatus.driver == "unlocked"
    refusal(env, "lockDoors", {"unlock": True, "door": ["trunk"]}, "door")


def test_fill_fuel_limits() -> None:
    env = make(fuelLevel=10.0)
    assert env.invoke("fillFuelTank", {"fuelAmount": 39.5}) == {"fuelLevel": 49.5}
    refusal(env, "fillFuelTank", {"fuelAmount": 1.0}, "room for 0.5")
    refusal(env, "fillFuelTank", {"fuelAmount": -2.0}, "positive")
    refusal(env, "fillFuelTank", {"fuelAmount": float("nan")}, "finite")


def test_brakes_and_parking_brake() -> None:
    env = make()
    refusal(env, "pressBrakePedal", {"pedalPosition": 1.5}, "between 0 and 1")
    assert env.invoke("activateParkingBrake", {"mode": "engage"}) == {
        "parkingBrakeStatus": "engaged",
        "_parkingBrakeForce": 500.0,
        "_slopeAngle": 10.0,
    }
    env.invoke("pressBrakePedal", {"pedalPosition": 0.5})
    assert env.invoke("displayCarStatus", {"option": "brakePedal"}) == {
        "brakePedalStatus": "pressed",
        "brakePedalForce": 500.0,
    }
    assert env.invoke("releaseBrakePedal", {}) == {
        "brakePedalStatus": "released",
        "brakePedalForce": 0.0,
    }
    assert env.invoke("activateParkingBrake", {"mode": "release"})["parkingBrakeStatus"] == (
        "released"
    )


# ----- driving aids, climate, lights -------------------------------------------------------
def test_cruise_control_needs_running_engine_and_valid_speed() -> None:
    env = ready_to_start()
    args = {"speed": 65.0, "activate": True, "distanceToNextVehicle": 40.0}
    refusal(env, "setCruiseControl", args, "start the engine")
    env.invoke("startEngine", {"ignitionMode": "START"})
    bad = {**args, "speed": 62.0}
    refusal(env, "setCruiseControl", bad, "multiple of 5")
    assert env.invoke("setCruiseControl", args) == {
        "cruiseStatus": "active",
        "currentSpeed": 65.0,
        "distanceToNextVehicle": 40.0,
    }
    assert env.state.distanceToNextVehicle == 40.0


def test_climate_control_converts_fahrenheit() -> None:
    env = make()
    result = env.invoke(
        "adjustClimateControl",
        {"temperature": 77.0, "unit": "fahrenheit", "fanSpeed": 30, "mode": "heat"},
    )
    assert result == {"currentACTemperature": 25.0, "climateMode": "heat", "humidityLevel": 50.0}
    assert (env.state.acTemperature, env.state.fanSpeed, env.state.acMode) == (25.0, 30, "heat")
    refusal(env, "adjustClimateControl", {"temperature": 22.0, "fanSpeed": 101}, "fanSpeed")
    refusal(env, "adjustClimateControl", {"temperature": 80.0}, "between")
    refusal(env, "adjustClimateControl", {"temperature": 22.0, "mode": "x"}, "mode")


def test_headlights_and_status() -> None:
    env = make(fuelLevel=12.5)
    assert env.invoke("setHeadlights", {"mode": "on"}) == {"headlightStatus": "on"}
    assert env.invoke("displayCarStatus", {"option": "headlights"}) == {"headlightStatus": "on"}
    assert env.invoke("setHeadlights", {"mode": "auto"}) == {"headlightStatus": "off"}
    assert env.invoke("displayCarStatus", {"option": "fuel"}) == {"fuelLevel": 12.5}
    assert env.invoke("displayCarStatus", {"option": "climate"}) == {
        "currentACTemperature": 25.0,
        "fanSpeed": 50,
        "climateMode": "auto",
        "humidityLevel": 50.0,
    }
    with pytest.raises(ToolError, match="option"):
        env.invoke("displayCarStatus", {"option": "radio"})


def test_tire_pressure_health() -> None:
    healthy = make().invoke("check_tire_pressure", {})
    assert healthy == {
        "frontLeftTirePressure": 32.0,
        "frontRightTirePressure": 32.0,
        "rearLeftTirePressure": 30.0,
        "rearRightTirePressure": 30.0,
        "healthy_tire_pressure": True,
        "car_info": {},
    }
    low = make(frontRightTirePressure=22.0).invoke("check_tire_pressure", {})
    assert isinstance(low, dict) and low["healthy_tire_pressure"] is False


# ----- trips ----------------------------------------------------------------------------------
def test_trip_tools() -> None:
    env = make(fuelLevel=10.0)
    zipcode = env.invoke("get_zipcode_based_on_city", {"city": "San Francisco"})
    assert zipcode == {"zipcode": "94016"}
    assert env.invoke("get_zipcode_based_on_city", {"city": " rivermist"}) == {"zipcode": "83214"}
    assert env.invoke("estimate_distance", {"cityA": "94016", "cityB": "83214"}) == {
        "distance": 980.0
    }
    assert env.invoke("estimate_distance", {"cityA": "83214", "cityB": "94016"}) == {
        "distance": 980.0
    }
    assert env.invoke("estimate_drive_feasibility_by_mileage", {"distance": 200.0}) == {
        "canDrive": True
    }
    assert env.invoke("estimate_drive_feasibility_by_mileage", {"distance": 300.0}) == {
        "canDrive": False
    }
    assert env.invoke("gallon_to_liter", {"gallon": 30.0}) == {"liter": 30.0 * 3.78541}
    assert env.invoke("liter_to_gallon", {"liter": 20.0}) == {"gallon": 20.0 * 0.264172}
    with pytest.raises(ToolError, match="unknown city"):
        env.invoke("get_zipcode_based_on_city", {"city": "x" * 100_000})
    with pytest.raises(ToolError, match="not a known zip code"):
        env.invoke("estimate_distance", {"cityA": "00000", "cityB": "83214"})
    assert env.invoke("set_navigation", {"destination": "1 Main St, Rivermist, CA"}) == {
        "status": "Navigating to 1 Main St, Rivermist, CA"
    }
    assert env.state.destination == "1 Main St, Rivermist, CA"
    refusal(env, "set_navigation", {"destination": "   "}, "empty")
    assert env.invoke("display_log", {"messages": ["a", "b"]}) == {"log": ["a", "b"]}


# ----- randomness ----------------------------------------------------------------------------
def test_rng_matches_upstream_seed_and_order() -> None:
    import random

    reference = random.Random(141053)
    expected_temperature = reference.uniform(-10.0, 40.0)
    expected_speed = reference.uniform(0.0, 120.0)
    env = make()
    assert env.invoke("get_outside_temperature_from_google", {}) == {
        "outsideTemperature": expected_temperature
    }
    assert env.invoke("get_current_speed", {}) == {"currentSpeed": expected_speed}
    assert env.state.rng_words == 4


def test_rng_resumes_from_snapshot() -> None:
    first = make(random_seed=99)
    first.invoke("get_outside_temperature_from_weather_com", {})
    resumed = Vehicle.from_state(first.snapshot())
    assert resumed.invoke("get_current_speed", {}) == first.invoke("get_current_speed", {})
    again = make(random_seed=99)
    assert again.invoke("get_outside_temperature_from_weather_com", {}) == make(
        random_seed=99
    ).invoke("get_outside_temperature_from_weather_com", {})


# ----- schema ---------------------------------------------------------------------------------
def test_tool_set_and_door_names() -> None:
    specs = Vehicle.tool_specs()
    assert len(specs) == 22
    door = specs["lockDoors"].parameters["properties"]["door"]
    assert door["items"]["enum"] == ALL_DOORS
