"""Maths: stateless number operations (BFCL ``MathAPI``)."""

from __future__ import annotations

import math
import reprlib
import statistics
from typing import Annotated

from pydantic import JsonValue

from pipeline.envs.base import Environment, EnvState, ToolError, ToolKind, tool
from pipeline.quantities import Arithmetic, Conversion
from pipeline.semantics import Sem

# Pure computation is fast in any real service; 0.2 s stands for one network round trip.
_COMPUTE = 0.2
_MAX_NUMBERS = 100_000

# Factor to the base unit of each dimension; SI prefixes cover the common cases.
_SI_UNITS: dict[str, tuple[str, float]] = {
    "km": ("length", 1e3),
    "m": ("length", 1.0),
    "cm": ("length", 1e-2),
    "mm": ("length", 1e-3),
    "um": ("length", 1e-6),
    "nm": ("length", 1e-9),
    "kg": ("mass", 1e3),
    "g": ("mass", 1.0),
    "mg": ("mass", 1e-3),
    "ug": ("mass", 1e-6),
    "t": ("mass", 1e6),
    "l": ("volume", 1.0),
    "ml": ("volume", 1e-3),
    "cl": ("volume", 1e-2),
    "dl": ("volume", 1e-1),
    "m3": ("volume", 1e3),
    "cm3": ("volume", 1e-3),
    "s": ("time", 1.0),
    "ms": ("time", 1e-3),
    "us": ("time", 1e-6),
    "ns": ("time", 1e-9),
    "min": ("time", 60.0),
    "h": ("time", 3600.0),
    "j": ("energy", 1.0),
    "kj": ("energy", 1e3),
    "mj": ("energy", 1e6),
    "w": ("power", 1.0),
    "kw": ("power", 1e3),
    "mw": ("power", 1e6),
    "pa": ("pressure", 1.0),
    "kpa": ("pressure", 1e3),
    "mpa": ("pressure", 1e6),
    "hz": ("frequency", 1.0),
    "khz": ("frequency", 1e3),
    "mhz": ("frequency", 1e6),
    "ghz": ("frequency", 1e9),
}

# Imperial and SI units as a factor to the SI base of their dimension.
_MIXED_UNITS: dict[str, tuple[str, float]] = {
    "in": ("length", 0.0254),
    "inch": ("length", 0.0254),
    "inches": ("length", 0.0254),
    "ft": ("length", 0.3048),
    "foot": ("length", 0.3048),
    "feet": ("length", 0.3048),
    "yd": ("length", 0.9144),
    "yard": ("length", 0.9144),
    "yards": ("length", 0.9144),
    "mi": ("length", 1609.344),
    "mile": ("length", 1609.344),
    "miles": ("length", 1609.344),
    "cm": ("length", 0.01),
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "mm": ("length", 0.001),
    "meter": ("length", 1.0),
    "meters": ("length", 1.0),
    "kilometer": ("length", 1000.0),
    "kilometers": ("length", 1000.0),
    "lb": ("mass", 0.45359237),
    "lbs": ("mass", 0.45359237),
    "pound": ("mass", 0.45359237),
    "pounds": ("mass", 0.45359237),
    "oz": ("mass", 0.028349523125),
    "ounce": ("mass", 0.028349523125),
    "ounces": ("mass", 0.028349523125),
    "kg": ("mass", 1.0),
    "g": ("mass", 0.001),
    "kilogram": ("mass", 1.0),
    "kilograms": ("mass", 1.0),
    "gram": ("mass", 0.001),
    "grams": ("mass", 0.001),
    "gal": ("volume", 3.785411784),
    "gallon": ("volume", 3.785411784),
    "gallons": ("volume", 3.785411784),
    "qt": ("volume", 0.946352946),
    "pt": ("volume", 0.473176473),
    "l": ("volume", 1.0),
    "liter": ("volume", 1.0),
    "liters": ("volume", 1.0),
    "litre": ("volume", 1.0),
    "litres": ("volume", 1.0),
    "ml": ("volume", 0.001),
    "mph": ("speed", 0.44704),
    "kmh": ("speed", 1 / 3.6),
    "km/h": ("speed", 1 / 3.6),
    "m/s": ("speed", 1.0),
}
#: a unit both tables know, per dimension, so a unit's scale means the same in either
_REFERENCE_UNITS = {"length": "m", "mass": "kg", "volume": "l"}
_TEMPERATURES = {"c", "celsius", "f", "fahrenheit", "k", "kelvin"}


def _to_kelvin(value: float, unit: str) -> float:
    if unit in ("c", "celsius"):
        return value + 273.15
    if unit in ("f", "fahrenheit"):
        return (value - 32.0) * 5.0 / 9.0 + 273.15
    return value


def _from_kelvin(value: float, unit: str) -> float:
    if unit in ("c", "celsius"):
        return value - 273.15
    if unit in ("f", "fahrenheit"):
        return (value - 273.15) * 9.0 / 5.0 + 32.0
    return value


