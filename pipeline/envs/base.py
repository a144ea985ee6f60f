"""The tool framework every simulated environment is built on.

An environment is a class whose public tools are typed methods marked with :func:`tool`.
From each method's signature and docstring we derive both the argument validator (a strict
pydantic model) and the OpenAI function schema, so the two can never disagree and nothing is
written by hand. State lives in one strict pydantic model per environment; tools mutate it and
nothing else. Misuse raises :class:`ToolError`, which callers show to the model as the result;
any other exception is a bug and propagates.
"""

from __future__ import annotations

import inspect
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import Any, ClassVar, Generic, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, create_model

from pipeline.quantities import Arithmetic, Conversion
from pipeline.semantics import Sem


class ToolError(Exception):
    """A tool was used wrongly; the message is what the calling agent gets to see."""


class ToolKind(StrEnum):
    READ = "read"
    WRITE = "write"


_TOOL_MARK = "__asynctool_tool__"


@dataclass(frozen=True)
class _ToolMark:
    kind: ToolKind
    latency: float
    returns: tuple[tuple[str, Sem], ...] = ()
    ends_session: bool = False
    asked_by: tuple[str, ...] = ()
    arithmetic: Arithmetic | None = None
    converts: Conversion | None = None
    describes: tuple[tuple[str, str], ...] = ()


F = TypeVar("F", bound=Callable[..., Any])

#: largest generator position a state may hold (rebuilding it replays every word)
MAX_RNG_WORDS = 2_000_000


