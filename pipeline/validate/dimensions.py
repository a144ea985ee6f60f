"""Arithmetic that means something: the quantities a call combines fit together.

Each value's quantity (its dimension and unit) is followed along the declared bindings from
where it was measured: a result field's semantic type, the unit a conversion was asked for, or
the common quantity of a sum. Literal operands are pure numbers. Only what is known is judged:
an operand of unknown quantity never rejects a call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

from pipeline.envs import resolve_tool
from pipeline.envs.base import ToolSpec
from pipeline.models import Call, Evidence, RejectionCode
from pipeline.quantities import Arithmetic, Quantity, sem_quantity, square_means_something
from pipeline.semantics import Sem
from pipeline.validate.context import Reject, ValidationContext

#: (where the value came from, its quantity)
Operand = tuple[str, Quantity]


def check_dimensions(ctx: ValidationContext) -> None:
    """Reject a sum of a mass and a length, a product of two masses, a mass as an exponent,
    a conversion of a volume from kilometres."""
    derived: dict[str, Quantity | None] = {}
    specs = {call.id: resolve_tool(call.tool)[1] for call in ctx.task.calls}
    for call in ctx.task.calls:
        spec = specs[call.id]
        derived[call.id] = _judged(call, spec, specs, derived)


def _judged(
    call: Call,
    spec: ToolSpec,
    specs: Mapping[str, ToolSpec],
    derived: Mapping[str, Quantity | None],
) -> Quantity | None:
    """Check ``call``; return the quantity of its result where arithmetic keeps one."""
    if spec.converts is not None:
        conversion = spec.converts
        given = _operands(call, specs, derived, conversion.value)
        unit_in = conversion.quantity(call.arguments, conversion.unit_in)
        for source, quantity in given:
            if unit_in is None:
                break
            measured = conversion.unit_dimension(quantity.unit_name) if quantity.unit_name else None
            other_unit = measured is not None and unit_in.unit != _unit_key(measured)
            if quantity.dimension != unit_in.dimension or other_unit:
                _reject(
                    call,
                    f"converts {quantity.described()} ({source}) as if it were in "
                    f"{unit_in.unit_name!r}",
                    source,
                )
        return conversion.quantity(call.arguments, conversion.unit_out)
    if spec.arithmetic is None:
        return None
    names = [name for name in spec.param_names if spec.param_types.get(name) is Sem.NUMBER]
    per_name = [_operands(call, specs, derived, name) for name in names]
    operands = [operand for group in per_name for operand in group]
    if spec.arithmetic in (Arithmetic.COMBINE, Arithmetic.KEEP, Arithmetic.RATIO):
        common = _common(call, operands)
        return common if spec.arithmetic is not Arithmetic.RATIO else None
    if spec.arithmetic is Arithmetic.PRODUCT and len(operands) >= 2:
        (first, a), (second, b) = operands[:2]
        if a.dimension == b.dimension and not square_means_something(a.dimension):
            _reject(
                call,
                f"multiplies {a.described()} ({first}) by {b.described()} ({second}): "
                f"a product of two {_plural(a.dimension)} means nothing",
                first,
            )
    if spec.arithmetic is Arithmetic.ROOT:
        for source, quantity in operands:
            _reject(
                call,
                f"takes the {call.function.replace('_', ' ')} of {quantity.described()}"
                f" ({source}), which means nothing",
                source,
            )
    if spec.arithmetic is Arithmetic.POWER and len(per_name) >= 2:
        for source, quantity in per_name[1]:
            _reject(call, f"raises a number to {quantity.described()} ({source})", source)
        for source, quantity in per_name[0]:
            if not square_means_something(quantity.dimension):
                _reject(
                    call,
                    f"raises {quantity.described()} ({source}) to a power, which means nothing",
                    source,
                )
    return None


def _common(call: Call, operands: list[Operand]) -> Quantity | None:
    """The one quantity every known operand has; reject operands that differ."""
    if not operands:
        return None
    first_source, first = operands[0]
    for source, quantity in operands[1:]:
        if quantity.dimension != first.dimension:
            _reject(
                call,
                f"combines {first.described()} ({first_source}) with {quantity.described()} "
                f"({source})",
                source,
            )
        if _same_kind_of_unit(first, quantity) and first.unit != quantity.unit:
            _reject(
                call,
                f"combines {first.described()} ({first_source}) with {quantity.described()} "
                f"({source}) without converting one to the other's unit",
                source,
            )
    return first


def _operands(
    call: Call,
    specs: Mapping[str, ToolSpec],
    derived: Mapping[str, Quantity | None],
    parameter: str,
) -> list[Operand]:
    """The known quantities bound to ``parameter`` (or to its elements)."""
    found: list[Operand] = []
    for slot, source in call.bindings.items():
        if slot != parameter and slot.split(".", 1)[0] != parameter:
            continue
        producer, _, path = source.partition(".")
        quantity = _source_quantity(specs[producer], derived.get(producer), path)
        if quantity is not None:
            found.append((source, quantity))
    return found


def _source_quantity(producer: ToolSpec, derived: Quantity | None, path: str) -> Quantity | None:
    # a ratio's result is what its tool declares (a percentage), whatever it divided
    if producer.converts is not None or producer.arithmetic not in (None, Arithmetic.RATIO):
        return derived
    declared = producer.result_type(path) or producer.result_type(f"{path}.0" if path else "0")
    return sem_quantity(declared)


def _same_kind_of_unit(a: Quantity, b: Quantity) -> bool:
    """Units compare only within one source: two conversions, or two semantic types."""
    if a.unit is None or b.unit is None:
        return False
    return a.unit.split(":", 1)[0] == b.unit.split(":", 1)[0]


def _unit_key(measured: tuple[str, str]) -> str:
    return f"unit:{measured[0]}:{measured[1]}"


def _plural(dimension: str) -> str:
    return {"mass": "masses", "money": "amounts of money"}.get(dimension, f"{dimension}s")


def _reject(call: Call, what: str, source: str) -> NoReturn:
    raise Reject(
        RejectionCode.DEPENDENCY_DIMENSION_MISMATCH,
        f"step {call.id} ({call.tool}) {what}",
        Evidence(step_id=call.id, output={"source": source}),
    )
