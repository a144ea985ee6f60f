"""Helpers the environment tests share; pytest puts this folder on the path (``pythonpath``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from pipeline.envs import Environment, ToolError


def refusal(
    env: Environment[Any], tool: str, arguments: Mapping[str, Any], match: str | None = None
) -> str:
    """The message of a call that must be refused (a ``ToolError`` whose message matches the
    regular expression ``match``) and must leave the state exactly as it was, generator
    position included."""
    before = env.snapshot()
    with pytest.raises(ToolError, match=match) as raised:
        env.invoke(tool, arguments)
    assert env.snapshot() == before, f"refused {tool} changed the state"
    return str(raised.value)
