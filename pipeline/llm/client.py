"""Structured output from any OpenAI-compatible endpoint, validated, retried, limited and cached.

One ``structured`` call is a conversation: the prompt, then for each answer that fails validation
the model's raw text and a short complaint (a re-ask), up to ``max_reasks`` times. A reply cut
at the token cap (``finish_reason=length``) is never fed back: a new sample is drawn instead, up
to ``max_resamples`` times (at a temperature above 0; at 0 it would be the same reply). Each
turn is looked up in the disk cache before any request is sent, so a rerun replays from disk;
the cache keys a sample (the n-th call with the same prompt in a client is sample n), so a
prompt asked twice gets its two answers back in the same order, and names the server when it is
another machine (``cache.endpoint_identity``; a local server is keyed by model name, any port).

Output modes, best first: ``json_schema``, ``json_object`` with the schema (what llama.cpp's
server honours), and plain text with the schema described in the system message. What the
endpoint supports (mode, token-cap name, tools) is learned on first contact or first refusal
and remembered per cache file, endpoint and model (``pipeline.llm.endpoint``); calls wait for
the first one to be answered, so a refusal costs one request, not one per call.

Requests go through ``AsyncOpenAI.post`` with ``cast_to=str`` (the SDK's documented way to make a
raw request): it keeps the SDK's auth, base URL and error types, but skips building typed request
and response objects, which took about a third of the client's CPU time per request.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

import openai
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from pipeline.llm.cache import AnswerCache, CachedAnswer, cache_key, endpoint_identity
from pipeline.llm.config import DUMMY_API_KEY, LLMConfig, is_local_url
from pipeline.llm.endpoint import (
    MODES,
    Endpoint,
    OutputMode,
    Refusal,
    ToolSupport,
    classify,
    endpoint_for,
)
from pipeline.llm.ratelimit import ConcurrencyLimit, RequestSpacing
from pipeline.llm.usage import UsageLedger
from pipeline.models import content_hash

T = TypeVar("T", bound=BaseModel)

MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is capped rather than obeyed
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
MAX_COMPLAINT = 600  # characters of validation error quoted back to the model
TRANSIENT_STATUS = frozenset({408, 409, 429})
REJECTED_STATUS = frozenset({400, 404, 422})
CONNECTIONS_PER_SHARD = 8
MAX_SHARDS = 32
#: stages whose calls default to temperature 0: a verdict should not depend on the draw
DETERMINISTIC_STAGE_PREFIX = "judge"

__all__ = ["MODES", "ChatResult", "LLMClient", "LLMResult", "OutputMode"]


@dataclass(frozen=True)
class LLMResult(Generic[T]):
    value: T | None  # validated output, or None
    raw: str | None  # the last raw text the model returned (kept for rejections)
    error: str | None  # why value is None
    cached: bool  # answered entirely from the cache
    requests: int  # HTTP requests actually sent for this call
    truncated: int = 0  # replies cut at the token cap (each then resampled or given up on)
    #: no answer because the endpoint could not be reached (refused connection, timeouts) after
    #: every retry: nothing is known about the request, so it must not count as the model's
    unreachable: bool = False


@dataclass(frozen=True)
class ChatResult:
    """One free-form chat turn (``LLMClient.chat``): the assistant message, or why there is none."""

    content: str  # the message's text ("" when it only made tool calls, or on failure)
    #: as the server sent them, as plain dicts:
    #: ``{"id": str, "type": "function", "function": {"name": str, "arguments": str}}``
    #: (``id`` is "" when the server gave none; ``arguments`` is the JSON text, unparsed)
    tool_calls: list[dict[str, Any]]
    raw: str | None  # the message as JSON, ``{"content", "tool_calls"}`` (what the cache keeps)
    error: str | None  # why the request failed; None when a message came back
    cached: bool  # answered from the cache
    requests: int  # HTTP requests actually sent
    status: int | None = None  # the HTTP status of a failed request, when it got one
    #: why the server stopped: "stop", "length" (cut at the token cap), "tool_calls", ...
    finish_reason: str | None = None
    #: what a failed request was refused for, when the server said: "context_overflow" (the
    #: prompt does not fit the model's context), "tools" (no tools parameter), ...
    refusal: str | None = None
    #: what the answer cost when it was made (a cached answer too), as the server counted
    prompt_tokens: int = 0
    completion_tokens: int = 0


# --- parsing the model's text ------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)


def first_json_object(text: str) -> str | None:
    """The first balanced ``{...}`` block (braces inside strings ignored), or None."""
    start = text.find("{")
    if start == -1:
        return None
    depth = 0
    in_string = escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start : index + 1]
    return None  # never closed: truncated


def _describe(error: ValidationError) -> str:
    problems = error.errors(include_url=False)
    if problems and problems[0]["type"] == "json_invalid":
        return f"not valid JSON ({problems[0]['msg']})"
    parts = []
    for problem in problems[:3]:
        where = ".".join(str(part) for part in problem["loc"]) or "(root)"
        parts.append(f"{where}: {problem['msg']}")
    more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
    return "does not match the schema: " + "; ".join(parts) + more


def parse_output(raw: str, output: type[T]) -> tuple[T | None, str]:
    """Validate the reply as a whole, else JSON inside fences, else the first ``{...}`` block.

    Returns the value, or None and a short description of what is wrong.
    """
    text = raw.strip()
    if not text:
        return None, "the reply is empty"
    try:
        return output.model_validate_json(text), ""
    except ValidationError as error:
        problem = _describe(error)
        if not problem.startswith("not valid JSON"):
            return None, problem
    candidates = [match.group(1).strip() for match in _FENCE.finditer(text)]
    block = first_json_object(text)
    if block is not None:
        candidates.append(block)
    elif "{" in text:
        problem = "the JSON object is incomplete (truncated?)"
    else:
        problem = "no JSON object found in the reply"
    for candidate in candidates:
        try:
            return output.model_validate_json(candidate), ""
        except ValidationError as error:
            problem = _describe(error)
    return None, problem


# --- schema and request bodies ----------------------------------------------------------------


@dataclass(frozen=True)
class _Schema:
    name: str
    schema: dict[str, Any]
    digest: str  # of the schema, for cache keys (hashing the whole schema per call is slow)
    instruction: str  # the schema described for modes without json_schema


@cache
def _schema_of(output: type[BaseModel]) -> _Schema:
    schema = output.model_json_schema()
    name = re.sub(r"[^A-Za-z0-9_-]", "_", output.__name__)[:64] or "output"
    # a model may name a looser twin to show in words: a schema too long for a small model's
    # prompt can still be the grammar, which enforces it without the model reading it
    described: type[BaseModel] = getattr(output, "described_as", None) or output
    instruction = (
        "Reply with a single JSON object and nothing else. It must match this JSON schema:\n"
        + json.dumps(described.model_json_schema(), separators=(",", ":"))
    )
    return _Schema(name, schema, content_hash(schema, 64), instruction)


def _with_instruction(messages: list[dict[str, str]], instruction: str) -> list[dict[str, str]]:
    """Into the leading system message (some chat templates allow only one), else a new one."""
    if messages and messages[0].get("role") == "system":
        first = {**messages[0], "content": f"{messages[0].get('content', '')}\n\n{instruction}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def _response_format(mode: OutputMode, schema: _Schema) -> dict[str, Any] | None:
    if mode is OutputMode.JSON_SCHEMA:
        return {
            "type": "json_schema",
            "json_schema": {"name": schema.name, "schema": schema.schema, "strict": False},
        }
    if mode is OutputMode.JSON_OBJECT:
        return {"type": "json_object", "schema": schema.schema}
    return None


# --- transport errors -------------------------------------------------------------------------


class _Unusable(Exception):
    """HTTP 200 whose body is not a chat completion (a proxy page, a cut connection, ...)."""


class _ModeRejected(Exception):
    """Every output mode was refused for this request."""


class _Refused(Exception):
    """An error answer that no retry or other mode can fix (the prompt overflows the context)."""

    def __init__(self, refusal: Refusal, error: openai.APIStatusError) -> None:
        super().__init__(str(error))
        self.refusal = refusal
        self.error = error


class _ModeFailure(Exception):
    """An HTTP error answer, with the mode it was sent in and the modes that were left."""

    def __init__(
        self, mode: OutputMode, candidates: list[OutputMode], error: openai.APIStatusError
    ) -> None:
        super().__init__(str(error))
        self.mode = mode
        self.candidates = candidates
        self.error = error


def _status(error: BaseException) -> int | None:
    return error.status_code if isinstance(error, openai.APIStatusError) else None


def is_transient(error: BaseException) -> bool:
    if isinstance(error, openai.APIConnectionError | _Unusable):  # includes timeouts
        return True
    status = _status(error)
    return status is not None and (status in TRANSIENT_STATUS or status >= 500)


def retry_after_seconds(error: BaseException | None) -> float | None:
    """The server's requested wait (``retry-after-ms``, ``Retry-After`` seconds or HTTP date)."""
    if not isinstance(error, openai.APIStatusError):
        return None
    headers = error.response.headers
    try:
        if (millis := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(millis) / 1000)
    except ValueError:
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(error: BaseException | None, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): what the server asked
    for (capped, plus up to 10 %), else jittered exponential backoff (0.5 s, 1 s, 2 s, ... up to
    30 s, plus up to 0.5 s)."""
    requested = retry_after_seconds(error)
    if requested is not None:
        requested = min(requested, MAX_RETRY_AFTER)
        return requested + random.uniform(0, 0.1 * requested)  # never earlier than asked
    exponential: float = BACKOFF_INITIAL * 2.0 ** min(attempt - 1, 16)
    return min(exponential, BACKOFF_MAX) + random.uniform(0, BACKOFF_INITIAL)


def _describe_transport(error: BaseException) -> str:
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}: {error.message}"[:500]
    return f"{type(error).__name__}: {error}"[:500]


# --- the client --------------------------------------------------------------------------------


@dataclass
class _Shard:
    """One of a loop's HTTP clients with its requests in flight.

    httpcore scans every pooled connection on each request (a has-expired check per
    connection): with one pool of 64 connections that scan was over a third of the client's
    CPU time. Several small pools, each request going to the least loaded, keep it short.
    """

    api: openai.AsyncOpenAI
    in_flight: int = 0


def _load(shard: _Shard) -> int:
    return shard.in_flight


@dataclass
class _Counts:
    requests: int = 0
    retries: int = 0


@dataclass(frozen=True)
class _Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None

    def cached(self) -> CachedAnswer:
        return CachedAnswer(
            self.text, self.prompt_tokens, self.completion_tokens, self.finish_reason
        )


def _finish_reason(choice: dict[str, Any]) -> str | None:
    reason = choice.get("finish_reason")
    return reason if isinstance(reason, str) else None


def _read_completion(text: str) -> _Answer:
    try:
        data = json.loads(text)
        choice = data["choices"][0]
        content = choice["message"].get("content")
        usage = data.get("usage") or {}
        finish = _finish_reason(choice)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise _Unusable(f"not a chat completion: {error!r}; body starts {text[:200]!r}") from None
    return _Answer(
        text=content if isinstance(content, str) else "",
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=finish,
    )


#: cache keys of ``chat`` turns: told apart from ``structured`` ones by this template hash
_CHAT_TEMPLATE = "chat-with-tools/v1"


def _plain_tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The message's tool calls in the OpenAI shape, tolerating servers that send the
    arguments as an object or only the legacy ``function_call``."""
    calls = message.get("tool_calls")
    legacy = message.get("function_call")
    if not calls and isinstance(legacy, dict):
        calls = [{"type": "function", "function": legacy}]
    plain: list[dict[str, Any]] = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps({} if arguments is None else arguments)
        plain.append(
            {
                "id": str(call.get("id") or ""),
                "type": "function",
                "function": {"name": str(function.get("name") or ""), "arguments": arguments},
            }
        )
    return plain