def tool(
    kind: ToolKind | str,
    latency: float,
    returns: Mapping[str, Sem] | None = None,
    ends_session: bool = False,
    asked_by: tuple[str, ...] = (),
    arithmetic: Arithmetic | None = None,
    converts: Conversion | None = None,
    describes: Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """Mark a method as a tool: ``kind`` says whether it changes state, ``latency`` is its
    default simulated response time in seconds (see docs/latency.md for the reasoning),
    ``returns`` gives the semantic type of each result field by path pattern (see
    :mod:`pipeline.semantics`), and ``ends_session`` marks a log-out: a user who asks to log
    out after other steps means after them, whether or not those steps need the session.
    ``asked_by`` lists phrases (lower case, whole words) that ask for this tool and nothing else
    among its environment's tools: a question that says one, outside a condition, must call it
    (``question.unserved_request``). ``arithmetic`` and ``converts`` say what the tool does to
    measured quantities (:mod:`pipeline.quantities`). ``describes`` maps an argument to the one
    whose thing it describes (an order's ``price`` is a price of its ``symbol``): its value can
    be stated only by someone who knows that thing."""

    mark = _ToolMark(
        ToolKind(kind),
        float(latency),
        tuple((returns or {}).items()),
        ends_session,
        tuple(phrase.lower() for phrase in asked_by),
        arithmetic,
        converts,
        tuple((describes or {}).items()),
    )

    def decorate(fn: F) -> F:
        setattr(fn, _TOOL_MARK, mark)
        return fn

    return decorate


class EnvState(BaseModel):
    """Base of every environment's state: strict, closed, JSON-serialisable."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_default=False)


class SeededState(EnvState):
    """State of an environment that draws random ids or values.

    The generator is rebuilt from ``random_seed`` and advanced by ``rng_words`` 32-bit words, so
    a state snapshot taken mid-task resumes the exact same sequence of draws.
    """

    random_seed: int
    #: bounded: the generator is rebuilt word by word, so a hostile state could stall a replay
    rng_words: int = Field(0, ge=0, le=MAX_RNG_WORDS)


class _CountingRandom(random.Random):
    """Mersenne Twister that counts the 32-bit words it consumes.

    Overriding both ``random`` and ``getrandbits`` keeps CPython's draw algorithms
    (``randint`` -> ``_randbelow_with_getrandbits``, ``uniform`` -> ``random``) identical to a
    plain ``random.Random``, so seeded sequences match other simulators that use it.
    """

    def __init__(self, seed: int, state: SeededState) -> None:
        self._state = state
        super().__init__(seed)

    def random(self) -> float:
        self._state.rng_words += 2
        return super().random()

    def getrandbits(self, k: int) -> int:
        if k > 0:
            self._state.rng_words += (k - 1) // 32 + 1
        return super().getrandbits(k)


def _seeded_generator(state: SeededState) -> random.Random:
    generator = random.Random(state.random_seed)
    for _ in range(state.rng_words):
        generator.getrandbits(32)
    counting = _CountingRandom(state.random_seed, state)
    counting.setstate(generator.getstate())
    return counting


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_SECTION_HEADER = re.compile(r"^\s*(Returns|Raises|Yields|Examples?|Notes?):\s*$")
_ARG_LINE = re.compile(r"^\s{2,}(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str], str]:
    """Split a Google-style docstring into (summary, per-argument text, returns text)."""
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    returns: list[str] = []
    section = "summary"
    current: str | None = None
    for line in lines:
        if _ARGS_HEADER.match(line):
            section, current = "args", None
            continue
        header = _SECTION_HEADER.match(line)
        if header:
            section = "returns" if header.group(1) == "Returns" else "other"
            continue
        if section == "summary":
            summary.append(line.strip())
        elif section == "args":
            match = _ARG_LINE.match("  " + line if not line.startswith(" ") else line)
            if match and not line.startswith("      "):
                current = match.group(1)
                args[current] = match.group(2).strip()
            elif current and line.strip():
                args[current] = f"{args[current]} {line.strip()}"
        elif section == "returns" and line.strip():
            returns.append(line.strip())
    text = " ".join(part for part in summary if part).strip()
    return text, args, " ".join(returns)


def _strip_titles(schema: Any) -> Any:
    """Drop pydantic's auto-generated ``title`` keys: they add tokens and carry nothing."""
    if isinstance(schema, dict):
        return {
            key: _strip_titles(value)
            for key, value in schema.items()
            if not (key == "title" and isinstance(value, str))
        }
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    return schema


def _pattern_matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    return len(pattern) == len(path) and all(
        want == "*" or want == got for want, got in zip(pattern, path)
    )


@lru_cache(maxsize=65536)  # the checks ask for the same few paths of each tool again and again
def _result_type(result_types: tuple[tuple[str, Sem], ...], path: str) -> Sem | None:
    parts = tuple(path.split(".")) if path else ()
    for pattern, sem in result_types:
        if _pattern_matches(tuple(pattern.split(".")) if pattern else (), parts):
            return sem
    return None


@dataclass(frozen=True)
class ToolSpec:
    """Everything known about one tool, derived from its method."""

    name: str
    method: str
    kind: ToolKind
    latency: float
    description: str
    returns: str
    param_names: tuple[str, ...]
    #: semantic type of each parameter that declares one (of each element for a list)
    param_types: Mapping[str, Sem] = field(default_factory=dict)
    #: (dotted path pattern, type) of each declared result field, ``*`` matching any key/index
    result_types: tuple[tuple[str, Sem], ...] = ()
    #: a log-out: it comes after every earlier call of its environment
    ends_session: bool = False
    #: phrases that ask for this tool and no other of its environment ("guide me to")
    asked_by: tuple[str, ...] = ()
    #: what the tool's arithmetic does to the dimensions of its number-typed operands
    arithmetic: Arithmetic | None = None
    #: the arguments of a unit conversion (value, unit in, unit out)
    converts: Conversion | None = None
    #: argument -> the argument whose thing it describes (``price`` -> ``symbol``)
    describes: Mapping[str, str] = field(default_factory=dict)
    #: pydantic field definitions of the arguments; the model and its schema are built on first
    #: use, so importing the environments (every process, ``asynctool --help``) stays cheap
    arg_fields: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    model_name: str = ""

    @cached_property
    def args_model(self) -> type[BaseModel]:
        return create_model(
            self.model_name or f"{self.name}_args",
            __config__=ConfigDict(strict=True, extra="forbid"),
            **self.arg_fields,
        )

    @cached_property
    def parameters(self) -> dict[str, Any]:
        """The arguments' JSON schema (no titles), as tools are offered to a model."""
        schema: dict[str, Any] = _strip_titles(self.args_model.model_json_schema())
        schema.setdefault("properties", {})
        schema.setdefault("required", [])
        return schema

    def result_type(self, path: str) -> Sem | None:
        """The semantic type of the result value at ``path`` (``messages.0.sender_id``)."""
        return _result_type(self.result_types, path)

    def openai_schema(self, name: str | None = None) -> dict[str, Any]:
        """The tool as an OpenAI function definition (``name`` overrides, e.g. qualified)."""
        return {
            "type": "function",
            "function": {
                "name": name or self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def _derive_spec(owner: type, attr: str, fn: Callable[..., Any], mark: _ToolMark) -> ToolSpec:
    if not fn.__doc__:
        raise TypeError(f"{owner.__name__}.{attr}: a tool needs a docstring")
    summary, arg_docs, returns = _parse_docstring(fn.__doc__)
    hints = get_type_hints(fn)
    extras = get_type_hints(fn, include_extras=True)
    param_types: dict[str, Sem] = {}
    signature = inspect.signature(fn)
    fields: dict[str, Any] = {}
    names: list[str] = []
    for pname, param in list(signature.parameters.items())[1:]:
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise TypeError(f"{owner.__name__}.{attr}: *args/**kwargs are not allowed in tools")
        if pname not in hints:
            raise TypeError(f"{owner.__name__}.{attr}: parameter {pname!r} needs a type")
        if pname not in arg_docs:
            raise TypeError(f"{owner.__name__}.{attr}: parameter {pname!r} is not documented")
        default = ... if param.default is inspect.Parameter.empty else param.default
        metadata = getattr(extras[pname], "__metadata__", ())
        sem = next((item for item in metadata if isinstance(item, Sem)), None)
        extra_schema: dict[str, JsonValue] | None = (
            {"x-semantic-type": sem.value} if sem is not None else None
        )
        if sem is not None:
            param_types[pname] = sem
        fields[pname] = (
            hints[pname],
            Field(default, description=arg_docs[pname], json_schema_extra=extra_schema),
        )
        names.append(pname)
    return ToolSpec(
        name=attr,
        method=attr,
        kind=mark.kind,
        latency=mark.latency,
        description=summary,
        returns=returns,
        param_names=tuple(names),
        param_types=param_types,
        result_types=mark.returns,
        arg_fields=fields,
        model_name=f"{owner.__name__}_{attr}_args",
        ends_session=mark.ends_session,
        asked_by=mark.asked_by,
        arithmetic=mark.arithmetic,
        converts=mark.converts,
        describes=dict(mark.describes),
    )


#: problems an invalid-arguments message lists; a long list of bad elements would make it huge
_MAX_PROBLEMS = 5


#: how a refusal for a call's arguments starts (the harness agent adds the tool's signature)
INVALID_ARGUMENTS = "invalid arguments for "


def _format_validation_error(tool_name: str, error: ValidationError) -> str:
    problems = []
    items = error.errors(include_url=False)
    for item in items[:_MAX_PROBLEMS]:
        where = ".".join(str(part) for part in item["loc"]) or "(arguments)"
        problems.append(f"{where}: {item['msg']}")
    if len(items) > _MAX_PROBLEMS:
        problems.append(f"and {len(items) - _MAX_PROBLEMS} more")
    return f"{INVALID_ARGUMENTS}{tool_name}: " + "; ".join(problems)


S = TypeVar("S", bound=EnvState)


class Environment(Generic[S]):
    """Base class of a simulated, stateful tool environment.

    Subclasses set ``name`` (the category, used to qualify tools as ``name.tool``),
    ``state_model`` and, where they reproduce a BFCL class, ``bfcl_class``.
    """

    name: ClassVar[str]
    state_model: ClassVar[type[EnvState]]
    bfcl_class: ClassVar[str | None] = None
    #: state fields that exist only in this project (seeds, counters), left out of BFCL states
    internal_fields: ClassVar[frozenset[str]] = frozenset({"random_seed", "rng_words"})
    _specs: ClassVar[dict[str, ToolSpec]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        specs: dict[str, ToolSpec] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                mark = getattr(value, _TOOL_MARK, None)
                if isinstance(mark, _ToolMark):
                    specs[attr] = _derive_spec(cls, attr, value, mark)
        cls._specs = specs

    def __init__(self, state: S) -> None:
        self.state: S = state
        self._rng: random.Random | None = None

    # ----- construction and snapshots -------------------------------------------------
    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None = None) -> Environment[S]:
        """Build from a state in this project's format (missing fields take defaults)."""
        try:
            model = cls.state_model.model_validate(dict(state or {}))
        except ValidationError as error:
            raise ValueError(f"invalid initial state for {cls.name}: {error}") from error
        return cls(model)  # type: ignore[arg-type]

    @classmethod
    def from_bfcl_config(cls, config: Mapping[str, Any]) -> Environment[S]:
        """Build from an upstream BFCL ``initial_config`` entry. Override to translate names."""
        known = cls.state_model.model_fields
        return cls.from_state({key: value for key, value in config.items() if key in known})

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON values."""
        return self.state.model_dump(mode="json")

    @classmethod
    def perturbed(cls, state: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """A copy of ``state`` with unrelated extra content (``None``: nothing to add).

        Dependency inference also replays on it, so a dependency that the real state hides by
        coincidence shows: ``du`` after ``cd Meadow`` reports the parent's size when the parent
        holds only Meadow, but not once every folder holds one more file."""
        del state
        return None

    def bfcl_state(self) -> dict[str, Any]:
        """The state named as upstream BFCL names its attributes (for conformance checks)."""
        data = self.snapshot()
        for name in self.internal_fields:
            data.pop(name, None)
        return data

    # ----- tools ----------------------------------------------------------------------
    @classmethod
    def tool_specs(cls) -> Mapping[str, ToolSpec]:
        return cls._specs

    @classmethod
    def openai_tools(cls, qualified: bool = True) -> list[dict[str, Any]]:
        return [
            spec.openai_schema(f"{cls.name}.{name}" if qualified else name)
            for name, spec in cls._specs.items()
        ]

    def invoke(self, tool_name: str, arguments: Mapping[str, Any]) -> JsonValue:
        """Validate ``arguments`` strictly and run the tool; misuse raises ``ToolError``."""
        spec = self._specs.get(tool_name)
        if spec is None:
            raise ToolError(f"{self.name} has no tool named {tool_name!r}")
        try:
            validated = spec.args_model.model_validate(dict(arguments))
        except ValidationError as error:
            raise ToolError(_format_validation_error(tool_name, error)) from None
        kwargs = {name: getattr(validated, name) for name in spec.param_names}
        result: JsonValue = getattr(self, spec.method)(**kwargs)
        return result

    def ambient(self) -> JsonValue:
        """The part of the state every call reads without naming it (a file system's current
        directory), or ``None``: two runs of a call in different ambient states behave
        differently even when their results happen to agree (``sort`` of a file and of its copy
        in another folder)."""
        return None

    # ----- helpers for subclasses -----------------------------------------------------
    def reset_rng(self) -> None:
        """Forget the generator so the next draw rebuilds it from the state's position."""
        self._rng = None

    @property
    def rng(self) -> random.Random:
        """The environment's seeded generator; every draw is recorded in the state."""
        if self._rng is None:
            if not isinstance(self.state, SeededState):
                raise TypeError(f"{self.name} state has no random seed")
            self._rng = _seeded_generator(self.state)
        return self._rng