def _convert(
    value: float, unit_in: str, unit_out: str, table: dict[str, tuple[str, float]]
) -> float:
    source, target = unit_in.strip().lower(), unit_out.strip().lower()
    if source in _TEMPERATURES and target in _TEMPERATURES:
        return _from_kelvin(_to_kelvin(value, source), target)
    if source not in table:
        raise ToolError(f"unknown unit {reprlib.repr(unit_in)}; known: {', '.join(sorted(table))}")
    if target not in table:
        raise ToolError(f"unknown unit {reprlib.repr(unit_out)}; known: {', '.join(sorted(table))}")
    (dim_in, factor_in), (dim_out, factor_out) = table[source], table[target]
    if dim_in != dim_out:
        raise ToolError(f"cannot convert {dim_in} ({unit_in}) to {dim_out} ({unit_out})")
    return value * factor_in / factor_out


def _conversion(table: dict[str, tuple[str, float]]) -> Conversion:
    def unit_dimension(unit: str) -> tuple[str, str] | None:
        name = unit.strip().lower()
        if name in _TEMPERATURES:  # scales with offsets: each its own unit
            return "temperature", name[0]
        known = table.get(name)
        if known is None:
            return None
        dimension, factor = known
        # the two tables measure from different base units (g, kg): scale to a shared one
        reference = table.get(_REFERENCE_UNITS.get(dimension, ""))
        return dimension, f"{factor / (reference[1] if reference else 1.0):.9g}"

    return Conversion("value", "unit_in", "unit_out", unit_dimension)


def _checked(value: float) -> dict[str, JsonValue]:
    if math.isnan(value) or math.isinf(value):
        raise ToolError("result is not a finite number")
    return {"result": value}


def _non_empty(numbers: list[float]) -> list[float]:
    if not numbers:
        raise ToolError("the list of numbers is empty")
    if len(numbers) > _MAX_NUMBERS:
        raise ToolError(f"at most {_MAX_NUMBERS} numbers are accepted")
    return numbers


class MathState(EnvState):
    """Maths keeps no state."""