def _read_chat(text: str) -> _Answer:
    """A completion's assistant message, re-serialised as ``{"content", "tool_calls"}``."""
    try:
        data = json.loads(text)
        choice = data["choices"][0]
        message = choice["message"]
        content = message.get("content")
        tool_calls = _plain_tool_calls(message)
        usage = data.get("usage") or {}
        finish = _finish_reason(choice)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise _Unusable(f"not a chat completion: {error!r}; body starts {text[:200]!r}") from None
    stored = {"content": content if isinstance(content, str) else "", "tool_calls": tool_calls}
    return _Answer(
        text=json.dumps(stored, ensure_ascii=False),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=finish,
    )


def _chat_result(answer: CachedAnswer, cached: bool, requests: int) -> ChatResult:
    stored = json.loads(answer.raw)
    return ChatResult(
        stored["content"],
        stored["tool_calls"],
        answer.raw,
        None,
        cached,
        requests,
        finish_reason=answer.finish_reason,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
    )


def _why(error: openai.APIStatusError) -> str:
    """An error answer in one short line (for the ``learned`` log of a manifest)."""
    message = " ".join(str(error.message).split()).removeprefix(
        f"Error code: {error.status_code} - "
    )
    return f"HTTP {error.status_code}: {message}"[:160]


class LLMClient:
    """Safe to share between tasks, threads and event loops.

    The concurrency and requests-per-minute limits hold for the client as a whole; HTTP
    connection pools are per event loop (connections belong to the loop that opened them).
    """

    def __init__(self, config: LLMConfig, usage: UsageLedger | None = None) -> None:
        if not config.configured:
            raise ValueError(
                "the LLM is not configured: set base_url and model (ASYNCTOOL_LLM_BASE_URL,"
                " ASYNCTOOL_LLM_MODEL, the config file or the CLI)"
            )
        assert config.base_url is not None and config.model is not None
        api_key = config.api_key
        if not api_key:
            if not is_local_url(config.base_url):
                raise ValueError(f"no API key for {config.base_url}: set OPENAI_API_KEY")
            api_key = DUMMY_API_KEY
        self.config = config
        self.usage = usage if usage is not None else UsageLedger()
        self.cache = AnswerCache(config.cache_path)
        self._base_url = config.base_url
        self._model = config.model
        self._api_key = api_key
        self._endpoint: Endpoint = endpoint_for(self.cache, self._base_url, self._model)
        #: the server as cache keys name it (None: this machine, keyed by model alone)
        self._answerer = endpoint_identity(self._base_url)
        self._slots = ConcurrencyLimit(config.concurrency)
        self._spacing = (
            RequestSpacing(config.requests_per_minute) if config.requests_per_minute else None
        )
        self._lock = threading.Lock()
        self._pools: dict[asyncio.AbstractEventLoop, list[_Shard]] = {}
        # built now, bound to the first loop that sends: keeps the SDK's lazy imports and pool
        # set-up out of the first wave of requests
        self._spare: list[_Shard] | None = self._new_shards()
        self._samples: dict[str, int] = {}  # prompt key -> calls made with it so far

    @property
    def model(self) -> str:
        return self._model

    @property
    def mode(self) -> OutputMode | None:
        """The output mode structured calls start with (None until one has worked)."""
        return self._endpoint.output_mode

    @property
    def capabilities(self) -> dict[str, Any]:
        """What the endpoint is known to support, for a run manifest: ``output_mode``,
        ``refused_output_modes``, ``token_parameter`` (and whether a request has confirmed it),
        ``tools`` (unknown, refused, accepted, unused or native) with ``tools_why``, and how
        each was ``learned`` (each line led by its UTC time)."""
        return self._endpoint.snapshot().as_dict()

    def tools_unused(self, why: str) -> None:
        """Remember that this endpoint takes tool schemas but its replies write their calls
        as text, never natively (the caller reading the replies is who can tell), so later
        runs can leave the schemas out; ``why`` is kept with the time."""
        self._endpoint.tools_unused(why)

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            pools, self._pools = self._pools, {}
            spare, self._spare = self._spare, None
        for shard in spare or []:  # never used, so bound to no loop
            await shard.api.close()
        for owner, shards in pools.items():
            if owner is loop:
                for shard in shards:
                    await shard.api.close()
            # a pool bound to another (finished) loop cannot be closed from here; drop it
        self.cache.close()

    def _shards(self) -> list[_Shard]:
        """This event loop's HTTP clients (a pool's connections belong to one loop)."""
        loop = asyncio.get_running_loop()
        shards = self._pools.get(loop)
        if shards is None:
            with self._lock:
                for owner in [owner for owner in self._pools if owner.is_closed()]:
                    del self._pools[owner]
                shards = self._pools.get(loop)
                if shards is None:
                    shards, self._spare = self._spare or self._new_shards(), None
                    self._pools[loop] = shards
        return shards

    def _new_shards(self) -> list[_Shard]:
        count = -(-self.config.concurrency // CONNECTIONS_PER_SHARD)
        return [self._new_shard() for _ in range(min(count, MAX_SHARDS))]

    def _new_shard(self) -> _Shard:
        http_client = None
        if self._base_url.startswith("http://"):
            # no TLS, so skip loading the CA bundle (~15 ms per pool); and follow no redirect,
            # which could lead to an https URL that would then go unverified
            http_client = openai.DefaultAsyncHttpxClient(verify=False, follow_redirects=False)
        api = openai.AsyncOpenAI(
            base_url=self._base_url,
            api_key=self._api_key,
            timeout=self.config.timeout,
            max_retries=0,  # retries are ours, so they show in the ledger
            http_client=http_client,
        )
        return _Shard(api)

    # -- settings per call --

    def _settings(
        self, stage: str, temperature: float | None, max_tokens: int | None
    ) -> dict[str, Any]:
        """The sampling settings of one call, as the cache keys them (the wire name of the
        token cap is the endpoint's business, not the answer's)."""
        if temperature is None:
            deterministic = stage.startswith(DETERMINISTIC_STAGE_PREFIX)
            temperature = 0.0 if deterministic else self.config.temperature
        return {
            "temperature": temperature,
            "max_tokens": self.config.max_tokens if max_tokens is None else max_tokens,
        }

    def _wire(self, settings: dict[str, Any]) -> dict[str, Any]:
        """``settings`` as sent: the token cap under the name the endpoint takes."""
        name = self._endpoint.token_parameter.value
        return {"temperature": settings["temperature"], name: settings["max_tokens"]}

    def _sample_of(self, key: str, sample: int | None) -> int:
        """The caller's sample index, else how many calls this client made with ``key``
        before (counted when the call starts, so concurrent calls number in start order)."""
        with self._lock:
            seen = self._samples.get(key, 0)
            self._samples[key] = seen + 1
        return seen if sample is None else sample

    def _failed(self, stage: str, error: openai.APIStatusError) -> Refusal | None:
        """Count an error answer and say what it refused; learns the token-cap name."""
        self.usage.record(stage, failed_requests=1)
        refusal = classify(error)
        if refusal is Refusal.TOKEN_PARAMETER:
            self._endpoint.use_max_completion_tokens(_why(error))
        return refusal

    # -- one HTTP request --

    def _candidates(self, excluded: set[OutputMode]) -> list[OutputMode]:
        """Modes still worth trying, best first, never better than the remembered one."""
        refused = excluded | self._endpoint.refused_modes
        usable = [mode for mode in MODES if mode not in refused]
        remembered = self._endpoint.output_mode
        if remembered is not None and remembered in usable:
            usable = usable[usable.index(remembered) :]
        return usable

    async def _post(self, stage: str, body: dict[str, Any], counts: _Counts) -> str:
        """One request under the client's limits; the raw response text."""
        async with self._slots:
            if self._spacing is not None:
                await self._spacing.wait()
            counts.requests += 1
            self.usage.record(stage, requests=1)
            shard = min(self._shards(), key=_load)
            shard.in_flight += 1
            try:
                return await shard.api.post("/chat/completions", cast_to=str, body=body)
            finally:
                shard.in_flight -= 1

    async def _send(
        self,
        stage: str,
        conversation: list[dict[str, str]],
        schema: _Schema,
        settings: dict[str, Any],
        excluded: set[OutputMode],
        counts: _Counts,
    ) -> tuple[OutputMode, _Answer]:
        """One request in the best candidate mode, chosen once a slot is free (so a call that
        waited sees what the calls before it learned about the server)."""
        async with self._slots:
            candidates = self._candidates(excluded)
            if not candidates:
                raise _ModeRejected("the server refused every output mode")
            mode = candidates[0]
            body = self._body(mode, conversation, schema, settings)
            if self._spacing is not None:
                await self._spacing.wait()
            counts.requests += 1
            self.usage.record(stage, requests=1)
            shard = min(self._shards(), key=_load)
            shard.in_flight += 1
            try:
                text = await shard.api.post("/chat/completions", cast_to=str, body=body)
            except openai.APIStatusError as error:
                raise _ModeFailure(mode, candidates, error) from error
            finally:
                shard.in_flight -= 1
        return mode, _read_completion(text)

    def _body(
        self,
        mode: OutputMode,
        conversation: list[dict[str, str]],
        schema: _Schema,
        settings: dict[str, Any],
    ) -> dict[str, Any]:
        messages = conversation
        if mode is not OutputMode.JSON_SCHEMA:
            messages = _with_instruction(conversation, schema.instruction)
        body: dict[str, Any] = {"model": self._model, "messages": messages, **self._wire(settings)}
        response_format = _response_format(mode, schema)
        if response_format is not None:
            body["response_format"] = response_format
        return body

    async def _probe_chain(
        self,
        stage: str,
        conversation: list[dict[str, str]],
        schema: _Schema,
        settings: dict[str, Any],
        counts: _Counts,
    ) -> _Answer:
        """One attempt: send in the best usable mode, stepping down while modes are refused.

        A mode that has never worked and gets 400/404/422, or any error that names the
        response format, is refused for the endpoint. A bare 500 on an unproven json_schema
        request steps down at once too (llama.cpp answers json_schema so); if the next mode
        then works, json_schema is remembered as refused; if it fails as well, the 500s count
        as a server error and are retried. A refused ``max_tokens`` switches the endpoint to
        ``max_completion_tokens`` and sends again; a context overflow ends the call.
        """
        stepped: set[OutputMode] = set()  # json_schema after a bare 500, for this attempt only
        renamed = False  # the token cap was refused and renamed in this attempt
        while True:
            try:
                mode, answer = await self._send(
                    stage, conversation, schema, settings, stepped, counts
                )
            except _ModeFailure as failure:
                mode, error = failure.mode, failure.error
                refusal = self._failed(stage, error)
                if refusal is Refusal.TOKEN_PARAMETER and not renamed:
                    renamed = True  # sent again once, as max_completion_tokens
                    continue
                if refusal is Refusal.CONTEXT_OVERFLOW:
                    raise _Refused(refusal, error) from None
                last = len(failure.candidates) == 1
                if refusal is Refusal.RESPONSE_FORMAT and mode is not OutputMode.TEXT:
                    self._endpoint.refuse_mode(mode, _why(error))
                    continue
                proven = mode is self._endpoint.output_mode
                if proven or last:
                    raise error from None
                if error.status_code in REJECTED_STATUS:
                    self._endpoint.refuse_mode(mode, _why(error))
                    continue
                if mode is OutputMode.JSON_SCHEMA and error.status_code >= 500:
                    stepped.add(mode)
                    continue
                raise error from None
            if OutputMode.JSON_SCHEMA in stepped:
                # json_schema 500ed and the next mode answered at once: not a passing fault
                self._endpoint.refuse_mode(
                    OutputMode.JSON_SCHEMA, f"HTTP 500, then {mode.value} answered"
                )
            self._endpoint.answered(mode)
            return answer

    async def _exchange(
        self,
        stage: str,
        conversation: list[dict[str, str]],
        schema: _Schema,
        settings: dict[str, Any],
        counts: _Counts,
    ) -> _Answer:
        """The probe chain, retried with backoff on transient failures; while the endpoint's
        output mode is unknown, calls wait for the first one to learn it."""
        endpoint = self._endpoint
        async with endpoint.first_contact("structured", endpoint.knows_structured):
            return await self._retrying(
                stage,
                counts,
                lambda: self._probe_chain(stage, conversation, schema, settings, counts),
            )

    # -- the public call --

    async def structured(
        self,
        *,
        stage: str,
        messages: list[dict[str, str]],
        output: type[T],
        template_hash: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
        sample: int | None = None,
    ) -> LLMResult[T]:
        """A validated ``output`` for ``messages``.

        ``temperature`` and ``max_tokens`` override the config for this call (stages named
        ``judge...`` default to temperature 0). ``sample`` names which sample of this prompt
        the call is (for the cache); by default the n-th call with the same prompt, settings
        and output in this client is sample n.
        """
        if not (isinstance(output, type) and issubclass(output, BaseModel)):
            raise TypeError(f"output must be a pydantic model class, got {output!r}")
        schema = _schema_of(output)
        settings = self._settings(stage, temperature, max_tokens)
        conversation = [dict(message) for message in messages]
        counts = _Counts()
        raw: str | None = None
        problem = ""
        truncated = 0

        def key_of(sample_no: int, resample: int) -> str:
            return cache_key(
                model=self._model,
                messages=conversation,
                parameters=settings,
                template_hash=template_hash,
                schema_digest=schema.digest,
                sample=sample_no,
                resample=resample,
                endpoint=self._answerer,
            )

        first_key = key_of(0, 0)  # the prompt's key, also the first draw of sample 0
        sample_no = self._sample_of(first_key, sample)
        for turn in range(self.config.max_reasks + 1):
            if turn:
                assert raw is not None
                complaint = problem[:MAX_COMPLAINT]
                conversation += [
                    {"role": "assistant", "content": raw},
                    {
                        "role": "user",
                        "content": f"That reply cannot be used: {complaint}. Answer again with"
                        " only a JSON object that matches the required schema.",
                    },
                ]
                self.usage.record(stage, reasks=1)
            cut = False
            for resample in range(self.config.max_resamples + 1):
                if resample:
                    self.usage.record(stage, resamples=1)
                plain = turn == 0 and sample_no == 0 and resample == 0
                key = first_key if plain else key_of(sample_no, resample)
                hit = self.cache.get(key)
                if hit is not None:
                    self.usage.record(stage, cache_hits=1)
                else:
                    try:
                        answer = await self._exchange(stage, conversation, schema, settings, counts)
                    except (openai.OpenAIError, _Unusable, _ModeRejected, _Refused) as error:
                        self.usage.record(stage, failures=1)
                        return LLMResult(
                            value=None,
                            raw=raw,
                            error=self._failure_text(error, counts),
                            cached=False,
                            requests=counts.requests,
                            truncated=truncated,
                            unreachable=isinstance(error, openai.APIConnectionError),
                        )
                    hit = self.cache.put(key, answer.cached(), self._model)
                    self.usage.record(
                        stage,
                        prompt_tokens=answer.prompt_tokens,
                        completion_tokens=answer.completion_tokens,
                    )
                raw = hit.raw
                cut = hit.finish_reason == "length"
                if not cut:
                    break
                truncated += 1
                self.usage.record(stage, truncated=1)
                if settings["temperature"] == 0:
                    break  # a greedy draw would be the same reply again
            assert raw is not None  # the loop above ran at least once
            value, problem = parse_output(raw, output)
            if value is not None:
                return LLMResult(value, raw, None, counts.requests == 0, counts.requests, truncated)
            if cut:
                # feeding a cut reply back only gets it again: give up on this call
                self.usage.record(stage, failures=1)
                return LLMResult(
                    value=None,
                    raw=raw,
                    error=f"the reply was cut at the token cap ({settings['max_tokens']} tokens)"
                    f" in {truncated} sample(s): {problem}",
                    cached=counts.requests == 0,
                    requests=counts.requests,
                    truncated=truncated,
                )
        self.usage.record(stage, failures=1)
        return LLMResult(
            value=None,
            raw=raw,
            error=f"invalid output after {self.config.max_reasks} re-asks: {problem}",
            cached=counts.requests == 0,
            requests=counts.requests,
            truncated=truncated,
        )

    def _failure_text(self, error: BaseException, counts: _Counts) -> str:
        if isinstance(error, _Refused) and error.refusal is Refusal.CONTEXT_OVERFLOW:
            return (
                "the prompt does not fit the model's context window:"
                f" {_describe_transport(error.error)}"
            )
        return f"request failed after {counts.retries} retries: {_describe_transport(error)}"

    # -- free-form chat with tools --

    async def _post_chat(
        self, stage: str, body: dict[str, Any], settings: dict[str, Any], counts: _Counts
    ) -> _Answer:
        """One chat request; a refused ``max_tokens`` is sent again as max_completion_tokens,
        other error answers propagate (a context overflow or a tools refusal as ``_Refused``)."""
        while True:
            wire = self._wire(settings)
            sent = {key: value for key, value in body.items() if key not in _TOKEN_NAMES}
            try:
                text = await self._post(stage, {**sent, **wire}, counts)
            except openai.APIStatusError as error:
                refusal = self._failed(stage, error)
                if refusal is Refusal.TOKEN_PARAMETER and "max_tokens" in wire:
                    continue
                if refusal is Refusal.CONTEXT_OVERFLOW:
                    raise _Refused(refusal, error) from None
                if refusal is Refusal.TOOLS and "tools" in body:
                    self._endpoint.refuse_tools(_why(error))
                    raise _Refused(refusal, error) from None
                raise
            answer = _read_chat(text)
            tool_calls = bool(json.loads(answer.text)["tool_calls"]) if "tools" in body else None
            self._endpoint.answered(None, tool_calls)
            return answer

    async def _retrying(
        self, stage: str, counts: _Counts, attempt: Callable[[], Awaitable[_Answer]]
    ) -> _Answer:
        """``attempt`` retried on transient failures exactly as ``_exchange`` retries."""
        try:
            return await attempt()
        except (openai.OpenAIError, _Unusable) as error:
            if not is_transient(error) or self.config.max_retries == 0:
                raise
            first_failure: BaseException = error

        def note_retry() -> None:
            counts.retries += 1
            self.usage.record(stage, retries=1)

        note_retry()
        await asyncio.sleep(backoff_delay(first_failure, 1))

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            return backoff_delay(error, state.attempt_number + 1)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_retries),
            wait=wait,
            retry=retry_if_exception(is_transient),
            before_sleep=lambda state: note_retry(),
            reraise=True,
        )
        async for retry in retrying:
            with retry:
                return await attempt()
        raise AssertionError("unreachable: tenacity returns or re-raises")  # pragma: no cover

    async def chat(
        self,
        *,
        stage: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        sample: int | None = None,
    ) -> ChatResult:
        """One assistant turn for ``messages`` (any OpenAI chat messages, tool calls and tool
        results included), offering ``tools``; no output validation and no re-asks.

        Shares the limits, retries, usage ledger, endpoint memory and cache of ``structured``
        (``temperature``, ``max_tokens`` and ``sample`` as there); the cache key also covers
        the tools and tool choice. Never raises on transport failure: the result then carries
        ``error``, and ``refusal`` when the server said what it refused.
        """
        settings = self._settings(stage, temperature, max_tokens)

        def key_of(sample_no: int) -> str:
            return cache_key(
                model=self._model,
                # canonical_json hashes any JSON; the annotation predates tool-call messages
                messages=cast("list[dict[str, str]]", messages),
                parameters=settings,
                template_hash=_CHAT_TEMPLATE,
                schema_digest=content_hash({"tools": tools or [], "tool_choice": tool_choice}, 64),
                sample=sample_no,
                endpoint=self._answerer,
            )

        key = key_of(self._sample_of(key_of(0), sample))
        hit = self.cache.get(key)
        if hit is not None:
            self.usage.record(stage, cache_hits=1)
            if hit.finish_reason == "length":
                self.usage.record(stage, truncated=1)
            return _chat_result(hit, True, 0)
        body: dict[str, Any] = {"model": self._model, "messages": messages}
        if tools:
            body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        counts = _Counts()
        endpoint = self._endpoint
        try:
            async with endpoint.first_contact(
                "tools" if tools else "chat", lambda: endpoint.knows_chat(bool(tools))
            ):
                if tools and endpoint.tools is ToolSupport.REFUSED:
                    # known from an earlier refusal: not asked again (status as it was refused)
                    self.usage.record(stage, failures=1)
                    return ChatResult(
                        content="",
                        tool_calls=[],
                        raw=None,
                        error="the endpoint refuses the tools parameter (learned from an earlier"
                        " request); send the request without tools",
                        cached=False,
                        requests=0,
                        status=400,
                        refusal=Refusal.TOOLS.value,
                    )
                answer = await self._retrying(
                    stage, counts, lambda: self._post_chat(stage, body, settings, counts)
                )
        except (openai.OpenAIError, _Unusable, _Refused) as error:
            self.usage.record(stage, failures=1)
            refusal = error.refusal.value if isinstance(error, _Refused) else None
            cause = error.error if isinstance(error, _Refused) else error
            return ChatResult(
                content="",
                tool_calls=[],
                raw=None,
                error=self._failure_text(error, counts),
                cached=False,
                requests=counts.requests,
                status=_status(cause),
                refusal=refusal,
            )
        kept = self.cache.put(key, answer.cached(), self._model)
        self.usage.record(
            stage, prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens
        )
        if kept.finish_reason == "length":
            self.usage.record(stage, truncated=1)
        return _chat_result(kept, False, counts.requests)


_TOKEN_NAMES = ("max_tokens", "max_completion_tokens")
