"""Grounding: every literal argument is something an agent can **observe**.

An agent sees the question and what its calls return, nothing else. So a literal argument must
be stated in the question, returned by an earlier call, offered by the tool's own schema (an
enum choice, the parameter's default, a value quoted or a number stated in the parameter's
description), or composed from such pieces by the rules below. A value that only sits
in the hidden initial state (an access token no call returns and the question never states) is
rejected as ``grounding.hidden_state``; a value found nowhere as
``grounding.ungrounded_argument``.

Matching rules (and nothing else):
- names and ids (the semantic types in :data:`pipeline.semantics.EXACT_TYPES`: file names, user
  ids, stock symbols ...) match **case-sensitively**, as a whole token of the question or of an
  observed string, or equal to an observed dict key: ``maya_codes`` does not ground
  ``Maya_codes``;
- other strings match case-insensitively with runs of whitespace collapsed, as a substring of
  the question or of an observed string;
- a string **composed** from observed pieces is grounded: split at whitespace and the
  separators ``, ; : | /``, every piece matches as above (a returned list joined into a
  sentence, a message built from words of the question);
- numbers match numerically (``3`` = ``3.0``; ``"6500"`` = ``6500``), written with thousands
  separators, a currency sign, as a percentage (``15%`` grounds ``15`` and ``0.15``) or as an
  English word from zero to twenty, in the question or inside observed text;
- a number **derived** from observed numbers is grounded: the length of a returned list (of two
  or more items: a one-item listing grounds no count of 1), the
  sum of a returned list of numbers, or the sum, difference, product or quotient of two
  observed numbers (rounded to 2 decimals), for example the room left in a tank; a number
  of the documentation pairs only with one a call returned: the tank's documented capacity
  minus the level a status call reported grounds the room left, but the capacity minus a number
  of the question does not (the question's "I've just put in 13.2 gallons" is no level), and
  two numbers of the documentation (the bounds of "priority from 1 to 5") ground no third;
  operands are numbers of the question, of the documentation and numeric fields of results,
  never numbers inside returned text (a long status text's "AudioVolume: 15" is no fuel level);
- "the last line", "the first entry" (a singular noun after last/first/top ...) state the
  count 1; "the last lines" states none;
- booleans and ``None`` are flags, always grounded; an argument declared in ``bindings`` is
  grounded by its producer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from functools import cache, lru_cache
from typing import Any

from pipeline.conditions import contradicted_choices
from pipeline.envs import ToolError, resolve_tool
from pipeline.jsontree import scalars
from pipeline.models import Call, Evidence, RejectionCode, Task
from pipeline.semantics import EXACT_TYPES, Sem
from pipeline.validate.context import Reject, ValidationContext

_NUMBER = re.compile(r"(?<![\w.])[-+]?[$€£]?\d[\d,]*(?:\.\d+)?%?")
_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
]  # fmt: skip
_WORD_NUMBER = re.compile(rf"\b(?:{'|'.join(_WORDS)})\b", re.IGNORECASE)
_PIECES = re.compile(r"[\s,;:|/]+")
#: "the last line", "the first entry": a count of one, stated by a singular noun
_ONE_PICKED = re.compile(
    r"\b(?:the|its|my)\s+(?:very\s+)?(?:last|first|final|top|latest|newest|oldest)\s+"
    r"(?!\w+s\b)[a-z]+\b(?!\s+(?:of|in|from)\s+(?:the|each|every)\s+\w+s\b)",
    re.IGNORECASE,
)
#: a span the question puts in quotes (an apostrophe inside a word does not end it)
_QUOTED = re.compile(r"(?<!\w)'([^'\n]+?)'(?!\w)|\"([^\"\n]+)\"")
#: pairwise arithmetic is tried only below this many observed numbers (it is quadratic)
MAX_DERIVED_OPERANDS = 80
#: returned texts longer than this ground text, but none of the numbers inside them
MAX_TEXT_FOR_NUMBERS = 400


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


@lru_cache(maxsize=16384)  # outputs repeat the same texts (file contents, messages) often
def numbers_in(text: str) -> frozenset[float]:
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
    return frozenset(found)


def _float(value: int | float) -> float:
    """As a float; an integer too large for one is infinite, as its digits in text would be."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def token_in(needle: str, haystack: str) -> bool:
    """``needle`` occurs in ``haystack`` not glued to further word characters."""
    start = haystack.find(needle)
    while start != -1:
        end = start + len(needle)
        before = haystack[start - 1] if start else " "
        after = haystack[end] if end < len(haystack) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            return True
        start = haystack.find(needle, start + 1)
    return False


