"""Simulated, stateful tool environments, one module per category.

``ENVIRONMENTS`` maps a category name to its class; tools are addressed as ``category.tool``.
"""

from __future__ import annotations

from pipeline.envs.base import (
    Environment,
    EnvState,
    SeededState,
    ToolError,
    ToolKind,
    ToolSpec,
    tool,
)
from pipeline.envs.data_format import DataFormat
from pipeline.envs.data_generation import DataGeneration
from pipeline.envs.data_management import DataManagement
from pipeline.envs.filesystem import Filesystem
from pipeline.envs.maths import Maths
from pipeline.envs.messaging import Messaging
from pipeline.envs.posting import Posting
from pipeline.envs.string_manipulation import StringManipulation
from pipeline.envs.tickets import Tickets
from pipeline.envs.trading import Trading
from pipeline.envs.travel import Travel
from pipeline.envs.vehicle import Vehicle

EnvClass = type[Environment]  # type: ignore[type-arg]

ENVIRONMENTS: dict[str, EnvClass] = {
    cls.name: cls
    for cls in (
        Filesystem,
        Maths,
        Messaging,
        Posting,
        Tickets,
        Trading,
        Travel,
        Vehicle,
        DataManagement,
        DataGeneration,
        StringManipulation,
        DataFormat,
    )
}

#: upstream BFCL class name -> our environment class
BFCL_CLASSES: dict[str, EnvClass] = {
    cls.bfcl_class: cls for cls in ENVIRONMENTS.values() if cls.bfcl_class is not None
}


def get_env_class(name: str) -> EnvClass:
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise KeyError(f"unknown environment {name!r}; known: {', '.join(ENVIRONMENTS)}") from None


def resolve_tool(qualified: str) -> tuple[EnvClass, ToolSpec]:
    """``'filesystem.cd'`` -> (Filesystem, its spec); ``ToolError`` when either is unknown."""
    env_name, _, function = qualified.partition(".")
    cls = ENVIRONMENTS.get(env_name)
    if cls is None:
        raise ToolError(f"unknown environment {env_name!r} in tool {qualified!r}")
    spec = cls.tool_specs().get(function)
    if spec is None:
        raise ToolError(f"environment {env_name!r} has no tool {function!r}")
    return cls, spec


__all__ = [
    "BFCL_CLASSES",
    "ENVIRONMENTS",
    "EnvState",
    "Environment",
    "SeededState",
    "ToolError",
    "ToolKind",
    "ToolSpec",
    "get_env_class",
    "resolve_tool",
    "tool",
]
