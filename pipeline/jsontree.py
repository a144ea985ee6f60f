"""Walking JSON values (tool results, arguments, states): one walker for every stage."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


def leaves(
    value: Any, path: str = "", keep_key: Callable[[str], object] | None = None
) -> Iterator[tuple[str, Any]]:
    """Every scalar inside ``value`` with its dotted path (list indices as numbers), in order.

    ``keep_key`` prunes the walk: a dict entry whose key it rejects is skipped with all it holds.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if keep_key is not None and not keep_key(str(key)):
                continue
            yield from leaves(item, f"{path}.{key}" if path else str(key), keep_key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}.{index}" if path else str(index), keep_key)
    else:
        yield path, value


def scalars(value: Any, with_keys: bool = False) -> Iterator[Any]:
    """Every scalar inside ``value``; with ``with_keys`` each dict key (as text) before its item."""
    if isinstance(value, dict):
        for key, item in value.items():
            if with_keys:
                yield str(key)
            yield from scalars(item, with_keys)
    elif isinstance(value, list):
        for item in value:
            yield from scalars(item, with_keys)
    else:
        yield value


def strings(value: Any, with_keys: bool = True) -> Iterator[str]:
    """Every text inside ``value`` (dict keys included by default)."""
    return (item for item in scalars(value, with_keys) if isinstance(item, str))


def keys(value: Any) -> Iterator[str]:
    """Every dict key inside ``value`` (as text): the names a state stores entries under."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys(item)


def at_path(value: Any, path: str) -> Any:
    """The item at a dotted ``path`` (``messages.0.sender_id``); ``KeyError`` naming the first
    step that is not there."""
    for key in filter(None, path.split(".")):
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise KeyError(key)
    return value
