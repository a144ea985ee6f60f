"""The SQLite answer cache: keys, and concurrent writers on one file."""

from __future__ import annotations

import threading
from pathlib import Path

from pipeline.llm.cache import AnswerCache, CachedAnswer, cache_key


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
    ]
    assert len({base, *variants}) == 6


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
