"""The SQLite answer cache: keys (which server answered included), and concurrent writers on
one file."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pipeline.llm import LLMClient, LLMConfig
from pipeline.llm.cache import AnswerCache, CachedAnswer, cache_key, endpoint_identity
from pipeline.llm.client import ChatResult
from pipeline.llm.fake_server import FakeOpenAIServer


def key(**changes: object) -> str:
    values: dict[str, object] = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "parameters": {"temperature": 0.7, "max_tokens": 10},
        "template_hash": "t",
        "schema_digest": "s",
    }
    values.update(changes)
    return cache_key(**values)  # type: ignore[arg-type]


def test_key_changes_with_every_input_and_only_then() -> None:
    base = key()
    assert base == key()
    variants = [
        key(model="other"),
        key(messages=[{"role": "user", "content": "hi!"}]),
        key(parameters={"temperature": 0.0, "max_tokens": 10}),
        key(template_hash="t2"),
        key(schema_digest="s2"),
        key(sample=1),
        key(endpoint="https://api.example.com/v1"),
    ]
    assert len({base, *variants}) == 8
    # a local server (no endpoint) keys as before servers were named: older caches answer
    assert key(endpoint=None) == base


def test_endpoint_identity_normalises_and_leaves_this_machine_out() -> None:
    same = [
        "https://api.example.com/v1",
        "HTTPS://API.Example.com:443/v1/",
        "https://user@api.example.com/v1?api-version=1",
    ]
    assert {endpoint_identity(url) for url in same} == {"https://api.example.com/v1"}
    different = [
        "http://api.example.com/v1",  # another scheme
        "https://api.example.com:8443/v1",  # another port on another machine
        "https://api.example.com/openai/v1",
        "https://other.example.com/v1",
        "http://192.168.1.20:8181/v1",  # a machine on the LAN is another machine
        "http://[2001:db8::1]:8000/v1",
    ]
    identities = {endpoint_identity(url) for url in different}
    assert len(identities) == len(different) and None not in identities
    for local in ("http://127.0.0.1:8181/v1", "http://localhost:9999/v1/", "http://[::1]:1/v1"):
        assert endpoint_identity(local) is None


class _Machines(BaseHTTPRequestHandler):
    """Stands in for servers on other machines, offline: the client reaches it as its HTTP
    proxy (so no name is looked up) and it answers each chat request with the host the request
    was addressed to."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        host = urlsplit(self.path).netloc or self.headers["Host"]
        self.server.hosts.append(host)  # type: ignore[attr-defined]
        message = {"role": "assistant", "content": f"answered by {host}"}
        body = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "same-model",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
        pass


@pytest.fixture
def machines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The hosts asked, in order; every plain-HTTP request goes through the stand-in."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Machines)
    server.hosts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield server.hosts  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _ask(base_url: str, cache_path: Path, api_key: str | None = "test-key") -> ChatResult:
    config = LLMConfig(
        base_url=base_url, model="same-model", api_key=api_key, cache_path=cache_path, timeout=5.0
    )

    async def run() -> ChatResult:
        async with LLMClient(config) as client:
            return await client.chat(stage="t", messages=[{"role": "user", "content": "hi"}])

    return asyncio.run(run())


def test_two_servers_of_one_model_name_keep_their_own_answers(
    machines: list[str], tmp_path: Path
) -> None:
    """One model name behind two addresses is two samplers: neither replays the other's
    answers; another spelling of the same address is the same server, answered from disk."""
    cache_path = tmp_path / "llm.sqlite"
    first = _ask("http://model-a.example/v1", cache_path)
    other = _ask("http://model-b.example/v1", cache_path)
    again = _ask("HTTP://Model-A.example:80/v1/", cache_path)
    assert (first.content, first.cached) == ("answered by model-a.example", False)
    assert (other.content, other.cached) == ("answered by model-b.example", False)
    assert (again.content, again.cached) == ("answered by model-a.example", True)
    assert machines == ["model-a.example", "model-b.example"]


def test_a_local_server_on_another_port_replays_the_cache(tmp_path: Path) -> None:
    """A server on this machine is keyed by model name alone: restarted on another port (a
    make llm-local on a free port, a test's fake server), it replays what is cached."""
    cache_path = tmp_path / "llm.sqlite"
    with FakeOpenAIServer(answer=lambda body: "first server", model_name="same-model") as url:
        first = _ask(url, cache_path, api_key=None)
    with FakeOpenAIServer(answer=lambda body: "second server", model_name="same-model") as url:
        again = _ask(url.replace("127.0.0.1", "localhost"), cache_path, api_key=None)
    assert (first.content, first.cached) == ("first server", False)
    assert (again.content, again.cached) == ("first server", True)


def test_concurrent_writers_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "llm.sqlite"
    caches = [AnswerCache(path), AnswerCache(path)]  # as two processes would
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        cache = caches[worker % 2]
        try:
            for index in range(100):
                name = f"{worker}-{index}"
                cache.put(name, CachedAnswer(f"raw {name}", index, 1), "m")
                assert cache.get(name) == CachedAnswer(f"raw {name}", index, 1)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(caches[0]) == 600
    for cache in caches:
        cache.close()
    assert AnswerCache(path).get("5-99") == CachedAnswer("raw 5-99", 99, 1)
