"""What an endpoint supports, learned on first contact or first refusal and remembered.

One ``Endpoint`` per (cache file, base URL, model) in a process, shared by every client built
on that cache (each evolve shard builds its own client); what it learns is also written to the
cache file, so later processes and runs start from it. Three things are learned:

- the structured-output mode: ``json_schema``, else ``json_object`` with the schema (llama.cpp's
  server answers ``json_schema`` with HTTP 500 and constrains ``json_object`` with its grammar),
  else plain text with the schema in the system message;
- the name of the token cap: ``max_tokens``, or ``max_completion_tokens`` for servers that
  refuse the older name (llama.cpp ignores the newer one, so it is never sent first);
- tool calls: refused, accepted (the server takes ``tools`` but has not answered with a native
  call yet), unused (the harness agent saw replies offered tools write their calls as text and
  never natively: llama.cpp's server without a tool-call chat format; only a client's caller
  can tell a call written as text from prose, so the agent records it) or native.

Each fact is noted in ``learned`` with the UTC time it was learned and why; ``tools_why`` keeps
the note behind the current tool support, so a run that skips the tool schemas can say why.

Until the first request of a kind has been answered, calls of that kind wait for it (per event
loop) instead of all sending a request that the server would refuse in the same way.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import openai

from pipeline.llm.cache import AnswerCache


class OutputMode(StrEnum):
    JSON_SCHEMA = "json_schema"
    JSON_OBJECT = "json_object"
    TEXT = "text"


MODES = tuple(OutputMode)


class TokenParameter(StrEnum):
    MAX_TOKENS = "max_tokens"
    MAX_COMPLETION_TOKENS = "max_completion_tokens"


class ToolSupport(StrEnum):
    UNKNOWN = "unknown"  # no request offering tools has been answered
    REFUSED = "refused"  # the server rejected the tools parameter
    ACCEPTED = "accepted"  # tools were taken, but no reply has carried a native call yet
    #: tools were taken, but the replies wrote their calls as text, never natively (told by
    #: the caller that reads the replies: ``Endpoint.tools_unused``)
    UNUSED = "unused"
    NATIVE = "native"  # a reply carried native ``tool_calls``


class Refusal(StrEnum):
    """What an HTTP error answer is about, read from its status and message."""

    CONTEXT_OVERFLOW = "context_overflow"  # the prompt (plus the cap) exceeds the context
    TOKEN_PARAMETER = "token_parameter"  # ``max_tokens`` refused: use max_completion_tokens
    RESPONSE_FORMAT = "response_format"  # the structured-output mode is not supported
    TOOLS = "tools"  # the ``tools`` parameter (or tool choice) is not supported


_CONTEXT_WORDS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "n_ctx",
    "too many tokens",
    "prompt is too long",
)


def _error_text(error: openai.APIStatusError) -> str:
    return f"{error.message} {error.body!r}".lower()


def classify(error: openai.APIStatusError) -> Refusal | None:
    """The refusal an error answer states, or None when it names none (a plain server error,
    a rate limit, a bad request for another reason)."""
    if error.status_code == 429 or error.status_code in (502, 503, 504):
        return None
    text = _error_text(error)
    if any(words in text for words in _CONTEXT_WORDS):
        return Refusal.CONTEXT_OVERFLOW
    if "max_completion_tokens" in text or (
        "max_tokens" in text and ("unsupported" in text or "not supported" in text)
    ):
        return Refusal.TOKEN_PARAMETER
    if any(word in text for word in ("response_format", "json_schema", "json_object")):
        return Refusal.RESPONSE_FORMAT
    if "tool" in text or "function" in text:
        return Refusal.TOOLS
    return None


MAX_LEARNED = 20  # lines of ``learned`` kept


@dataclass
class Capabilities:
    output_mode: OutputMode | None = None  # the best mode that has answered
    refused_modes: set[OutputMode] = field(default_factory=set)
    token_parameter: TokenParameter = TokenParameter.MAX_TOKENS
    token_parameter_known: bool = False  # a request has been answered with it
    tools: ToolSupport = ToolSupport.UNKNOWN
    #: how each fact was learned, oldest first (short lines led by the UTC time, for the run
    #: manifest)
    learned: list[str] = field(default_factory=list)
    #: the ``learned`` line that set ``tools`` (when and why), None while unknown
    tools_why: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "output_mode": self.output_mode.value if self.output_mode else None,
            "refused_output_modes": sorted(mode.value for mode in self.refused_modes),
            "token_parameter": self.token_parameter.value,
            "token_parameter_known": self.token_parameter_known,
            "tools": self.tools.value,
            "tools_why": self.tools_why,
            "learned": list(self.learned),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Capabilities:
        """Best effort: an unreadable entry (an older layout) is learned again."""
        try:
            mode = data.get("output_mode")
            return cls(
                output_mode=OutputMode(mode) if mode else None,
                refused_modes={OutputMode(m) for m in data.get("refused_output_modes", [])},
                token_parameter=TokenParameter(data.get("token_parameter", "max_tokens")),
                token_parameter_known=bool(data.get("token_parameter_known", False)),
                tools=ToolSupport(data.get("tools", "unknown")),
                learned=[str(line) for line in data.get("learned", [])][-MAX_LEARNED:],
                tools_why=str(data["tools_why"]) if data.get("tools_why") else None,
            )
        except (ValueError, TypeError, AttributeError):
            return cls()


def _stamped(note: str) -> str:
    """``note`` led by the current UTC time, to the second."""
    return f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {note}"


class Endpoint:
    """The shared, thread-safe memory of one endpoint and model (see the module docstring)."""

    def __init__(self, cache: AnswerCache, base_url: str, model: str) -> None:
        self.base_url = base_url
        self.model = model
        self._cache = cache
        self._lock = threading.Lock()
        stored = cache.endpoint(base_url, model)
        self._state = Capabilities.from_dict(stored) if stored else Capabilities()
        self._barriers: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Event] = {}

    # -- reading --

    def snapshot(self) -> Capabilities:
        with self._lock:
            state = self._state
            return Capabilities(
                state.output_mode,
                set(state.refused_modes),
                state.token_parameter,
                state.token_parameter_known,
                state.tools,
                list(state.learned),
                state.tools_why,
            )

    @property
    def output_mode(self) -> OutputMode | None:
        return self._state.output_mode

    @property
    def refused_modes(self) -> frozenset[OutputMode]:
        with self._lock:
            return frozenset(self._state.refused_modes)

    @property
    def token_parameter(self) -> TokenParameter:
        return self._state.token_parameter

    @property
    def tools(self) -> ToolSupport:
        return self._state.tools

    def knows_structured(self) -> bool:
        state = self._state
        return state.output_mode is not None and state.token_parameter_known

    def knows_chat(self, with_tools: bool) -> bool:
        state = self._state
        return state.token_parameter_known and (
            not with_tools or state.tools is not ToolSupport.UNKNOWN
        )

    # -- learning (each change is written to the cache file) --

    def _update(self, change: Callable[[Capabilities], str | None]) -> None:
        with self._lock:
            tools = self._state.tools
            note = change(self._state)
            if note is None:
                return
            line = _stamped(note)
            self._state.learned = [*self._state.learned, line][-MAX_LEARNED:]
            if self._state.tools is not tools:
                self._state.tools_why = line
            data = self._state.as_dict()
        self._cache.put_endpoint(self.base_url, self.model, data)

    def answered(self, mode: OutputMode | None, tool_calls: bool | None = None) -> None:
        """A request succeeded: in ``mode`` (structured) and, when tools were offered, with or
        without native tool calls."""

        def change(state: Capabilities) -> str | None:
            notes = []
            if not state.token_parameter_known:
                state.token_parameter_known = True
                notes.append(f"{state.token_parameter.value} accepted")
            if mode is not None and (
                state.output_mode is None or MODES.index(mode) < MODES.index(state.output_mode)
            ):
                state.output_mode = mode
                state.refused_modes.discard(mode)
                notes.append(f"structured output in {mode.value} mode")
            if tool_calls is not None:
                seen = ToolSupport.NATIVE if tool_calls else ToolSupport.ACCEPTED
                if state.tools in (ToolSupport.UNKNOWN, ToolSupport.REFUSED) or (
                    seen is ToolSupport.NATIVE and state.tools is not ToolSupport.NATIVE
                ):
                    state.tools = seen
                    notes.append(f"tools {seen.value}")
            return "; ".join(notes) or None

        self._update(change)

    def refuse_mode(self, mode: OutputMode, why: str) -> None:
        def change(state: Capabilities) -> str | None:
            if mode in state.refused_modes:
                return None
            state.refused_modes.add(mode)
            if state.output_mode is mode:  # remembered from an earlier server on this URL
                state.output_mode = None
            return f"{mode.value} refused: {why}"

        self._update(change)

    def use_max_completion_tokens(self, why: str) -> None:
        def change(state: Capabilities) -> str | None:
            if state.token_parameter is TokenParameter.MAX_COMPLETION_TOKENS:
                return None
            state.token_parameter = TokenParameter.MAX_COMPLETION_TOKENS
            state.token_parameter_known = False
            return f"max_tokens refused, using max_completion_tokens: {why}"

        self._update(change)

    def refuse_tools(self, why: str) -> None:
        def change(state: Capabilities) -> str | None:
            if state.tools is ToolSupport.REFUSED:
                return None
            state.tools = ToolSupport.REFUSED
            return f"tools refused: {why}"

        self._update(change)

    def tools_unused(self, why: str) -> None:
        """The caller read replies that were offered tools and wrote their calls as text,
        none natively: later requests can leave the schemas out. This replaces even a
        remembered ``native`` (the caller's evidence is newer: the server on this URL may
        have been restarted without its tool-call format); a native reply later on sets
        ``native`` again."""

        def change(state: Capabilities) -> str | None:
            if state.tools is ToolSupport.UNUSED:
                return None
            state.tools = ToolSupport.UNUSED
            return f"tools unused: {why}"

        self._update(change)

    # -- the first-contact barrier --

    @asynccontextmanager
    async def first_contact(self, topic: str, known: Callable[[], bool]) -> AsyncIterator[None]:
        """Until one call about ``topic`` has finished on this event loop (answered or failed),
        later ones wait for it, so they start from what it learned. After that everyone goes
        at once: a failed first contact does not serialise the rest."""
        if known():
            yield
            return
        loop = asyncio.get_running_loop()
        key = (loop, topic)
        with self._lock:
            for stale in [k for k in self._barriers if k[0].is_closed()]:
                del self._barriers[stale]
            barrier = self._barriers.get(key)
            first = barrier is None
            if barrier is None:
                barrier = self._barriers[key] = asyncio.Event()
        if first:
            try:
                yield
            finally:
                barrier.set()
            return
        await barrier.wait()
        yield


_REGISTRY: dict[tuple[str, str, str], Endpoint] = {}
_REGISTRY_LOCK = threading.Lock()


def endpoint_for(cache: AnswerCache, base_url: str, model: str) -> Endpoint:
    """The process's one ``Endpoint`` for this cache file, URL and model."""
    key = (str(Path(cache.path).resolve()), base_url, model)
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(key)
        if found is None:
            found = _REGISTRY[key] = Endpoint(cache, base_url, model)
        return found


def known_capabilities(cache_path: Path, base_url: str, model: str) -> dict[str, Any] | None:
    """What is known of an endpoint (this process's memory, else the cache file), for a run
    manifest; None when nothing has been learned."""
    key = (str(Path(cache_path).resolve()), base_url, model)
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(key)
    if found is not None:
        return found.snapshot().as_dict()
    if not Path(cache_path).exists():
        return None
    cache = AnswerCache(Path(cache_path))
    try:
        return cache.endpoint(base_url, model)
    finally:
        cache.close()
