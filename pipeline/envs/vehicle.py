"""Vehicle control: engine, doors, climate, lights, tyres, navigation (BFCL ``VehicleControlAPI``).

Latencies: actuators (engine, locks, brakes, refuelling pump) take 1–3 s, as a car's body
controller confirms each actuation; reading the car's own sensors or status is a local bus
query (~0.3 s); look-ups that need an online service (zip codes, distances, weather,
navigation) cost one mobile round trip (~0.8–1.2 s); unit conversions and log display are
local computation (~0.05–0.1 s).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, JsonValue, model_validator

from pipeline.envs import long_context
from pipeline.envs.base import Environment, EnvState, SeededState, ToolError, ToolKind, tool
from pipeline.semantics import Sem

_LOCAL = 0.05
_DISPLAY = 0.1
_SENSOR = 0.3
_ONLINE = 0.8
_WEATHER = 1.2
_ACTUATOR = 1.5
_ENGINE = 2.5
_PUMP = 3.0

MAX_FUEL_GALLONS = 50.0
MILES_PER_GALLON = 20.0
LITERS_PER_GALLON = 3.78541
GALLONS_PER_LITER = 0.264172
FULL_BRAKE_FORCE = 1000.0
PARKING_BRAKE_FORCE = 500.0
PARKED_SLOPE_DEGREES = 10.0
HEALTHY_PRESSURE_PSI = (30.0, 35.0)
CLIMATE_RANGE_CELSIUS = (10.0, 35.0)
TIRE_SHOP = "456 Oakwood Avenue, Rivermist, 83214"
MAX_TEXT = 500
MAX_LOG_MESSAGES = 1000

DoorName = Literal["driver", "passenger", "rear_left", "rear_right"]
LockState = Literal["locked", "unlocked"]
StatusOption = Literal[
    "fuel", "battery", "doors", "climate", "headlights", "parkingBrake", "brakePedal", "engine"
]

#: city -> zip code known to the car's navigation service
ZIPCODES: dict[str, str] = {
    "Rivermist": "83214",
    "Stonebrook": "74532",
    "Maplecrest": "56108",
    "Silverpine": "62947",
    "Shadowridge": "71354",
    "Sunset Valley": "31908",
    "Oakendale": "47329",
    "Willowbend": "28743",
    "Crescent Hollow": "69238",
    "Autumnville": "51479",
    "San Francisco": "94016",
}

_ZIP_BY_LOWER = {name.lower(): code for name, code in ZIPCODES.items()}

#: road distance in km between two zip codes (either order)
_DISTANCES_KM: dict[frozenset[str], float] = {
    frozenset({"83214", "74532"}): 750.0,
    frozenset({"83214", "94016"}): 980.0,
    frozenset({"94016", "74532"}): 880.0,
    frozenset({"69238", "51479"}): 630.0,
    frozenset({"62947", "47329"}): 1053.0,
    frozenset({"56108", "62947"}): 320.0,
    frozenset({"71354", "83214"}): 450.0,
    frozenset({"28743", "56108"}): 290.0,
    frozenset({"31908", "94016"}): 410.0,
    frozenset({"47329", "74532"}): 520.0,
    frozenset({"69238", "83214"}): 365.0,
    frozenset({"51479", "71354"}): 275.0,
}


class DoorStatus(EnvState):
    """Lock state of each of the four doors."""

    driver: LockState = "unlocked"
    passenger: LockState = "unlocked"
    rear_left: LockState = "unlocked"
    rear_right: LockState = "unlocked"

    def unlocked(self) -> list[str]:
        return [name for name, value in self.model_dump().items() if value == "unlocked"]


class VehicleState(SeededState):
    """Everything the car knows about itself; names follow upstream's attributes."""

    random_seed: int = 141053
    fuelLevel: float = 0.0
    batteryVoltage: float = 12.6
    engine_state: Literal["running", "stopped"] = "stopped"
    remainingUnlockedDoors: int = 4
    doorStatus: DoorStatus = Field(default_factory=DoorStatus)
    acTemperature: float = 25.0
    fanSpeed: int = 50
    acMode: Literal["auto", "cool", "heat", "defrost"] = "auto"
    humidityLevel: float = 50.0
    headLightStatus: Literal["on", "off"] = "off"
    parkingBrakeStatus: Literal["engaged", "released"] = "released"
    brakePedalStatus: Literal["pressed", "released"] = "released"
    distanceToNextVehicle: float = 50.0
    cruiseStatus: Literal["active", "inactive"] = "inactive"
    destination: str = "None"
    frontLeftTirePressure: float = 32.0
    frontRightTirePressure: float = 32.0
    rearLeftTirePressure: float = 30.0
    rearRightTirePressure: float = 30.0
    long_context: bool = False
    # internal (upstream keeps these private)
    parkingBrakeForce: float = 0.0
    slopeAngle: float = 0.0
    brakePedalForce: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _derive_unlocked_count(cls, data: Any) -> Any:
        """A state given without the unlocked-door count gets it from the door locks."""
        if isinstance(data, dict) and "remainingUnlockedDoors" not in data:
            doors = data.get("doorStatus", {})
            if isinstance(doors, DoorStatus):
                doors = doors.model_dump()
            if isinstance(doors, dict):
                locked = sum(1 for value in doors.values() if value == "locked")
                data = {**data, "remainingUnlockedDoors": 4 - locked}
        return data

    @model_validator(mode="after")
    def _check_unlocked_count(self) -> VehicleState:
        if self.remainingUnlockedDoors != len(self.doorStatus.unlocked()):
            raise ValueError("remainingUnlockedDoors disagrees with doorStatus")
        return self


