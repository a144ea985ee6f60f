"""An OpenAI-compatible chat-completions server on loopback, for tests and benchmarks.

Standard library only: a ``ThreadingHTTPServer`` (one daemon thread per connection, HTTP/1.1
keep-alive) that answers ``POST /v1/chat/completions`` and ``GET /v1/models``. Faults are drawn
per request index from a seeded generator, so a run with one request in flight at a time is
reproducible. Run ``python -m pipeline.llm.fake_server`` to serve one from a separate process.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

MAX_LOGGED = 1000


@dataclass
class FaultMix:
    """Probabilities per request; at most one fault is drawn for each request."""

    rate_limit: float = 0.0  # 429 with Retry-After: <retry_after> seconds
    server_error: float = 0.0  # 500
    timeout: float = 0.0  # sleep ``hang_seconds`` (longer than the client's timeout), then answer
    truncated: float = 0.0  # 200 with the content JSON cut in half
    invalid: float = 0.0  # 200 with JSON that does not fit the requested schema
    retry_after: float = 0.1
    hang_seconds: float = 5.0
    reject_json_schema: bool = False  # json_schema response formats get HTTP 500, like llama.cpp
    reject_response_format: bool = False  # any response_format gets HTTP 400 (text-only servers)
    #: a reply longer than the request's token cap (4 characters a token) is cut there and
    #: answered with finish_reason "length", as a real server does
    honour_token_cap: bool = False
    #: HTTP 400 for ``max_tokens``, naming max_completion_tokens (OpenAI's reasoning models)
    refuse_max_tokens: bool = False
    #: HTTP 400 for a request offering ``tools`` (vLLM without a tool-call parser)
    reject_tools: bool = False
    #: HTTP 400 "exceeds the context window" when prompt tokens plus the cap exceed this
    context_tokens: int | None = None

    @classmethod
    def llama_cpp(cls, **changes: Any) -> FaultMix:
        """llama.cpp's server as the LLM client meets it: HTTP 500 on json_schema, replies cut
        at the token cap with finish_reason "length"."""
        values: dict[str, Any] = {"reject_json_schema": True, "honour_token_cap": True}
        values.update(changes)
        return cls(**values)

    def draw(self, seed: int, index: int) -> str | None:
        roll = random.Random(f"{seed}:{index}").random()
        for name in ("rate_limit", "server_error", "timeout", "truncated", "invalid"):
            probability: float = getattr(self, name)
            if roll < probability:
                return name
            roll -= probability
        return None


@dataclass(frozen=True)
class RequestEvent:
    index: int
    received_at: float  # time.monotonic()
    #: "ok", a FaultMix field name, "rejected" (400), "rejected_500", "bad_request",
    #: "max_tokens_refused", "tools_refused", "context_overflow" or "length" (cut at the cap)
    outcome: str
    body: dict[str, Any] | None  # the request's JSON body (None if it was not JSON)


# --- a minimal valid instance of a JSON schema -------------------------------------------------


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 32:
        ref = str(schema["$ref"])
        node: Any = root
        for part in ref.removeprefix("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema = node if isinstance(node, dict) else {}
        seen += 1
    return schema


def _string_for(schema: dict[str, Any]) -> str:
    length = int(schema.get("minLength", 0))
    pattern = schema.get("pattern")
    candidates = ["x" * max(length, 1), "a" * max(length, 1), "0" * max(length, 1), "a.b", "a_b"]
    if pattern is None:
        return "x" * length
    for candidate in candidates:
        if re.search(pattern, candidate):
            return candidate
    return candidates[0]


def minimal_instance(
    schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0
) -> Any:
    """The smallest value satisfying common schemas; patterns are best effort."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if depth > 20:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return minimal_instance(schema[key][0], root, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(_resolve(part, root))
        return minimal_instance(merged, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties", {})
        return {
            name: minimal_instance(properties.get(name, {}), root, depth + 1)
            for name in schema.get("required", [])
        }
    if kind == "array":
        count = int(schema.get("minItems", 0))
        items = schema.get("items", {})
        return [minimal_instance(items, root, depth + 1) for _ in range(count)]
    if kind == "string":
        return _string_for(schema)
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        if low is None:
            return 0
        value = low + 1 if "exclusiveMinimum" in schema and "minimum" not in schema else low
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return {}


def _invalid_instance(schema: dict[str, Any]) -> Any:
    """Valid JSON that breaks the schema: a required property of the wrong type, else a list."""
    value = minimal_instance(schema)
    if isinstance(value, dict) and value:
        name = next(iter(value))
        value[name] = 12345 if isinstance(value[name], str) else "not the right type"
        return value
    return ["not", "an", "object"]


def requested_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema", {}).get("schema")
    else:
        schema = response_format.get("schema")
    return schema if isinstance(schema, dict) else None


def _schema_in_messages(body: dict[str, Any]) -> dict[str, Any] | None:
    """A JSON schema written into a system message (how text-only modes describe it)."""
    for message in body.get("messages", []):
        if not isinstance(message, dict) or message.get("role") != "system":
            continue
        for line in str(message.get("content", "")).splitlines():
            if not line.startswith("{"):
                continue
            try:
                found = json.loads(line)
            except ValueError:
                continue
            if isinstance(found, dict) and ("properties" in found or "type" in found):
                return found
    return None


def default_answer(body: dict[str, Any]) -> str:
    """A minimal instance of the requested schema: bare JSON when a response_format carries the
    schema, else wrapped in prose and a fence like a chatty model (if the prompt holds one)."""
    schema = requested_schema(body)
    if schema is not None:
        return json.dumps(minimal_instance(schema))
    schema = _schema_in_messages(body)
    if schema is None:
        return "{}"
    return f"Here is the JSON:\n```json\n{json.dumps(minimal_instance(schema))}\n```"


# --- the server --------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # many clients connect at once; the default backlog of 5 drops SYNs
    fake: FakeOpenAIServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per client slot, not per request
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    timeout = 60  # idle keep-alive connections free their thread eventually

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            fake = self.server.fake
            self._send(
                200, {"object": "list", "data": [{"id": fake.model_name, "object": "model"}]}
            )
        else:
            self._send(404, _error("not found", "invalid_request_error"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length)
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send(404, _error("not found", "invalid_request_error"))
            return
        fake = self.server.fake
        try:
            body = json.loads(payload)
            if not isinstance(body, dict):
                raise ValueError("the body is not an object")
        except ValueError as error:
            fake._register(None)
            self._send(400, _error(f"invalid JSON body: {error}", "invalid_request_error"))
            return
        fake._serve(self, body)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timed out) and closed the connection
            self.close_connection = True


_REFUSALS = {
    "max_tokens_refused": "Unsupported parameter: 'max_tokens' is not supported with this model."
    " Use 'max_completion_tokens' instead.",
    "tools_refused": '"auto" tool choice requires --enable-auto-tool-choice to be set',
    "context_overflow": "This model's maximum context length exceeded: the prompt and the"
    " completion do not fit the context window",
}


def _token_cap(body: dict[str, Any]) -> int | None:
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _prompt_tokens(body: dict[str, Any]) -> int:
    return max(1, sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4)


def _refusal(faults: FaultMix, body: dict[str, Any]) -> str | None:
    """The 400 a configured server would answer this body with, if any."""
    if faults.refuse_max_tokens and "max_tokens" in body:
        return "max_tokens_refused"
    if faults.reject_tools and body.get("tools"):
        return "tools_refused"
    limit = faults.context_tokens
    if limit is not None and _prompt_tokens(body) + (_token_cap(body) or 0) > limit:
        return "context_overflow"
    return None


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class FakeOpenAIServer:
    def __init__(
        self,
        answer: Callable[[dict[str, Any]], str] | None = None,
        latency: float = 0.0,
        faults: FaultMix | None = None,
        seed: int = 0,
        model_name: str = "fake-model",
    ) -> None:
        self.answer = answer or default_answer
        self.latency = latency
        self.faults = faults or FaultMix()
        self.seed = seed
        self.model_name = model_name
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._local = threading.local()  # each request is handled on its own thread
        self._events: deque[RequestEvent] = deque(maxlen=MAX_LOGGED)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The last received chat request bodies (at most 1,000), oldest first."""
        return [event.body for event in self.events if event.body is not None]

    @property
    def events(self) -> list[RequestEvent]:
        """The last 1,000 chat requests: arrival time, outcome and body, oldest first."""
        with self._lock:
            return list(self._events)

    def start(self) -> str:
        if self._server is not None:
            raise RuntimeError("the fake server is already running")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self.base_url

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake server is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- request handling (runs on the connection's thread) --

    def _register(self, body: dict[str, Any] | None) -> str | None:
        """Count and log the request; returns the fault to answer it with. The request's
        index is kept for the handling thread (``_local.index``)."""
        received_at = time.monotonic()
        fault: str | None = "bad_request"
        with self._lock:
            index = self.requests
            self.requests += 1
            if body is not None:
                fault = self.faults.draw(self.seed, index)
                response_format = body.get("response_format")
                kind = response_format.get("type") if isinstance(response_format, dict) else None
                refusal = _refusal(self.faults, body)
                if refusal is not None:
                    fault = refusal
                elif self.faults.reject_response_format and kind is not None:
                    fault = "rejected"
                elif self.faults.reject_json_schema and kind == "json_schema":
                    fault = "rejected_500"
            self._events.append(RequestEvent(index, received_at, fault or "ok", body))
        self._local.index = index
        return fault

    def _serve(self, handler: _Handler, body: dict[str, Any]) -> None:
        fault = self._register(body)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._respond(handler, body, fault)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _respond(self, handler: _Handler, body: dict[str, Any], fault: str | None) -> None:
        faults = self.faults
        if fault == "rejected":
            handler._send(400, _error("response_format is not supported", "invalid_request_error"))
            return
        if fault == "rejected_500":
            handler._send(500, _error("json_schema is not supported", "server_error"))
            return
        if fault in _REFUSALS:
            handler._send(400, _error(_REFUSALS[fault], "invalid_request_error"))
            return
        if self.latency:
            time.sleep(self.latency)
        if fault == "rate_limit":
            retry_after = f"{faults.retry_after:g}"
            handler._send(
                429, _error("rate limited", "rate_limit_error"), {"Retry-After": retry_after}
            )
            return
        if fault == "server_error":
            handler._send(500, _error("injected server error", "server_error"))
            return
        if fault == "timeout":
            time.sleep(faults.hang_seconds)
        schema = requested_schema(body)
        finish = "stop"
        if fault == "invalid":
            content = json.dumps(_invalid_instance(schema or {}))
        else:
            content = self.answer(body)
            if fault == "truncated":
                content = content[: len(content) // 2]
                finish = "length"
        cap = _token_cap(body)
        if faults.honour_token_cap and cap is not None and len(content) > cap * 4:
            content, finish = content[: cap * 4], "length"
            self._note_length()
        handler._send(200, self._completion(body, content, finish))

    def _note_length(self) -> None:
        """Log the request this thread handles as cut at the cap (for tests that count them)."""
        index = getattr(self._local, "index", None)
        with self._lock:
            for position, event in enumerate(self._events):
                if event.index == index and event.outcome == "ok":
                    self._events[position] = RequestEvent(
                        event.index, event.received_at, "length", event.body
                    )

    def _completion(self, body: dict[str, Any], content: str, finish: str) -> dict[str, Any]:
        prompt_tokens = _prompt_tokens(body)
        completion_tokens = max(1, len(content) // 4)
        return {
            "id": f"chatcmpl-fake-{self.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or self.model_name),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(latency=args.latency, seed=args.seed)
    print(server.start(), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