class Sources:
    """Texts and numbers a literal may come from, indexed once per task."""

    def __init__(self, question: str, *observed: Any) -> None:
        self.question = _normal(question)
        self._raw_texts: list[str] = [question]
        self._texts: list[str] = [self.question]
        self._keys: set[str] = set()
        self._numbers: set[float] = set(numbers_in(question))
        if _ONE_PICKED.search(question):
            self._numbers.add(1.0)  # "the last line" asks for one line; "the last lines" not
        self._lists: list[list[Any]] = []
        self._derived: set[float] | None = None
        self._documented: set[float] = set()
        self._stated: set[float] = set(self._numbers)  # from the question and the calls
        self._returned: set[float] = set()  # from the calls only
        for value in observed:
            self.add(value)

    def add(self, value: Any) -> None:
        self._derived = None
        self._collect_lists(value)
        if isinstance(value, dict):
            self._keys.update(str(key) for key in value)
        for leaf in scalars(value, with_keys=True):
            if isinstance(leaf, bool) or leaf is None:
                continue
            if isinstance(leaf, int | float):
                self._numbers.add(_float(leaf))
                self._stated.add(_float(leaf))
                self._returned.add(_float(leaf))
            elif isinstance(leaf, str):
                self._raw_texts.append(leaf)
                self._texts.append(_normal(leaf))
                # numbers inside returned text ground a value as written, but take no part
                # in arithmetic; and only a short text's: a long status blob or file body
                # holds so many numbers that one matches by chance (a fuel amount of 35
                # "found" in a car's 2,000-character metadata text)
                if len(leaf) <= MAX_TEXT_FOR_NUMBERS:
                    self._numbers |= numbers_in(leaf)

    def add_numbers(self, numbers: Iterable[float]) -> None:
        """Numbers the tools' documentation states: operands of arithmetic with a number a
        call returned (the tank's capacity minus its level), never values by themselves: "fill
        the tank" is no request to add the tank's whole capacity of 50 gallons to what is
        already in it. A parameter's own documentation offers its values directly
        (:func:`schema_offers`: "from 0 to 1 (fully)" grounds pressing the pedal to 1)."""
        self._derived = None
        self._documented.update(numbers)

    def _collect_lists(self, value: Any) -> None:
        if isinstance(value, list):
            self._lists.append(value)
            for item in value:
                self._collect_lists(item)
        elif isinstance(value, dict):
            self._keys.update(str(key) for key in value)
            for item in value.values():
                self._collect_lists(item)

    # ----- matching ---------------------------------------------------------------------
    def grounds(self, value: Any, sem: Sem | None = None) -> bool:
        if value is None or isinstance(value, bool):
            return True
        if _is_number(value):
            return self._grounds_number(_float(value))
        if isinstance(value, str):
            if sem in EXACT_TYPES:
                return self._grounds_exact(value)
            if self._grounds_text(value):
                return True
            pieces = [piece for piece in _PIECES.split(value) if piece]
            return len(pieces) > 1 and all(self._grounds_text(piece) for piece in pieces)
        return False

    def _grounds_exact(self, value: str) -> bool:
        if not value.strip() or value in self._keys:
            return True
        if any(token_in(value, text) for text in self._raw_texts):
            return True
        number = _as_number(value)
        return number is not None and number in self._numbers

    def _grounds_text(self, value: str) -> bool:
        needle = _normal(value)
        if not needle or any(needle in text for text in self._texts):
            return True
        number = _as_number(needle)
        return number is not None and self._grounds_number(number)

    def _grounds_number(self, number: float) -> bool:
        if number in self._numbers:
            return True
        return round(number, 2) in self.derived_numbers()

    def derived_numbers(self) -> set[float]:
        """Numbers composed from observed ones (see the module docstring), rounded."""
        if self._derived is None:
            derived: set[float] = {round(n, 2) for n in self._numbers if math.isfinite(n)}
            for items in self._lists:
                if len(items) > 1:  # a one-item listing is no count of 1 ("the last lines")
                    derived.add(float(len(items)))
                numeric = [_float(item) for item in items if _is_number(item)]
                if numeric and len(numeric) == len(items):
                    total = math.fsum(numeric)
                    if math.isfinite(total):
                        derived.add(round(total, 2))
            operands = sorted(
                n for n in self._stated | self._documented if math.isfinite(n) and abs(n) < 1e12
            )
            if len(operands) <= MAX_DERIVED_OPERANDS:
                stated, returned = self._stated, self._returned
                for i, a in enumerate(operands):
                    for b in operands[i:]:
                        if (a not in stated and b not in returned) or (
                            b not in stated and a not in returned
                        ):
                            continue  # a documented number pairs only with a returned one
                        derived.update((round(a + b, 2), round(abs(a - b), 2), round(a * b, 2)))
                        if b:
                            derived.add(round(a / b, 2))
                        if a:
                            derived.add(round(b / a, 2))
            self._derived = derived
        return self._derived


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
    if _is_number(value) and _float(value) in numbers_in(description):
        return True  # "from 0 (not at all) to 1 (fully)" offers 1
    options = list(schema.get("enum", []))
    for branch in schema.get("anyOf", []) + [schema.get("items", {})]:
        if isinstance(branch, dict):
            options += branch.get("enum", [])
            if "const" in branch:
                options.append(branch["const"])
    return value in options


