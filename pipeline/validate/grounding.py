"""Grounding: each literal argument comes from the question, the initial state or an output.

Normalisations allowed when matching (and nothing else):
- strings match case-insensitively with runs of whitespace collapsed, as a substring of the
  question, of any string or key in the initial state, or of any earlier output;
- numbers match numerically (``3`` = ``3.0``; a numeric string ``"6500"`` = ``6500.0``),
  written with thousands separators (``1,000``), a currency sign, as a percentage (``15%``
  grounds ``15`` and ``0.15``), or as an English word from zero to twenty; numbers also
  ground when they appear inside state or output text;
- booleans and ``None`` are flags, always grounded; a value the tool's schema itself offers
  (an enum choice, the parameter's default, or a value quoted in the parameter's description,
  such as ``'..'`` for the parent folder) is grounded by the API;
- an argument declared in ``bindings`` is grounded by its producer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from pipeline.envs import resolve_tool
from pipeline.models import Evidence, RejectionCode
from pipeline.validate.context import Reject, ValidationContext

_NUMBER = re.compile(r"(?<![\w.])[-+]?[$€£]?\d[\d,]*(?:\.\d+)?%?")
_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
]  # fmt: skip
_WORD_NUMBER = re.compile(rf"\b(?:{'|'.join(_WORDS)})\b", re.IGNORECASE)


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def numbers_in(text: str) -> set[float]:
    found: set[float] = set()
    for match in _NUMBER.finditer(text):
        token = match.group().replace(",", "").replace("$", "").replace("€", "").replace("£", "")
        percent = token.endswith("%")
        token = token.rstrip("%")
        try:
            value = float(token)
        except ValueError:
            continue
        found.add(value)
        if percent:
            found.add(value / 100)
    for match in _WORD_NUMBER.finditer(text):
        found.add(float(_WORDS.index(match.group().lower())))
    return found


def _strings_and_numbers(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings_and_numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_and_numbers(item)
    else:
        yield value


def _float(value: int | float) -> float:
    """As a float; an integer too large for one is infinite, as its digits in text would be."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


class Sources:
    """Everything a literal may come from, indexed once per task for fast lookups."""

    def __init__(self, question: str, initial_state: Any) -> None:
        self.question = _normal(question)
        self._texts: list[str] = [self.question]
        self._numbers: set[float] = numbers_in(question)
        self.add(initial_state)

    def add(self, value: Any) -> None:
        for leaf in _strings_and_numbers(value):
            if isinstance(leaf, bool) or leaf is None:
                continue
            if isinstance(leaf, int | float):
                self._numbers.add(_float(leaf))
            elif isinstance(leaf, str):
                self._texts.append(_normal(leaf))
                self._numbers |= numbers_in(leaf)

    def grounds(self, value: Any) -> bool:
        if value is None or isinstance(value, bool):
            return True
        if isinstance(value, int | float):
            return _float(value) in self._numbers
        if isinstance(value, str):
            needle = _normal(value)
            if not needle or any(needle in text for text in self._texts):
                return True
            number = _as_number(needle)
            return number is not None and number in self._numbers
        return False


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _literals(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _literals(item)
    elif isinstance(value, list):
        for item in value:
            yield from _literals(item)
    else:
        yield value


def schema_offers(schema: dict[str, Any], value: Any) -> bool:
    if "default" in schema and schema["default"] == value:
        return True
    description = str(schema.get("description", ""))
    if (
        isinstance(value, str)
        and value
        and (f"'{value}'" in description or f'"{value}"' in description)
    ):
        return True
    options = list(schema.get("enum", []))
    for branch in schema.get("anyOf", []) + [schema.get("items", {})]:
        if isinstance(branch, dict):
            options += branch.get("enum", [])
            if "const" in branch:
                options.append(branch["const"])
    return value in options


def check_grounding(ctx: ValidationContext) -> None:
    sources = Sources(ctx.task.question, ctx.task.initial_config)
    for call, step in zip(ctx.task.calls, ctx.traces):
        _, spec = resolve_tool(call.tool)
        bound = {slot.split(".", 1)[0] for slot in call.bindings if "." not in slot}
        for name, value in call.arguments.items():
            if name in bound:
                continue
            schema = spec.parameters.get("properties", {}).get(name, {})
            for index, literal in enumerate(_literals(value)):
                if f"{name}.{index}" in call.bindings or schema_offers(schema, literal):
                    continue
                if not sources.grounds(literal):
                    raise Reject(
                        RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT,
                        f"step {call.id} passes {name}={literal!r}, which appears neither in the "
                        "question, nor in the initial state, nor in an earlier output",
                        Evidence(step_id=call.id, output=call.arguments),
                    )
        sources.add(step.result)
