"""Ids an environment draws, compared by the call that drew them, not by their value.

Two independent ticket creations run in either order give each ticket the other's id (58 and
59 swap), and random message ids swap the same way. The user asked for two tickets, not for
which one gets 58; forcing the two creations into one order for that reason makes a dependency
the question never states (a blind reader's "wrong-dependency"). So when two runs of the same
calls are compared, the ids one run's calls drew are first renamed to the ids the same calls
drew in the other run, and only then are results and final states compared.

Which values are drawn ids: the result fields whose semantic type is one of
:data:`DRAWN_ID_TYPES` (``@tool(returns=...)``), in the results of the calls that drew them. A
renaming applies to whole values,
to dict keys that spell the id and to the id as a whole token inside a text ("Ticket 58 has
been closed"), and only when it is a consistent one-to-one renaming.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pipeline.envs import ToolError, resolve_tool
from pipeline.jsontree import leaves
from pipeline.semantics import Sem

#: ids that creating something draws from a counter or a random generator
DRAWN_ID_TYPES: frozenset[Sem] = frozenset(
    {
        Sem.ORDER_ID,
        Sem.BOOKING_ID,
        Sem.TICKET_ID,
        Sem.POST_ID,
        Sem.COMMENT_ID,
        Sem.MESSAGE_ID,
        Sem.INSURANCE_ID,
        Sem.TRANSACTION_ID,
        Sem.GENERATED_ID,
    }
)

Renaming = dict[Any, Any]


def drawn_ids(tool: str, result: Any) -> dict[str, Any]:
    """``path -> value`` of every drawn id in one call's result."""
    try:
        spec = resolve_tool(tool)[1]
    except ToolError:
        return {}
    if not any(sem in DRAWN_ID_TYPES for _, sem in spec.result_types):
        return {}
    return {
        path: value
        for path, value in leaves(result)
        if spec.result_type(path) in DRAWN_ID_TYPES and not isinstance(value, bool)
    }


def renaming(pairs: Iterable[tuple[str, Any, Any]]) -> Renaming | None:
    """The renaming that turns the ids drawn in one run into those the same calls drew in the
    other: ``pairs`` holds (tool, result here, result there) per call. ``None`` when the two
    runs drew ids at different places or the renaming is not one-to-one."""
    mapping: Renaming = {}
    for tool, here, there in pairs:
        # a read keyed by ids drawn earlier (a booking history by booking id) holds each
        # entry under the id that entry got in this run
        spelt = {_spelt(old[1]): _spelt(new) for old, new in mapping.items()}
        mine = {
            ".".join(spelt.get(part, part) for part in path.split(".")): value
            for path, value in drawn_ids(tool, here).items()
        }
        theirs = drawn_ids(tool, there)
        if mine.keys() != theirs.keys():
            return None
        for path, value in mine.items():
            if mapping.setdefault(_key(value), theirs[path]) != theirs[path]:
                return None
    targets = [_key(value) for value in mapping.values()]
    if len(set(targets)) != len(targets):
        return None
    return {old: new for old, new in mapping.items() if old != _key(new)}


def rename(value: Any, mapping: Renaming) -> Any:
    """``value`` with every renamed id replaced, all at once (58 -> 59 and 59 -> 58 swap):
    whole scalars, dict keys that spell an id, and ids standing as whole tokens in a text
    ("Ticket 58 has been closed")."""
    if not mapping:
        return value
    as_text = {_spelt(old[1]): _spelt(new) for old, new in mapping.items()}
    tokens = re.compile(
        r"(?<![\w.])("
        + "|".join(map(re.escape, sorted(as_text, key=len, reverse=True)))
        + r")(?![\w])"
    )
    return _rename(value, mapping, as_text, tokens)


def _rename(value: Any, mapping: Renaming, as_text: dict[str, str], tokens: re.Pattern[str]) -> Any:
    if isinstance(value, dict):
        return {
            (as_text.get(key, key) if isinstance(key, str) else key): _rename(
                item, mapping, as_text, tokens
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_rename(item, mapping, as_text, tokens) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    key = _key(value)
    if key in mapping:
        return mapping[key]
    if isinstance(value, str):
        return tokens.sub(lambda found: as_text[found.group(1)], value)
    return value


def _spelt(value: Any) -> str:
    """An id as a dict key spells it: 58.0 and 58 are "58"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _key(value: Any) -> tuple[str, Any]:
    # 58 and 58.0 are one id; "58" stays a string id
    if isinstance(value, int | float) and not isinstance(value, bool):
        return ("number", float(value))
    return (type(value).__name__, value)
