"""What a rejection names as at fault, so the sample page can mark it in the rendered task.

The checks point at a fault in three ways: ``evidence.step_id`` names the call; a structured
``evidence.output`` names a binding (``{"binding": {slot: source}}``), an argument
(``{"argument": name, ...}``) or a piece of the question (``span``, ``quoted``, ``condition``);
and the grounding and dependency checks name the argument in their message
(``passes name='x'``, ``binds 'slot' to ...``). Only names that exist on the failing call are
taken from a message, so an unusual wording marks nothing rather than the wrong thing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.models import Call, Rejection, Task

#: evidence keys whose string value is quoted from the question
QUESTION_KEYS = ("span", "quoted", "condition")
#: shorter pieces would mark every digit or article of the question
MIN_SPAN = 2


@dataclass
class Faults:
    """Everything the rejections of one sample point at."""

    calls: set[str] = field(default_factory=set)
    #: call id -> argument names at fault (a binding's slot ``files.0`` marks ``files``)
    arguments: dict[str, set[str]] = field(default_factory=dict)
    #: call id -> binding slots at fault
    bindings: dict[str, set[str]] = field(default_factory=dict)
    #: pieces of the question at fault
    spans: list[str] = field(default_factory=list)

    def argument(self, call_id: str, name: str) -> bool:
        return name in self.arguments.get(call_id, set())

    def binding(self, call_id: str, slot: str) -> bool:
        return slot in self.bindings.get(call_id, set())


def _named_in(message: str, name: str) -> bool:
    """Whether a check's message names ``name`` the way the checks write it."""
    quoted = f"{name!r}" in message
    assigned = re.search(rf"(?<![\w.]){re.escape(name)}=", message) is not None
    return quoted or assigned


def _mark(faults: Faults, call: Call | None, rejection: Rejection) -> None:
    output = rejection.evidence.output
    arguments: set[str] = set()
    slots: set[str] = set()
    if isinstance(output, dict):
        binding = output.get("binding")
        if isinstance(binding, dict):
            slots.update(str(slot) for slot in binding)
        argument = output.get("argument")
        if isinstance(argument, str):
            arguments.add(argument)
        for key in QUESTION_KEYS:
            piece = output.get(key)
            if isinstance(piece, str) and len(piece.strip()) >= MIN_SPAN:
                faults.spans.append(piece)
    if call is None:
        return
    if not arguments and not slots:
        slots.update(slot for slot in call.bindings if _named_in(rejection.message, slot))
        arguments.update(name for name in call.arguments if _named_in(rejection.message, name))
        # an unbound list element ("files.0") in a message marks its argument
        arguments.update(
            name
            for name in call.arguments
            if re.search(rf"'{re.escape(name)}\.\d+'", rejection.message)
        )
    arguments.update(slot.split(".", 1)[0] for slot in slots)
    faults.arguments.setdefault(call.id, set()).update(arguments & set(call.arguments))
    faults.bindings.setdefault(call.id, set()).update(slots & set(call.bindings))


def find_faults(task: Task | None, rejections: Sequence[Rejection]) -> Faults:
    faults = Faults()
    calls = {call.id: call for call in task.calls} if task else {}
    for rejection in rejections:
        step = rejection.evidence.step_id
        if step:
            faults.calls.add(step)
        _mark(faults, calls.get(step) if step else None, rejection)
    return faults


def mark_question(question: str, spans: Sequence[str]) -> list[tuple[str, bool]]:
    """The question cut into ``(text, at_fault)`` pieces; every occurrence of a span is marked
    (case-insensitively: a check may quote it lower-cased)."""
    cuts: list[tuple[int, int]] = []
    for span in spans:
        for found in re.finditer(re.escape(span.strip()), question, re.IGNORECASE):
            cuts.append(found.span())
    merged: list[tuple[int, int]] = []
    for start, end in sorted(cuts):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    pieces: list[tuple[str, bool]] = []
    position = 0
    for start, end in merged:
        if start > position:
            pieces.append((question[position:start], False))
        pieces.append((question[start:end], True))
        position = end
    if position < len(question):
        pieces.append((question[position:], False))
    return pieces
