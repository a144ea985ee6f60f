"""Arithmetic over measured quantities: the validation chain rejects what means nothing (a
product of two masses, a sum of kilograms and grams, a mass as an exponent, a volume converted
from kilometres) and accepts the arithmetic people do (a ratio, a sum in one unit, an area)."""

from __future__ import annotations

from typing import Any

from pipeline.models import Call, RejectionCode, Task
from pipeline.validate.chain import validate_task


def _task(question: str, envs: list[str], calls: list[dict[str, Any]]) -> Task:
    return Task(
        id="pending",
        category=envs[0],
        envs=envs,
        question=question,
        calls=[Call.model_validate(call) for call in calls],
    ).with_content_id()


def _mismatch(task: Task) -> str:
    """The message of the task's rejection, which must be for dimensions."""
    rejection = validate_task(task).rejection
    assert rejection is not None, task.question
    assert rejection.code is RejectionCode.DEPENDENCY_DIMENSION_MISMATCH, rejection.message
    return rejection.message


def _conversions(second_unit: str = "kg") -> list[dict[str, Any]]:
    return [
        {
            "id": "s1",
            "tool": "maths.si_unit_conversion",
            "arguments": {"value": 5000, "unit_in": "g", "unit_out": "kg"},
        },
        {
            "id": "s2",
            "tool": "maths.imperial_si_conversion",
            "arguments": {"value": 12, "unit_in": "pounds", "unit_out": second_unit},
        },
    ]


def _of_both(tool: str, first: float, second: float) -> dict[str, Any]:
    return {
        "id": "s3",
        "tool": f"maths.{tool}",
        "arguments": {"a": first, "b": second},
        "depends_on": ["s1", "s2"],
        "bindings": {"a": "s1.result", "b": "s2.result"},
    }


_KG, _LB_IN_KG, _LB_IN_G = 5.0, 5.4431084400000005, 5443.10844


def test_a_product_of_two_masses_is_rejected_and_their_ratio_accepted() -> None:
    """Run llm30, task 010: '... multiply the result of the first step by the result of the
    second step' over two weights in kilograms."""
    product = _task(
        "Convert 5000 g to kg and 12 pounds to kg, then multiply the two masses.",
        ["maths"],
        [*_conversions(), _of_both("multiply", _KG, _LB_IN_KG)],
    )
    message = _mismatch(product)
    assert "two masses" in message and "s1.result" in message

    ratio = _task(
        "Convert 5000 g to kg and 12 pounds to kg, then divide the first mass by the second.",
        ["maths"],
        [*_conversions(), _of_both("divide", _KG, _LB_IN_KG)],
    )
    assert validate_task(ratio).accepted, validate_task(ratio).rejection


def test_a_sum_needs_one_unit() -> None:
    same_unit = _task(
        "Convert 5000 g to kg and 12 pounds to kg, then add the two masses.",
        ["maths"],
        [*_conversions(), _of_both("add", _KG, _LB_IN_KG)],
    )
    assert validate_task(same_unit).accepted, validate_task(same_unit).rejection

    mixed = _task(
        "Convert 5000 g to kg and 12 pounds to grams, then add the two masses.",
        ["maths"],
        [*_conversions("grams"), _of_both("add", _KG, _LB_IN_G)],
    )
    assert "without converting" in _mismatch(mixed)


def test_a_mass_is_no_exponent() -> None:
    task = _task(
        "Convert 5000 g to kg, then raise 2 to the power of that mass.",
        ["maths"],
        [
            _conversions()[0],
            {
                "id": "s2",
                "tool": "maths.power",
                "arguments": {"base": 2, "exponent": _KG},
                "depends_on": ["s1"],
                "bindings": {"exponent": "s1.result"},
            },
        ],
    )
    assert "raises a number to a mass" in _mismatch(task)


def test_an_area_is_a_product_people_use() -> None:
    task = _task(
        "Convert 3 feet to meters and 2 yards to meters, then multiply the two lengths to get "
        "the area.",
        ["maths"],
        [
            {
                "id": "s1",
                "tool": "maths.imperial_si_conversion",
                "arguments": {"value": 3, "unit_in": "feet", "unit_out": "m"},
            },
            {
                "id": "s2",
                "tool": "maths.imperial_si_conversion",
                "arguments": {"value": 2, "unit_in": "yards", "unit_out": "m"},
            },
            _of_both("multiply", 0.9144000000000001, 1.8288),
        ],
    )
    assert validate_task(task).accepted, validate_task(task).rejection


def _converted_distance(unit_in: str, unit_out: str) -> Task:
    return _task(
        f"Estimate the distance between zip codes 83214 and 74532, then convert that distance "
        f"from {unit_in} to {unit_out}.",
        ["vehicle", "maths"],
        [
            {
                "id": "s1",
                "tool": "vehicle.estimate_distance",
                "arguments": {"cityA": "83214", "cityB": "74532"},
            },
            {
                "id": "s2",
                "tool": "maths.imperial_si_conversion",
                "arguments": {"value": 750.0, "unit_in": unit_in, "unit_out": unit_out},
                "depends_on": ["s1"],
                "bindings": {"value": "s1.distance"},
            },
        ],
    )


def test_a_reading_converts_only_from_its_own_unit() -> None:
    """The car reports the distance in km: converting it 'from km' is right, 'from miles' or
    'from pounds' takes it for something it is not."""
    right = validate_task(_converted_distance("km", "miles"))
    assert right.accepted, right.rejection
    for unit_in, unit_out in (("miles", "km"), ("lb", "kg")):
        assert f"as if it were in {unit_in!r}" in _mismatch(_converted_distance(unit_in, unit_out))
