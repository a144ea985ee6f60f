"""Tools described in words, one way for every reader: `asynctool tools`, the LLM operators'
prompts and the harness agent's system prompt.

Words, not call syntax: a small model copies ``add(a=1, b=2)`` back as a call string, while
``a (number), b (number)`` reads as a description.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline.envs import ToolSpec


def json_type(schema: Mapping[str, Any], *, null: bool = True, choices: bool = True) -> str:
    """A parameter's JSON type in words: ``string``, ``list of integer``, ``number or null``,
    ``"fuel" or "battery"`` (choices joined as types are, with no comma: a signature lists its
    parameters with commas). ``null=False`` leaves out the null of an optional value;
    ``choices=False`` names an enum by its type only."""
    if choices and "enum" in schema:
        return " or ".join(json.dumps(value) for value in schema["enum"])
    if "anyOf" in schema:
        branches = [
            json_type(branch, null=null, choices=choices)
            for branch in schema["anyOf"]
            if null or branch.get("type") != "null"
        ]
        return " or ".join(branches) or "any"
    kind = str(schema.get("type", "any"))
    items = schema.get("items")
    if kind == "array" and isinstance(items, Mapping):
        return f"list of {json_type(items, null=null, choices=choices)}"
    return kind


def parameters_in_words(spec: ToolSpec, *, choices: bool = False) -> str:
    """The arguments in words: ``content (string), tags (list of string, optional)``."""
    required = set(spec.parameters.get("required", []))
    parts = []
    for name in spec.param_names:
        schema = spec.parameters["properties"][name]
        optional = "" if name in required else ", optional"
        parts.append(f"{name} ({json_type(schema, null=False, choices=choices)}{optional})")
    return ", ".join(parts) if parts else "none"


def default_in_words(spec: ToolSpec, name: str) -> str:
    """``required`` or ``default <JSON value>`` for one parameter."""
    if name in spec.parameters.get("required", []):
        return "required"
    return f"default {json.dumps(spec.parameters['properties'][name].get('default'))}"