@cache
def documented_numbers(qualified_tool: str) -> frozenset[float]:
    """Numbers a tool's documentation states (a tank's capacity, a speed step)."""
    spec = resolve_tool(qualified_tool)[1]
    texts = [spec.description, spec.returns]
    texts += [str(prop.get("description", "")) for prop in spec.parameters["properties"].values()]
    return frozenset(number for text in texts for number in numbers_in(text))


def observable_sources(task: Task) -> Sources:
    """What an agent knows before its first call: the question and the tools' documentation."""
    sources = Sources(task.question)
    for call in task.calls:
        try:
            sources.add_numbers(documented_numbers(call.tool))
        except ToolError:  # unknown tools are rejected by the static checks
            continue
    return sources


def respelt_quote(question: str, literal: str) -> str | None:
    """The question's quote of ``literal`` in other letter case (``'Maya_codes'`` for
    ``maya_codes``), when the question never writes it exactly: a quoted value is passed as
    written, so the two disagree."""
    if token_in(literal, question):
        return None
    wanted = literal.casefold()
    for match in _QUOTED.finditer(question):
        quoted = match.group(1) or match.group(2)
        if quoted != literal and quoted.casefold() == wanted:
            return quoted
    return None


def _check_quoted_case(call: Call, name: str, literal: str, question: str) -> None:
    quoted = respelt_quote(question, literal)
    if quoted is not None:
        raise Reject(
            RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT,
            f"step {call.id} passes {name}={literal!r}, but the question quotes it as"
            f" {quoted!r}: a quoted value is passed exactly as written, case included",
            Evidence(step_id=call.id, output=call.arguments),
        )


def check_grounding(ctx: ValidationContext) -> None:
    sources = observable_sources(ctx.task)
    hidden: Sources | None = None
    for call, step in zip(ctx.task.calls, ctx.traces):
        _, spec = resolve_tool(call.tool)
        bound = {slot.split(".", 1)[0] for slot in call.bindings if "." not in slot}
        for name, value in call.arguments.items():
            if name in bound:
                continue
            schema = spec.parameters.get("properties", {}).get(name, {})
            sem = spec.param_types.get(name)
            for index, literal in enumerate(scalars(value)):
                if f"{name}.{index}" in call.bindings:
                    continue
                if isinstance(literal, str) and literal:
                    _check_quoted_case(call, name, literal, ctx.task.question)
                if schema_offers(schema, literal):
                    continue
                if sources.grounds(literal, sem):
                    continue
                if hidden is None:
                    hidden = Sources("", ctx.task.initial_config)
                if hidden.grounds(literal, sem):
                    raise Reject(
                        RejectionCode.GROUNDING_HIDDEN_STATE,
                        f"step {call.id} passes {name}={literal!r}, which only the hidden "
                        "initial state holds: the question does not state it and no earlier "
                        "call returns it",
                        Evidence(step_id=call.id, output=call.arguments),
                    )
                raise Reject(
                    RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT,
                    f"step {call.id} passes {name}={literal!r}, which appears neither in the "
                    "question nor in an earlier output",
                    Evidence(step_id=call.id, output=call.arguments),
                )
        sources.add(step.result)
    for j, passed, decided in contradicted_choices(ctx.task.question, ctx.task.calls, ctx.outputs):
        call = ctx.task.calls[j]
        raise Reject(
            RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT,
            f"step {call.id} passes {passed!r}, but the result it depends on says {decided!r}",
            Evidence(step_id=call.id, output={"passed": passed, "decided": decided}),
        )
