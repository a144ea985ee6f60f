"""The ``rename`` operator: rename entities consistently across state, question and calls.

An entity is a string the question quotes verbatim that also occurs in the initial state or in
a call's arguments — a file, a folder, a user, a title. Each chosen entity gets a fresh name of
the same shape (a file keeps its extension, capitalisation is kept) that occurs nowhere in the
task, and every occurrence is replaced: state keys and values, text inside longer strings (as
a whole word), the question and the arguments. Entities the simulators also know from built-in
tables (a stock symbol, an airport) may no longer resolve after renaming; validation rejects
those candidates, so the operator need not know the tables.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from pipeline.envs import ENVIRONMENTS
from pipeline.models import Lineage, Task

_NAME_POOL = (
    "amber", "birch", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "iris", "juniper",
    "kestrel", "lumen", "maple", "nectar", "onyx", "pepper", "quartz", "raven", "sierra",
    "tundra", "umber", "violet", "willow", "xenon", "yarrow", "zephyr", "atlas", "beacon",
    "canyon", "dune", "echo", "falcon", "glacier", "heron", "indigo", "jasper", "kelp", "lagoon",
    "meadow", "nova", "orchid", "pylon", "quill", "ridge", "saffron", "thistle", "vertex", "wren",
    "zenith",
)  # fmt: skip
_MIN_LENGTH = 3


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _schema_words(schema: Any, found: set[str]) -> None:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                found.update(value)
            if key in ("enum", "const"):
                found.update(v for v in (value if isinstance(value, list) else [value]))
            _schema_words(value, found)
    elif isinstance(schema, list):
        for item in schema:
            _schema_words(item, found)


@cache
def api_vocabulary() -> frozenset[str]:
    """Names the APIs themselves define (parameter and field names, enum values): never renamed."""
    found: set[str] = set()
    for cls in ENVIRONMENTS.values():
        _schema_words(cls.state_model.model_json_schema(), found)
        for name, spec in cls.tool_specs().items():
            found.add(name)
            _schema_words(spec.parameters, found)
    return frozenset(str(word) for word in found)


def entities(task: Task) -> list[str]:
    """Strings worth renaming: quoted by the question and present in the state or arguments."""
    known = set(_strings(task.initial_config)) | {
        text for call in task.calls for text in _strings(call.arguments)
    }
    found = []
    for text in sorted(known):
        if len(text) < _MIN_LENGTH or text.replace(".", "").isdigit() or "\n" in text:
            continue
        if len(text) > 60 or text in api_vocabulary():
            continue
        if _word_pattern(text).search(task.question):
            found.append(text)
    return found


def _word_pattern(text: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w]){re.escape(text)}(?![\w])")


def _shaped_like(old: str, base: str) -> str:
    stem, dot, extension = old.rpartition(".")
    if dot and stem and extension.isalnum() and len(extension) <= 5:
        return f"{_shaped_like(stem, base)}.{extension}"
    if "_" in old:
        base = f"{base}_{'_'.join(_NAME_POOL[len(base) % len(_NAME_POOL)].split())}"
    if old.isupper():
        return base.upper()
    if old[:1].isupper():
        return base.capitalize()
    return base


def _replace(value: Any, mapping: dict[str, str], patterns: dict[str, re.Pattern[str]]) -> Any:
    if isinstance(value, dict):
        return {
            _replace(key, mapping, patterns): _replace(item, mapping, patterns)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_replace(item, mapping, patterns) for item in value]
    if isinstance(value, str):
        if value in mapping:
            return mapping[value]
        for old, pattern in patterns.items():
            value = pattern.sub(mapping[old], value)
        return value
    return value


def rename(task: Task, rng: random.Random, count: int = 2) -> Task | None:
    """A renamed copy of ``task``, or ``None`` when it has no entity to rename."""
    candidates = entities(task)
    if not candidates:
        return None
    chosen = rng.sample(candidates, min(count, len(candidates)))
    everything = " ".join(_strings(task.model_dump(mode="json"))).lower()
    pool = [name for name in _NAME_POOL if name not in everything]
    rng.shuffle(pool)
    mapping: dict[str, str] = {}
    for old in sorted(chosen, key=len, reverse=True):
        if not pool:
            break
        mapping[old] = _shaped_like(old, pool.pop())
    patterns = {old: _word_pattern(old) for old in sorted(mapping, key=len, reverse=True)}
    calls = [
        call.model_copy(update={"arguments": _replace(call.arguments, mapping, patterns)})
        for call in task.calls
    ]
    renamed = task.model_copy(
        update={
            "question": _replace(task.question, mapping, patterns),
            "initial_config": _replace(task.initial_config, mapping, patterns),
            "calls": calls,
            "expected": None,
            "lineage": Lineage(
                parents=[task.id],
                operator="rename",
                round=task.lineage.round + 1,
                source=task.lineage.source,
            ),
        }
    )
    return renamed.with_content_id()
