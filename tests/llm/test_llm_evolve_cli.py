"""The client's endpoint handling seen through `asynctool evolve`, against the fake server
behaving like llama.cpp: one refused json_schema request per run, replies cut at the token cap
resampled, local defaults and --llm-timeout in the manifest, and a new run answered from the
cache making the same tasks."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.llm.fake_server import FakeOpenAIServer, FaultMix, minimal_instance, requested_schema
from pipeline.seeds import SEED_DIR


def write_seeds(tmp_path: Path, lines: list[int]) -> Path:
    """Maths seeds by line; a line given again becomes a twin under another id (the same task,
    so the same prompts, as two parents)."""
    source = (SEED_DIR / "maths.jsonl").read_text().splitlines()
    records = []
    for count, index in enumerate(lines):
        record = json.loads(source[index])
        if index in lines[:count]:
            record["id"] = f"twin{count:012d}"
        records.append(json.dumps(record) + "\n")
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(records))
    return path


def evolve(tmp_path: Path, run_id: str, url: str, seeds: Path, *extra: str) -> dict[str, Any]:
    """``--free-steps``: these tests count the model's requests and answers for model-written
    calls (the checked steps are tested in tests/evolve/test_guided_steps.py)."""
    argv = [
        "evolve", "--inline", "--output", str(tmp_path), "--run-id", run_id,
        "--seeds", str(seeds), "--rounds", "1", "--operators", "deepen,broaden,paraphrase",
        "--no-repair", "--llm-base-url", url, "--llm-model", "fake-model", "--free-steps",
        *extra,
    ]  # fmt: skip
    assert main(argv) == 0
    return json.loads((tmp_path / "runs" / run_id / "manifest.json").read_text())["evolve"]  # type: ignore[no-any-return]


def total(manifest: dict[str, Any], counter: str) -> int:
    return sum(stage.get(counter, 0) for stage in manifest["token_usage"].values())


def numbered_answers() -> Any:
    """A minimal answer to the requested schema whose first text field says which request it
    answered: every request gets another answer, as sampling above temperature 0 does."""
    counter = itertools.count()
    lock = threading.Lock()

    def answer(body: dict[str, Any]) -> str:
        with lock:
            number = next(counter)
        value = minimal_instance(requested_schema(body) or {})
        if isinstance(value, dict):
            for name, item in value.items():
                if isinstance(item, str):
                    value[name] = f"answer number {number} to this request"
                    break
        return json.dumps(value)

    return answer


def test_a_run_against_llama_cpp_pays_one_refused_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the LLM cache lives under ./output/cache
    seeds = write_seeds(tmp_path, [0, 1, 2])
    server = FakeOpenAIServer(faults=FaultMix.llama_cpp())
    with server as url:
        manifest = evolve(tmp_path, "run", url, seeds, "--llm-timeout", "45")
    generated = sum(record["generated"] for record in manifest["operators"].values())
    assert generated == 9  # 3 parents x 3 operators, each one request once the mode is known
    assert total(manifest, "failed_requests") == 1
    assert total(manifest, "requests") == server.requests == 10
    kinds = [body["response_format"]["type"] for body in server.bodies]
    assert kinds.count("json_schema") == 1
    assert manifest["llm"]["timeout"] == 45.0
    assert manifest["llm"]["concurrency"] == 2  # the default for an endpoint on this machine
    learned = manifest["llm_endpoint"]  # the mode that works is recorded with the run
    assert learned is not None and "json_schema" in json.dumps(learned)


def test_replies_cut_at_the_cap_are_resampled_then_rejected_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    seeds = write_seeds(tmp_path, [0])
    config = tmp_path / "llm.toml"
    config.write_text("[llm]\nmax_tokens = 60\nmax_resamples = 1\n")
    runaway = '{"question": "' + "and then " * 400
    server = FakeOpenAIServer(answer=lambda body: runaway, faults=FaultMix.llama_cpp())
    with server as url:
        manifest = evolve(tmp_path, "cut", url, seeds, "--llm-config", str(config))
    assert total(manifest, "truncated") == 6  # 3 calls x 2 samples, each cut
    assert total(manifest, "resamples") == 3 and total(manifest, "reasks") == 0
    assert sum(event.outcome == "length" for event in server.events) == 6
    rejected = [
        json.loads(line)
        for line in (tmp_path / "runs" / "cut" / "evolve_rejected.jsonl").read_text().splitlines()
    ]
    assert len(rejected) == 3 and all("token cap" in r["message"] for r in rejected)
    assert all(r["raw"] and r["raw"].startswith('{"question"') for r in rejected)


def _outputs(run: Path) -> tuple[list[str], list[tuple[str, str]]]:
    evolved = sorted(
        line for line in (run / "evolved.jsonl").read_text().splitlines() if '"seed"' not in line
    )
    rejected = sorted(
        (record["code"], record.get("raw") or "")
        for record in map(json.loads, (run / "evolve_rejected.jsonl").read_text().splitlines())
    )
    return evolved, rejected


def test_a_new_run_answered_from_the_cache_makes_the_same_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    seeds = write_seeds(tmp_path, [0, 0, 1])  # the first parent twice: its prompts sampled twice
    server = FakeOpenAIServer(answer=numbered_answers())
    with server as url:
        first = evolve(tmp_path, "first", url, seeds, "--concurrency", "8")
        sent = server.requests
        second = evolve(tmp_path, "second", url, seeds, "--concurrency", "8")
    assert sent == 9 and server.requests == sent  # the new run sent nothing
    prompts = [json.dumps(body["messages"]) for body in server.bodies]
    assert len(set(prompts)) == 6, "the twins' 3 prompts were each asked twice"
    assert total(second, "cache_hits") == 9 and total(first, "cache_hits") == 0
    _, rejected = _outputs(tmp_path / "runs" / "first")
    raws = [raw for _, raw in rejected]
    assert len(set(raws)) == len(raws) == 9, "each request's own answer, none lost"
    assert _outputs(tmp_path / "runs" / "first") == _outputs(tmp_path / "runs" / "second")
