"""Parse call strings such as ``cd(folder='document')`` with ``ast`` — never ``eval``.

Only a single call of a bare function name with literal arguments is accepted: strings,
numbers, booleans, ``None``, and lists / tuples / dicts of those (a unary minus on a number is
allowed). Anything else — attribute access, nested calls, names, lambdas, comprehensions,
operators, starred arguments — is a :class:`CallParseError` that says what was found where.
Sizes are bounded before and during parsing so hostile input cannot exhaust memory or time.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue

MAX_SOURCE_CHARS = 200_000
MAX_STRING_CHARS = 100_000
MAX_COLLECTION_ITEMS = 10_000
MAX_DEPTH = 16
MAX_INT_DIGITS = 100


class CallParseError(ValueError):
    """A call string is malformed or uses something other than literals."""

    def __init__(self, message: str, source: str = "", unsafe: bool = False) -> None:
        shown = source if len(source) <= 120 else source[:117] + "..."
        super().__init__(f"{message} in call {shown!r}" if source else message)
        self.unsafe = unsafe


@dataclass(frozen=True)
class ParsedCall:
    name: str
    args: list[JsonValue] = field(default_factory=list)
    kwargs: dict[str, JsonValue] = field(default_factory=dict)

    def bind(self, param_names: Sequence[str]) -> dict[str, JsonValue]:
        """Map positional arguments onto ``param_names``; keywords are kept as given."""
        if len(self.args) > len(param_names):
            raise CallParseError(
                f"{self.name} takes at most {len(param_names)} positional arguments, "
                f"got {len(self.args)}"
            )
        bound: dict[str, JsonValue] = dict(zip(param_names, self.args))
        for key, value in self.kwargs.items():
            if key in bound:
                raise CallParseError(f"{self.name} got argument {key!r} twice")
            bound[key] = value
        return bound


def _literal(node: ast.AST, source: str, depth: int) -> JsonValue:
    if depth > MAX_DEPTH:
        raise CallParseError(f"literal nested deeper than {MAX_DEPTH}", source)
    if isinstance(node, ast.Constant):
        value = node.value
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):  # 1e999: JSON has no infinity
                raise CallParseError("number literal is not finite", source)
            return value
        if isinstance(value, int):
            if len(str(abs(value))) > MAX_INT_DIGITS:
                raise CallParseError(f"integer literal longer than {MAX_INT_DIGITS} digits", source)
            return value
        if isinstance(value, str):
            if len(value) > MAX_STRING_CHARS:
                raise CallParseError(f"string literal longer than {MAX_STRING_CHARS}", source)
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:  # an escape such as '\ud800': no JSON can carry it
                    raise CallParseError("string literal is not valid Unicode", source) from None
            return value
        raise CallParseError(f"unsupported constant of type {type(value).__name__}", source)
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub | ast.UAdd)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
        and not isinstance(node.operand.value, bool)
    ):
        number = _literal(node.operand, source, depth + 1)
        assert isinstance(number, int | float)
        return -number if isinstance(node.op, ast.USub) else number
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        if len(node.elts) > MAX_COLLECTION_ITEMS:
            raise CallParseError(f"collection with more than {MAX_COLLECTION_ITEMS} items", source)
        return [_literal(item, source, depth + 1) for item in node.elts]
    if isinstance(node, ast.Dict):
        if len(node.keys) > MAX_COLLECTION_ITEMS:
            raise CallParseError(f"dict with more than {MAX_COLLECTION_ITEMS} items", source)
        out: dict[str, JsonValue] = {}
        for key_node, value_node in zip(node.keys, node.values):
            if key_node is None:
                raise CallParseError("'**' unpacking is not allowed", source, unsafe=True)
            key = _literal(key_node, source, depth + 1)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise CallParseError("dict keys must be strings or numbers", source)
            out[str(key)] = _literal(value_node, source, depth + 1)
        return out
    raise CallParseError(
        f"only literal arguments are allowed, found {type(node).__name__} "
        f"at column {getattr(node, 'col_offset', '?')}",
        source,
        unsafe=True,
    )


def parse_call(source: str) -> ParsedCall:
    """Parse one call string into its name and literal arguments."""
    if not isinstance(source, str):
        raise CallParseError(f"a call must be a string, got {type(source).__name__}")
    if len(source) > MAX_SOURCE_CHARS:
        raise CallParseError(f"call string longer than {MAX_SOURCE_CHARS} characters")
    if "\x00" in source:
        raise CallParseError("call string contains a NUL byte", source[:40])
    text = source.strip()
    if not text:
        raise CallParseError("empty call string")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        reason = f"not valid call syntax ({error.__class__.__name__}: {error})"
        raise CallParseError(reason, text) from None
    node = tree.body
    if not isinstance(node, ast.Call):
        raise CallParseError(f"expected a function call, found {type(node).__name__}", text)
    if not isinstance(node.func, ast.Name):
        raise CallParseError(
            f"the called function must be a plain name, found {type(node.func).__name__}",
            text,
            unsafe=True,
        )
    name = node.func.id
    if name.startswith("__"):
        raise CallParseError(f"dunder function name {name!r} is not allowed", text, unsafe=True)
    args: list[JsonValue] = []
    for arg in node.args:
        if isinstance(arg, ast.Starred):
            raise CallParseError("'*' unpacking is not allowed", text, unsafe=True)
        args.append(_literal(arg, text, 1))
    kwargs: dict[str, JsonValue] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise CallParseError("'**' unpacking is not allowed", text, unsafe=True)
        if keyword.arg in kwargs:
            raise CallParseError(f"argument {keyword.arg!r} given twice", text)
        kwargs[keyword.arg] = _literal(keyword.value, text, 1)
    return ParsedCall(name=name, args=args, kwargs=kwargs)


def format_call(name: str, arguments: Mapping[str, Any]) -> str:
    """The inverse of :func:`parse_call` for keyword arguments (Python literal syntax)."""
    parts = [f"{key}={_python_literal(value)}" for key, value in arguments.items()]
    return f"{name}({', '.join(parts)})"


def _python_literal(value: Any) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{_python_literal(k)}: {_python_literal(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_python_literal(item) for item in value) + "]"
    return repr(value)
