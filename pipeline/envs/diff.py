"""Readable differences between two JSON states (a hash says *that* they differ, this says how)."""

from __future__ import annotations

import json
from typing import Any

_MAX_SHOWN = 120


#: built once: json.dumps with options builds a new encoder on every call
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def _show(value: Any) -> str:
    text = _ENCODER.encode(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def state_diff(before: Any, after: Any, path: str = "", limit: int = 200) -> list[str]:
    """List changes as ``path: old -> new``, ``+ path: value`` and ``- path: value`` lines.

    Dicts are compared key by key and lists element by element, so a single changed field deep
    in a tree shows as one line. At most ``limit`` lines are returned.
    """
    out: list[str] = []
    _walk(before, after, path, out, limit)
    return out


def _walk(before: Any, after: Any, path: str, out: list[str], limit: int) -> None:
    if len(out) >= limit or before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key, old in before.items():
            if key not in after:
                out.append(f"- {_join(path, key)}: {_show(old)}")
            elif old != after[key]:  # checked here: most keys are unchanged, skip the call
                _walk(old, after[key], _join(path, key), out, limit)
            if len(out) >= limit:
                return
        for key in after:
            if key not in before:
                out.append(f"+ {_join(path, key)}: {_show(after[key])}")
                if len(out) >= limit:
                    return
        return
    if isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            if index >= len(after):
                out.append(f"- {path}[{index}]: {_show(before[index])}")
            elif index >= len(before):
                out.append(f"+ {path}[{index}]: {_show(after[index])}")
            elif before[index] != after[index]:
                _walk(before[index], after[index], f"{path}[{index}]", out, limit)
            if len(out) >= limit:
                return
        return
    out.append(f"{path or '(root)'}: {_show(before)} -> {_show(after)}")