class Maths(Environment[MathState]):
    name = "maths"
    state_model = MathState
    bfcl_class = "MathAPI"

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.KEEP)
    def absolute_value(self, number: Annotated[float, Sem.NUMBER]) -> dict[str, JsonValue]:
        """Calculate the absolute value of a number.

        Args:
            number: The number to calculate the absolute value of.
        """
        return {"result": abs(number)}

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.COMBINE)
    def add(
        self, a: Annotated[float, Sem.NUMBER], b: Annotated[float, Sem.NUMBER]
    ) -> dict[str, JsonValue]:
        """Add two numbers.

        Args:
            a: First number.
            b: Second number.
        """
        return _checked(a + b)

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.COMBINE)
    def subtract(
        self, a: Annotated[float, Sem.NUMBER], b: Annotated[float, Sem.NUMBER]
    ) -> dict[str, JsonValue]:
        """Subtract one number from another.

        Args:
            a: Number to subtract from.
            b: Number to subtract.
        """
        return _checked(a - b)

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.PRODUCT)
    def multiply(
        self, a: Annotated[float, Sem.NUMBER], b: Annotated[float, Sem.NUMBER]
    ) -> dict[str, JsonValue]:
        """Multiply two numbers.

        Args:
            a: First number.
            b: Second number.
        """
        return _checked(a * b)

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER})
    def divide(
        self, a: Annotated[float, Sem.NUMBER], b: Annotated[float, Sem.NUMBER]
    ) -> dict[str, JsonValue]:
        """Divide one number by another.

        Args:
            a: Numerator.
            b: Denominator.
        """
        if b == 0:
            raise ToolError("cannot divide by zero")
        return _checked(a / b)

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.POWER)
    def power(
        self, base: Annotated[float, Sem.NUMBER], exponent: Annotated[float, Sem.NUMBER]
    ) -> dict[str, JsonValue]:
        """Raise a number to a power.

        Args:
            base: The base number.
            exponent: The exponent.
        """
        if abs(exponent) > 10_000:
            raise ToolError("exponent too large (at most 10000 in magnitude)")
        try:
            value = base**exponent
        except (OverflowError, ZeroDivisionError) as error:
            raise ToolError(f"cannot compute {base} ** {exponent}: {error}") from None
        if isinstance(value, complex):
            raise ToolError("result is not a real number")
        return _checked(float(value))

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.ROOT)
    def logarithm(
        self,
        value: Annotated[float, Sem.NUMBER],
        base: Annotated[float, Sem.NUMBER],
        precision: Annotated[int, Sem.COUNT],
    ) -> dict[str, JsonValue]:
        """Compute the logarithm of a number with a given precision.

        Args:
            value: The number to compute the logarithm of.
            base: The base of the logarithm.
            precision: Number of decimal places to keep in the result.
        """
        if value <= 0:
            raise ToolError("logarithm needs a positive value")
        if base <= 0 or base == 1:
            raise ToolError("logarithm needs a positive base other than 1")
        if not 0 <= precision <= 15:
            raise ToolError("precision must be between 0 and 15")
        return {"result": round(math.log(value) / math.log(base), precision)}

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.ROOT)
    def square_root(
        self, number: Annotated[float, Sem.NUMBER], precision: Annotated[int, Sem.COUNT]
    ) -> dict[str, JsonValue]:
        """Calculate the square root of a number with a given precision.

        Args:
            number: The number to calculate the square root of.
            precision: Number of decimal places to keep in the result.
        """
        if number < 0:
            raise ToolError("cannot take the square root of a negative number")
        if not 0 <= precision <= 15:
            raise ToolError("precision must be between 0 and 15")
        return {"result": round(math.sqrt(number), precision)}

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.KEEP)
    def round_number(
        self,
        number: Annotated[float, Sem.NUMBER],
        decimal_places: Annotated[int, Sem.COUNT] = 0,
    ) -> dict[str, JsonValue]:
        """Round a number to a number of decimal places.

        Args:
            number: The number to round.
            decimal_places: The number of decimal places to round to. Defaults to 0.
        """
        if not -15 <= decimal_places <= 15:
            raise ToolError("decimal_places must be between -15 and 15")
        return {"result": float(round(number, decimal_places))}

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.PERCENT}, arithmetic=Arithmetic.RATIO)
    def percentage(
        self, part: Annotated[float, Sem.NUMBER], whole: Annotated[float, Sem.NUMBER]
    ) -> dict[str, JsonValue]:
        """Calculate the percentage of a part relative to a whole.

        Args:
            part: The part value.
            whole: The whole value.
        """
        if whole == 0:
            raise ToolError("the whole cannot be zero")
        return _checked(part / whole * 100.0)

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.COMBINE)
    def mean(self, numbers: Annotated[list[float], Sem.NUMBER]) -> dict[str, JsonValue]:
        """Calculate the mean of a list of numbers.

        Args:
            numbers: List of numbers to calculate the mean of.
        """
        values = _non_empty(numbers)
        return _checked(sum(values) / len(values))

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.COMBINE)
    def standard_deviation(
        self, numbers: Annotated[list[float], Sem.NUMBER]
    ) -> dict[str, JsonValue]:
        """Calculate the population standard deviation of a list of numbers.

        Args:
            numbers: List of numbers to calculate the standard deviation of.
        """
        values = _non_empty(numbers)
        if not all(math.isfinite(value) for value in values):  # pstdev fails on them
            raise ToolError("the numbers must be finite")
        return _checked(statistics.pstdev(values))

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.COMBINE)
    def max_value(self, numbers: Annotated[list[float], Sem.NUMBER]) -> dict[str, JsonValue]:
        """Find the maximum value in a list of numbers.

        Args:
            numbers: List of numbers to find the maximum from.
        """
        return {"result": max(_non_empty(numbers))}

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.COMBINE)
    def min_value(self, numbers: Annotated[list[float], Sem.NUMBER]) -> dict[str, JsonValue]:
        """Find the minimum value in a list of numbers.

        Args:
            numbers: List of numbers to find the minimum from.
        """
        return {"result": min(_non_empty(numbers))}

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, arithmetic=Arithmetic.COMBINE)
    def sum_values(self, numbers: Annotated[list[float], Sem.NUMBER]) -> dict[str, JsonValue]:
        """Calculate the sum of a list of numbers.

        Args:
            numbers: List of numbers to sum.
        """
        if len(numbers) > _MAX_NUMBERS:
            raise ToolError(f"at most {_MAX_NUMBERS} numbers are accepted")
        try:
            return _checked(math.fsum(numbers))
        except OverflowError:  # fsum raises on an intermediate overflow
            raise ToolError("result is not a finite number") from None

    @tool(ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, converts=_conversion(_SI_UNITS))
    def si_unit_conversion(
        self,
        value: Annotated[float, Sem.NUMBER],
        unit_in: Annotated[str, Sem.OPTION],
        unit_out: Annotated[str, Sem.OPTION],
    ) -> dict[str, JsonValue]:
        """Convert a value from one SI unit to another (for example km to m, or kg to g).

        Args:
            value: Value to be converted.
            unit_in: Unit of the input value.
            unit_out: Unit to convert the value to.
        """
        return _checked(_convert(value, unit_in, unit_out, _SI_UNITS))

    @tool(
        ToolKind.READ, _COMPUTE, returns={"result": Sem.NUMBER}, converts=_conversion(_MIXED_UNITS)
    )
    def imperial_si_conversion(
        self,
        value: Annotated[float, Sem.NUMBER],
        unit_in: Annotated[str, Sem.OPTION],
        unit_out: Annotated[str, Sem.OPTION],
    ) -> dict[str, JsonValue]:
        """Convert a value between imperial and SI units (for example miles to km).

        Args:
            value: Value to be converted.
            unit_in: Unit of the input value.
            unit_out: Unit to convert the value to.
        """
        return _checked(_convert(value, unit_in, unit_out, _MIXED_UNITS))
