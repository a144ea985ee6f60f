"""The tool graph: which result fields can feed which parameters, derived from semantic types.

An edge ``producer.field -> consumer(parameter)`` exists when the field's semantic type is the
parameter's type, or one of the few documented widenings of :func:`pipeline.semantics.feeds`
(a folder name is a path, any quantity is a plain number, anything can be written as text).
Edges are *strict* when the types are equal or a documented widening between specific types:
generators bind only along strict edges, because "send the tyre pressure as a message" is
allowed but not a request worth inventing. Units that differ are bridged only through a real
conversion tool (one that takes one unit of a kind and returns another of the same kind), which
is itself a node of the graph: ``gallons -> liter_to_gallon... -> fillFuelTank``.

Nothing here is written per tool: everything follows from the declarations beside each tool's
signature, so a new tool joins the graph by declaring its types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from pipeline.envs import ENVIRONMENTS
from pipeline.semantics import FREE_FORM_TARGETS, Sem, feeds, kind

#: types never invented as a data flow by a generator: a confirmation text, a yes/no result,
#: an enum choice, a status word — binding them reads as nonsense ("follow the user named
#: 'Successfully retweeted'")
#: — and free text, which a generator can only copy verbatim ("comment a post's own text on
#: it"), never use for a purpose a reader would recognise
NOT_GENERATED: frozenset[Sem] = frozenset({Sem.MESSAGE, Sem.FLAG, Sem.OPTION, Sem.STATUS, Sem.TEXT})


#: types whose values are read in terms of another value of the same call or result (see
#: :mod:`pipeline.semantics`): a data text is in a format named beside it, an amount in a
#: currency named beside it. The qualifier belongs to the value it qualifies, so a generator
#: takes it from the step that produced that value, never from elsewhere or by guessing.
QUALIFIERS: dict[Sem, Sem] = {Sem.DATA_TEXT: Sem.FORMAT, Sem.MONEY: Sem.CURRENCY}


@dataclass(frozen=True)
class Edge:
    producer: str  # qualified tool
    field: str  # result path pattern
    consumer: str  # qualified tool
    parameter: str
    sem: Sem  # the field's type
    strict: bool  # equal types (or a documented widening between specific types)


def _fields(env_names: Iterable[str]) -> list[tuple[str, str, Sem]]:
    found = []
    for env_name in env_names:
        for name, spec in ENVIRONMENTS[env_name].tool_specs().items():
            for pattern, sem in spec.result_types:
                found.append((f"{env_name}.{name}", pattern, sem))
    return found


def _parameters(env_names: Iterable[str]) -> list[tuple[str, str, Sem]]:
    found = []
    for env_name in env_names:
        for name, spec in ENVIRONMENTS[env_name].tool_specs().items():
            for parameter, sem in spec.param_types.items():
                found.append((f"{env_name}.{name}", parameter, sem))
    return found


@cache
def tool_graph(env_names: tuple[str, ...] | None = None) -> tuple[Edge, ...]:
    """Every edge among the tools of ``env_names`` (all environments by default)."""
    names = tuple(ENVIRONMENTS) if env_names is None else env_names
    edges = []
    for producer, pattern, sem in _fields(names):
        for consumer, parameter, wanted in _parameters(names):
            if not feeds(sem, wanted):
                continue
            strict = sem is wanted or (wanted not in FREE_FORM_TARGETS and wanted is not Sem.NUMBER)
            edges.append(Edge(producer, pattern, consumer, parameter, sem, strict))
    return tuple(edges)


#: kinds whose values play one role wherever they appear: an id, a name, a place, a date or a
#: piece of text is the same thing in the call that returns it and in the call that takes it.
#: A measured quantity is not: the fuel level a car reports is not an amount to add, a
#: balance is not a price — so quantities flow only into conversion tools and arithmetic.
_REFERENCE_EXCLUDED_KINDS = frozenset(
    {
        "money", "percent", "count", "distance", "pressure", "volume", "temperature", "speed",
        "weight", "voltage", "force", "ratio", "level", "size", "exchange_rate", "duration",
        "angle", "index", "seed", "field_value", "year",
    }
)  # fmt: skip


def generative_edge(source: Sem | None, target: Sem | None, consumer: str | None = None) -> bool:
    """Whether a generator may bind a value of ``source`` to a parameter of ``target`` of the
    tool ``consumer``: same meaning, a reference-like kind (or arithmetic on plain numbers),
    and a quantity only into a conversion tool."""
    if source is None or target is None or source in NOT_GENERATED:
        return False
    if not (source is target or feeds(source, target)):
        return False
    if target in FREE_FORM_TARGETS and source is not target:
        return False
    if kind(source) in _REFERENCE_EXCLUDED_KINDS:
        return consumer in conversion_tools() and source is target
    if target is Sem.NUMBER:
        return source is Sem.NUMBER
    return True


@cache
def conversion_tools() -> frozenset[str]:
    """Tools that turn a quantity in one unit into the same kind in another unit."""
    found = set()
    for env_name, cls in ENVIRONMENTS.items():
        for name, spec in cls.tool_specs().items():
            inputs = {sem for sem in spec.param_types.values() if "." in sem.value}
            outputs = {sem for _, sem in spec.result_types if "." in sem.value}
            if any(kind(a) == kind(b) and a is not b for a in inputs for b in outputs):
                found.add(f"{env_name}.{name}")
    return frozenset(found)
