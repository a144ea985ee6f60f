"""Dimensions of measured quantities, so arithmetic over them can be judged.

A semantic type says a value is a weight; arithmetic tools take plain numbers, so their results
lose that. Tools declare what their arithmetic does to dimensions (``Arithmetic``) and which
argument names the unit a conversion returns (``Conversion``); :mod:`pipeline.validate.dimensions`
follows a quantity along the bindings and rejects sums of a mass and a length, a product of two
masses, a mass used as an exponent (issue 17, runs llm26 and llm30).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pipeline.semantics import Sem, kind


class Arithmetic(StrEnum):
    """What a tool's arithmetic does with the dimensions of its number-typed operands."""

    COMBINE = "combine"  # operands of one dimension and unit; the result keeps them (a sum)
    KEEP = "keep"  # one operand; the result keeps its dimension (rounding, absolute value)
    PRODUCT = "product"  # the product of two operands
    POWER = "power"  # base ** exponent: the exponent must be a pure number
    RATIO = "ratio"  # part / whole as a share: both of one dimension, the result a pure number
    ROOT = "root"  # a square root or logarithm: its one operand must be a pure number


#: dimension of each semantic kind that is measured in a unit, and of percentages (a share
#: of something: its square root or its sum with an amount means nothing); every other kind
#: (counts, indices, plain numbers, rates) is a pure number here
_DIMENSION_OF_KIND: Mapping[str, str] = {
    "money": "money",
    "percent": "percentage",
    "distance": "length",
    "pressure": "pressure",
    "volume": "volume",
    "temperature": "temperature",
    "speed": "speed",
    "weight": "mass",
    "voltage": "voltage",
    "force": "force",
    "angle": "angle",
    "duration": "time",
    "size": "size",
}

#: a product of two quantities of one of these dimensions is a measure people use (an area)
_SQUARES_THAT_MEAN_SOMETHING = frozenset({"length"})


@dataclass(frozen=True)
class Quantity:
    """A value's dimension and, where known, its unit (``unit`` compares only within one
    source of units: two conversions' outputs, or two semantic types)."""

    dimension: str
    unit: str | None = None
    unit_name: str = ""

    def described(self) -> str:
        return f"{_ARTICLE_NOUN.get(self.dimension, 'a ' + self.dimension)}" + (
            f" in {self.unit_name}" if self.unit_name else ""
        )


_ARTICLE_NOUN: Mapping[str, str] = {
    "mass": "a mass",
    "length": "a length",
    "volume": "a volume",
    "time": "a time",
    "money": "an amount of money",
    "angle": "an angle",
    "size": "a size",
}


@dataclass(frozen=True)
class Conversion:
    """A unit conversion: ``value`` is given in ``unit_in`` and returned in ``unit_out``;
    ``unit_dimension`` names a unit's dimension and scale (``None`` for an unknown unit)."""

    value: str
    unit_in: str
    unit_out: str
    unit_dimension: Callable[[str], tuple[str, str] | None]

    def quantity(self, arguments: Mapping[str, Any], parameter: str) -> Quantity | None:
        unit = arguments.get(parameter)
        if not isinstance(unit, str):
            return None
        known = self.unit_dimension(unit)
        if known is None:
            return None
        dimension, scale = known
        return Quantity(dimension, f"unit:{dimension}:{scale}", unit.strip())


def sem_quantity(sem: Sem | None) -> Quantity | None:
    """The quantity a semantic type measures; ``None`` for a pure number or a non-quantity."""
    if sem is None:
        return None
    dimension = _DIMENSION_OF_KIND.get(kind(sem))
    if dimension is None:
        return None
    unit = sem.value.partition(".")[2]
    return Quantity(dimension, f"sem:{sem.value}" if unit else None, unit)


def square_means_something(dimension: str) -> bool:
    return dimension in _SQUARES_THAT_MEAN_SOMETHING
