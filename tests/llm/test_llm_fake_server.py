"""The fake OpenAI-compatible server: endpoints, schema instances, faults, and its capacity."""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import BaseModel, Field

from pipeline.llm.fake_server import FakeOpenAIServer, FaultMix, minimal_instance


def call(url: str, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, parts.path + path, body=payload)
        response = connection.getresponse()
        data = json.loads(response.read())
        return response.status, dict(response.getheaders()), data
    finally:
        connection.close()


class Inner(BaseModel):
    code: str = Field(pattern=r"^[a-z]+\.[a-z]+$")
    size: int = Field(ge=3)


class Outer(BaseModel):
    name: str = Field(min_length=4)
    inner: Inner
    maybe: Inner | None
    items: list[Inner] = Field(min_length=2)
    flag: bool
    kind: str = Field(default="x", pattern="^[xy]$")


def test_minimal_instance_satisfies_nested_schemas() -> None:
    instance = minimal_instance(Outer.model_json_schema())
    Outer.model_validate(instance)
    assert instance["items"][0]["size"] == 3 and "kind" not in instance


def test_models_endpoint_and_unknown_paths() -> None:
    with FakeOpenAIServer(model_name="tiny") as url:
        status, _, data = call(url, "GET", "/models")
        assert status == 200 and data["data"][0]["id"] == "tiny"
        assert call(url, "GET", "/nothing")[0] == 404
        assert call(url, "POST", "/embeddings", {})[0] == 404
        assert urlsplit(url).hostname == "127.0.0.1"


def test_chat_completion_answers_the_requested_schema() -> None:
    server = FakeOpenAIServer()
    with server as url:
        body = {
            "model": "m",
            "messages": [{"role": "user", "content": "hello there"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "Inner", "schema": Inner.model_json_schema()},
            },
        }
        status, _, data = call(url, "POST", "/chat/completions", body)
    assert status == 200
    Inner.model_validate_json(data["choices"][0]["message"]["content"])
    assert data["usage"]["total_tokens"] > 0 and data["object"] == "chat.completion"
    assert server.requests == 1 and server.bodies == [body]


def test_faults_are_deterministic_per_request_index() -> None:
    mix = FaultMix(rate_limit=0.2, server_error=0.2, timeout=0.1, truncated=0.1, invalid=0.1)
    first = [mix.draw(7, index) for index in range(200)]
    assert first == [mix.draw(7, index) for index in range(200)]
    assert first != [mix.draw(8, index) for index in range(200)]
    counts = {name: first.count(name) for name in set(first)}
    assert counts[None] > 40 and counts["rate_limit"] > 20


@pytest.mark.parametrize(
    ("faults", "status"),
    [
        (FaultMix(rate_limit=1.0, retry_after=2.5), 429),
        (FaultMix(server_error=1.0), 500),
        (FaultMix(reject_json_schema=True), 500),
        (FaultMix(reject_response_format=True), 400),
    ],
)
def test_status_faults(faults: FaultMix, status: int) -> None:
    body = {
        "model": "m",
        "messages": [],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    }
    with FakeOpenAIServer(faults=faults) as url:
        got, headers, data = call(url, "POST", "/chat/completions", body)
    assert got == status and "error" in data
    if status == 429:
        assert headers["Retry-After"] == "2.5"


def test_truncated_and_invalid_content() -> None:
    body = {
        "model": "m",
        "messages": [],
        "response_format": {"type": "json_object", "schema": Inner.model_json_schema()},
    }
    with FakeOpenAIServer(faults=FaultMix(truncated=1.0)) as url:
        content = call(url, "POST", "/chat/completions", body)[2]["choices"][0]["message"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(content["content"])
    with FakeOpenAIServer(faults=FaultMix(invalid=1.0)) as url:
        content = call(url, "POST", "/chat/completions", body)[2]["choices"][0]["message"]
    assert isinstance(json.loads(content["content"]), dict | list)
    with pytest.raises(ValueError):
        Inner.model_validate_json(content["content"])


def test_sustains_64_concurrent_requests_at_200_ms() -> None:
    server = FakeOpenAIServer(latency=0.2)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with server as url, ThreadPoolExecutor(64) as pool:
        statuses = list(
            pool.map(lambda _: call(url, "POST", "/chat/completions", body)[0], range(64))
        )
    assert statuses == [200] * 64
    # all 64 were in flight at once: served together, not one after another (the wall time of
    # such waves is measured by bench/evolve.py, where a loaded machine cannot fail a test)
    assert server.max_in_flight == 64