#: result types shared by both brake pedal tools
_BRAKE_PEDAL_RESULT: dict[str, Sem] = {
    "brakePedalStatus": Sem.STATUS,
    "brakePedalForce": Sem.FORCE,
}


def _finite(value: float, name: str) -> float:
    if math.isnan(value) or math.isinf(value):
        raise ToolError(f"{name} must be a finite number")
    return value


def _text(value: str, name: str) -> str:
    if not value.strip():
        raise ToolError(f"{name} must not be empty")
    if len(value) > MAX_TEXT:
        raise ToolError(f"{name} is too long (at most {MAX_TEXT} characters)")
    return value


class Vehicle(Environment[VehicleState]):
    name = "vehicle"
    state_model = VehicleState
    bfcl_class = "VehicleControlAPI"
    internal_fields: ClassVar[frozenset[str]] = frozenset(
        {"random_seed", "rng_words", "parkingBrakeForce", "slopeAngle", "brakePedalForce"}
    )

    #: upstream config key -> our state field (keys not listed keep their name)
    _CONFIG_RENAMES: ClassVar[dict[str, str]] = {"engineState": "engine_state"}
    #: upstream config keys that upstream recomputes instead of reading
    _CONFIG_DERIVED: ClassVar[frozenset[str]] = frozenset({"remainingUnlockedDoors"})

    @classmethod
    def from_bfcl_config(cls, config: Mapping[str, Any]) -> Vehicle:
        """Translate upstream names; the unlocked-door count is derived from the locks."""
        state: dict[str, Any] = {}
        fields = VehicleState.model_fields
        for key, value in config.items():
            if key in cls._CONFIG_DERIVED:
                continue
            target = cls._CONFIG_RENAMES.get(key, key)
            if target not in fields:
                raise ValueError(f"unknown VehicleControlAPI config key {key!r}")
            state[target] = value
        env = cls.from_state(state)
        assert isinstance(env, Vehicle)
        return env

    # ----- engine, doors, brakes --------------------------------------------------------
    @tool(
        ToolKind.WRITE,
        _ENGINE,
        returns={
            "engineState": Sem.STATUS,
            "fuelLevel": Sem.VOLUME_GALLONS,
            "batteryVoltage": Sem.VOLTAGE,
        },
    )
    def startEngine(
        self, ignitionMode: Annotated[Literal["START", "STOP"], Sem.OPTION]
    ) -> dict[str, JsonValue]:
        """Start or stop the engine; starting needs all doors locked and the brake fully pressed.

        Args:
            ignitionMode: "START" to start the engine, "STOP" to switch it off.
        """
        state = self.state
        if ignitionMode == "START":
            unlocked = state.doorStatus.unlocked()
            if unlocked:
                raise ToolError(
                    "all doors must be locked before starting the engine; unlocked: "
                    + ", ".join(unlocked)
                )
            if state.brakePedalStatus != "pressed":
                raise ToolError("the brake pedal must be pressed to start the engine")
            if state.brakePedalForce != FULL_BRAKE_FORCE:
                raise ToolError("the brake pedal must be pressed fully to start the engine")
            if state.engine_state == "running":
                raise ToolError("the engine is already running")
            if state.fuelLevel <= 0:
                raise ToolError("the fuel tank is empty")
            state.engine_state = "running"
        else:
            if state.engine_state == "stopped":
                raise ToolError("the engine is already stopped")
            if state.brakePedalStatus != "pressed":
                raise ToolError("the brake pedal must be pressed to stop the engine")
            state.engine_state = "stopped"
        return {
            "engineState": state.engine_state,
            "fuelLevel": state.fuelLevel,
            "batteryVoltage": state.batteryVoltage,
        }

    @tool(ToolKind.WRITE, _PUMP, returns={"fuelLevel": Sem.VOLUME_GALLONS})
    def fillFuelTank(
        self, fuelAmount: Annotated[float, Sem.VOLUME_GALLONS]
    ) -> dict[str, JsonValue]:
        """Add fuel to the tank, which holds at most 50 gallons.

        Args:
            fuelAmount: Gallons of fuel to add on top of what is already in the tank.
        """
        _finite(fuelAmount, "fuelAmount")
        if fuelAmount <= 0:
            raise ToolError("fuelAmount must be positive")
        if self.state.fuelLevel + fuelAmount > MAX_FUEL_GALLONS:
            room = MAX_FUEL_GALLONS - self.state.fuelLevel
            raise ToolError(
                f"cannot add {fuelAmount} gallons: the tank holds {MAX_FUEL_GALLONS} gallons "
                f"and has room for {room}"
            )
        self.state.fuelLevel += fuelAmount
        return {"fuelLevel": self.state.fuelLevel}

    @tool(
        ToolKind.WRITE,
        _ACTUATOR,
        returns={"lockStatus": Sem.STATUS, "remainingUnlockedDoors": Sem.COUNT},
    )
    def lockDoors(
        self,
        unlock: Annotated[bool, Sem.FLAG],
        door: Annotated[list[DoorName], Sem.OPTION],
    ) -> dict[str, JsonValue]:
        """Lock or unlock some of the car's doors.

        Args:
            unlock: True to unlock the listed doors, False to lock them.
            door: Doors to act on: any of "driver", "passenger", "rear_left", "rear_right".
        """
        if not door:
            raise ToolError("name at least one door")
        target: LockState = "unlocked" if unlock else "locked"
        for name in door:
            setattr(self.state.doorStatus, name, target)
        self.state.remainingUnlockedDoors = len(self.state.doorStatus.unlocked())
        return {"lockStatus": target, "remainingUnlockedDoors": self.state.remainingUnlockedDoors}

    @tool(ToolKind.WRITE, _ACTUATOR, returns=_BRAKE_PEDAL_RESULT)
    def pressBrakePedal(self, pedalPosition: Annotated[float, Sem.RATIO]) -> dict[str, JsonValue]:
        """Press the brake pedal to a position; it stays pressed until released.

        Args:
            pedalPosition: How far the pedal is pressed, from 0 (not at all) to 1 (fully).
        """
        if not 0.0 <= pedalPosition <= 1.0:
            raise ToolError("pedalPosition must be between 0 and 1")
        force = pedalPosition * FULL_BRAKE_FORCE
        self.state.brakePedalStatus = "pressed" if force > 0 else "released"
        self.state.brakePedalForce = force
        return {"brakePedalStatus": self.state.brakePedalStatus, "brakePedalForce": force}

    @tool(ToolKind.WRITE, _ACTUATOR, returns=_BRAKE_PEDAL_RESULT)
    def releaseBrakePedal(self) -> dict[str, JsonValue]:
        """Release the brake pedal completely."""
        self.state.brakePedalStatus = "released"
        self.state.brakePedalForce = 0.0
        return {"brakePedalStatus": "released", "brakePedalForce": 0.0}

    @tool(
        ToolKind.WRITE,
        _ACTUATOR,
        returns={
            "parkingBrakeInstruction": Sem.TEXT,
            "parkingBrakeStatus": Sem.STATUS,
            "_parkingBrakeForce": Sem.FORCE,
            "_slopeAngle": Sem.ANGLE_DEGREES,
        },
    )
    def activateParkingBrake(
        self, mode: Annotated[Literal["engage", "release"], Sem.OPTION]
    ) -> dict[str, JsonValue]:
        """Engage or release the parking brake.

        Args:
            mode: "engage" to apply the parking brake, "release" to let it go.
        """
        state = self.state
        if mode == "engage":
            state.parkingBrakeStatus = "engaged"
            state.parkingBrakeForce = PARKING_BRAKE_FORCE
        else:
            state.parkingBrakeStatus = "released"
            state.parkingBrakeForce = 0.0
        state.slopeAngle = PARKED_SLOPE_DEGREES
        result: dict[str, JsonValue] = {}
        if state.long_context:  # upstream's long-context variant adds a long manual first
            result["parkingBrakeInstruction"] = long_context.PARKING_BRAKE_INSTRUCTION
        return result | {
            "parkingBrakeStatus": state.parkingBrakeStatus,
            "_parkingBrakeForce": state.parkingBrakeForce,
            "_slopeAngle": state.slopeAngle,
        }

    # ----- driving aids and comfort ------------------------------------------------------
    @tool(
        ToolKind.WRITE,
        _ACTUATOR,
        returns={
            "cruiseStatus": Sem.STATUS,
            "currentSpeed": Sem.SPEED,
            "distanceToNextVehicle": Sem.DISTANCE_M,
        },
    )
    def setCruiseControl(
        self,
        speed: Annotated[float, Sem.SPEED],
        activate: Annotated[bool, Sem.FLAG],
        distanceToNextVehicle: Annotated[float, Sem.DISTANCE_M],
    ) -> dict[str, JsonValue]:
        """Turn cruise control on or off at a speed while the engine is running.

        Args:
            speed: Target speed, from 0 to 120 in steps of 5.
            activate: True to switch cruise control on, False to switch it off.
            distanceToNextVehicle: Distance to keep to the vehicle ahead, in meters.
        """
        if self.state.engine_state != "running":
            raise ToolError("start the engine before setting the cruise control")
        if not 0 <= speed <= 120 or speed % 5 != 0:
            raise ToolError("speed must be between 0 and 120 and a multiple of 5")
        _finite(distanceToNextVehicle, "distanceToNextVehicle")
        if distanceToNextVehicle < 0:
            raise ToolError("distanceToNextVehicle cannot be negative")
        self.state.cruiseStatus = "active" if activate else "inactive"
        self.state.distanceToNextVehicle = distanceToNextVehicle
        return {
            "cruiseStatus": self.state.cruiseStatus,
            "currentSpeed": speed,
            "distanceToNextVehicle": distanceToNextVehicle,
        }

    @tool(
        ToolKind.WRITE,
        _ACTUATOR,
        returns={
            "currentACTemperature": Sem.TEMPERATURE_C,
            "climateMode": Sem.OPTION,
            "humidityLevel": Sem.LEVEL,
        },
    )
    def adjustClimateControl(
        self,
        temperature: Annotated[float, Sem.TEMPERATURE_C],
        unit: Annotated[Literal["celsius", "fahrenheit"], Sem.OPTION] = "celsius",
        fanSpeed: Annotated[int, Sem.LEVEL] = 50,
        mode: Annotated[Literal["auto", "cool", "heat", "defrost"], Sem.OPTION] = "auto",
    ) -> dict[str, JsonValue]:
        """Set the cabin temperature, fan speed and climate mode.

        Args:
            temperature: Target cabin temperature in the given unit (10–35 °C).
            unit: Unit of the temperature, "celsius" or "fahrenheit". Defaults to celsius.
            fanSpeed: Fan speed from 0 to 100. Defaults to 50.
            mode: Climate mode: "auto", "cool", "heat" or "defrost". Defaults to auto.
        """
        _finite(temperature, "temperature")
        celsius = (temperature - 32.0) * 5.0 / 9.0 if unit == "fahrenheit" else temperature
        low, high = CLIMATE_RANGE_CELSIUS
        if not low <= celsius <= high:
            raise ToolError(f"temperature must be between {low} and {high} °C")
        if not 0 <= fanSpeed <= 100:
            raise ToolError("fanSpeed must be between 0 and 100")
        self.state.acTemperature = celsius
        self.state.fanSpeed = fanSpeed
        self.state.acMode = mode
        return {
            "currentACTemperature": celsius,
            "climateMode": mode,
            "humidityLevel": self.state.humidityLevel,
        }

    @tool(ToolKind.WRITE, _ACTUATOR, returns={"headlightStatus": Sem.STATUS})
    def setHeadlights(
        self, mode: Annotated[Literal["on", "off", "auto"], Sem.OPTION]
    ) -> dict[str, JsonValue]:
        """Switch the headlights on or off, or leave them to the light sensor.

        Args:
            mode: "on", "off", or "auto" (the sensor sees daylight, so they stay off).
        """
        self.state.headLightStatus = "on" if mode == "on" else "off"
        return {"headlightStatus": self.state.headLightStatus}

    # ----- status and sensors ------------------------------------------------------------
    @tool(
        ToolKind.READ,
        _SENSOR,
        returns={
            "metadata": Sem.TEXT,
            "fuelLevel": Sem.VOLUME_GALLONS,
            "batteryVoltage": Sem.VOLTAGE,
            "doorStatus.*": Sem.STATUS,
            "currentACTemperature": Sem.TEMPERATURE_C,
            "fanSpeed": Sem.LEVEL,
            "climateMode": Sem.OPTION,
            "humidityLevel": Sem.LEVEL,
            "headlightStatus": Sem.STATUS,
            "parkingBrakeStatus": Sem.STATUS,
            "parkingBrakeForce": Sem.FORCE,
            "slopeAngle": Sem.ANGLE_DEGREES,
            "brakePedalStatus": Sem.STATUS,
            "brakePedalForce": Sem.FORCE,
            "engineState": Sem.STATUS,
        },
    )
    def displayCarStatus(
        self,
        option: Annotated[StatusOption, Sem.OPTION],
    ) -> dict[str, JsonValue]:
        """Show one part of the car's status.

        Args:
            option: Which part to show: "fuel", "battery", "doors", "climate", "headlights",
                "parkingBrake", "brakePedal" or "engine".
        """
        status = self._status(option)
        if self.state.long_context:  # upstream's long-context variant adds the car's metadata
            return {"metadata": long_context.CAR_STATUS_METADATA} | status
        return status

    def _status(self, option: StatusOption) -> dict[str, JsonValue]:
        state = self.state
        if option == "fuel":
            return {"fuelLevel": state.fuelLevel}
        if option == "battery":
            return {"batteryVoltage": state.batteryVoltage}
        if option == "doors":
            return {"doorStatus": dict(state.doorStatus.model_dump())}
        if option == "climate":
            return {
                "currentACTemperature": state.acTemperature,
                "fanSpeed": state.fanSpeed,
                "climateMode": state.acMode,
                "humidityLevel": state.humidityLevel,
            }
        if option == "headlights":
            return {"headlightStatus": state.headLightStatus}
        if option == "parkingBrake":
            return {
                "parkingBrakeStatus": state.parkingBrakeStatus,
                "parkingBrakeForce": state.parkingBrakeForce,
                "slopeAngle": state.slopeAngle,
            }
        if option == "brakePedal":
            return {
                "brakePedalStatus": state.brakePedalStatus,
                "brakePedalForce": state.brakePedalForce,
            }
        return {"engineState": state.engine_state}

    @tool(
        ToolKind.READ,
        _SENSOR,
        returns={
            "frontLeftTirePressure": Sem.PRESSURE_PSI,
            "frontRightTirePressure": Sem.PRESSURE_PSI,
            "rearLeftTirePressure": Sem.PRESSURE_PSI,
            "rearRightTirePressure": Sem.PRESSURE_PSI,
            "healthy_tire_pressure": Sem.FLAG,
            "car_info": Sem.RECORD,
        },
    )
    def check_tire_pressure(self) -> dict[str, JsonValue]:
        """Read the pressure of all four tyres and say whether it is healthy."""
        state = self.state
        pressures = {
            "frontLeftTirePressure": state.frontLeftTirePressure,
            "frontRightTirePressure": state.frontRightTirePressure,
            "rearLeftTirePressure": state.rearLeftTirePressure,
            "rearRightTirePressure": state.rearRightTirePressure,
        }
        average = sum(pressures.values()) / len(pressures)
        low, high = HEALTHY_PRESSURE_PSI
        result: dict[str, JsonValue] = dict(pressures)
        result["healthy_tire_pressure"] = low <= average <= high
        result["car_info"] = long_context.CAR_STATUS_METADATA if state.long_context else {}
        return result

    @tool(ToolKind.READ, _SENSOR, returns={"currentSpeed": Sem.SPEED})
    def get_current_speed(self) -> dict[str, JsonValue]:
        """Read the vehicle's current speed in km/h."""
        return {"currentSpeed": self.rng.uniform(0.0, 120.0)}

    @tool(ToolKind.READ, _WEATHER, returns={"outsideTemperature": Sem.TEMPERATURE_C})
    def get_outside_temperature_from_google(self) -> dict[str, JsonValue]:
        """Look up the outside temperature in °C from Google's weather service."""
        return {"outsideTemperature": self.rng.uniform(-10.0, 40.0)}

    @tool(ToolKind.READ, _WEATHER, returns={"outsideTemperature": Sem.TEMPERATURE_C})
    def get_outside_temperature_from_weather_com(self) -> dict[str, JsonValue]:
        """Look up the outside temperature in °C from weather.com."""
        return {"outsideTemperature": self.rng.uniform(-10.0, 40.0)}

    @tool(ToolKind.READ, _DISPLAY, returns={"log.*": Sem.TEXT})
    def display_log(self, messages: Annotated[list[str], Sem.TEXT]) -> dict[str, JsonValue]:
        """Show messages on the car's display.

        Args:
            messages: The messages to show, in order.
        """
        if len(messages) > MAX_LOG_MESSAGES:
            raise ToolError(f"at most {MAX_LOG_MESSAGES} messages can be shown at once")
        return {"log": list(messages)}

    # ----- trips and navigation ----------------------------------------------------------
    @tool(ToolKind.READ, _LOCAL, returns={"canDrive": Sem.FLAG})
    def estimate_drive_feasibility_by_mileage(
        self, distance: Annotated[float, Sem.DISTANCE_MILES]
    ) -> dict[str, JsonValue]:
        """Say whether the fuel in the tank is enough for a trip (the car does 20 miles a gallon).

        Args:
            distance: Length of the trip in miles.
        """
        _finite(distance, "distance")
        if distance < 0:
            raise ToolError("distance cannot be negative")
        return {"canDrive": self.state.fuelLevel * MILES_PER_GALLON >= distance}

    @tool(ToolKind.READ, _LOCAL, returns={"liter": Sem.VOLUME_LITERS})
    def gallon_to_liter(self, gallon: Annotated[float, Sem.VOLUME_GALLONS]) -> dict[str, JsonValue]:
        """Convert a volume in US gallons to liters.

        Args:
            gallon: The volume in gallons.
        """
        _finite(gallon, "gallon")
        if gallon < 0:
            raise ToolError("gallon cannot be negative")
        return {"liter": gallon * LITERS_PER_GALLON}

    @tool(ToolKind.READ, _LOCAL, returns={"gallon": Sem.VOLUME_GALLONS})
    def liter_to_gallon(self, liter: Annotated[float, Sem.VOLUME_LITERS]) -> dict[str, JsonValue]:
        """Convert a volume in liters to US gallons.

        Args:
            liter: The volume in liters.
        """
        _finite(liter, "liter")
        if liter < 0:
            raise ToolError("liter cannot be negative")
        return {"gallon": liter * GALLONS_PER_LITER}

    @tool(ToolKind.READ, _ONLINE, returns={"zipcode": Sem.ZIP_CODE})
    def get_zipcode_based_on_city(self, city: Annotated[str, Sem.CITY]) -> dict[str, JsonValue]:
        """Look up the zip code of a city.

        Args:
            city: Name of the city, e.g. "Rivermist".
        """
        zipcode = _ZIP_BY_LOWER.get(city.strip().lower())
        if zipcode is None:
            shown = city if len(city) <= 80 else city[:80] + "..."
            raise ToolError(f"unknown city {shown!r}; known: {', '.join(ZIPCODES)}")
        return {"zipcode": zipcode}

    @tool(
        ToolKind.READ,
        _ONLINE,
        returns={"distance": Sem.DISTANCE_KM, "intermediaryCities.*": Sem.CITY},
    )
    def estimate_distance(
        self, cityA: Annotated[str, Sem.ZIP_CODE], cityB: Annotated[str, Sem.ZIP_CODE]
    ) -> dict[str, JsonValue]:
        """Estimate the road distance in km between two cities given by zip code.

        Args:
            cityA: Zip code of the first city.
            cityB: Zip code of the second city.
        """
        known = set(ZIPCODES.values())
        for zipcode in (cityA, cityB):
            if zipcode not in known:
                shown = zipcode if len(zipcode) <= 20 else zipcode[:20] + "..."
                raise ToolError(f"{shown!r} is not a known zip code")
        if cityA == cityB:
            raise ToolError("the two zip codes are the same city")
        distance = _DISTANCES_KM.get(frozenset({cityA, cityB}))
        if distance is None:
            raise ToolError(f"no route between {cityA} and {cityB} is known")
        if self.state.long_context:  # upstream's long-context variant lists cities on the way
            return {
                "distance": distance,
                "intermediaryCities": list(long_context.INTERMEDIARY_CITIES),
            }
        return {"distance": distance}

    @tool(ToolKind.READ, _ONLINE, returns={"shopLocation": Sem.ADDRESS})
    def find_nearest_tire_shop(self) -> dict[str, JsonValue]:
        """Find the address of the nearest tyre shop."""
        return {"shopLocation": TIRE_SHOP}

    @tool(
        ToolKind.WRITE,
        _ONLINE,
        returns={"status": Sem.MESSAGE},
        asked_by=(
            "navigate me", "navigate us", "navigate there", "start navigation", "set navigation",
            "navigation to", "guide me", "guide us", "take me to", "take us to", "drive me to",
            "directions to", "swing by",
        ),
    )  # fmt: skip
    def set_navigation(self, destination: Annotated[str, Sem.ADDRESS]) -> dict[str, JsonValue]:
        """Start navigating to an address.

        Args:
            destination: The address, as "street, city, state".
        """
        self.state.destination = _text(destination, "destination")
        return {"status": f"Navigating to {destination}"}
