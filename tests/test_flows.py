"""The one Prefect flow every sharded stage runs in (pipeline/flows.py): a stage given as a
function of its shard runner makes in the flow, its shards as Prefect tasks, what it makes
inline, and what Prefect stores of the flow run holds no LLM key. The stages' own
flow-equals-inline and Dask-equals-threads tests are in tests/validate, tests/evolve,
tests/test_compose.py and tests/harness/test_oracles.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import pytest

from pipeline.llm import LLMConfig
from pipeline.shards import ShardRunner, ShardSlot, merge_in_order, process_once, run_inline

SECRET = "sk-never-stored-0123456789"


@dataclass
class Count:
    index: int
    words: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Count:
        return cls(**json.loads(text))


def count_words(folder: Path, job: tuple[int, str]) -> Count:
    index, text = job

    def work() -> tuple[dict[str, str], Count]:
        return {"upper": text.upper() + "\n"}, Count(index, len(text.split()))

    return process_once(ShardSlot(folder, index), Count.from_json, work)


def word_stage(
    folder: Path, texts: Sequence[str], llm: LLMConfig, runner: ShardRunner[tuple[int, str], Count]
) -> dict[str, object]:
    """A toy stage: plan one job per text, process, merge in order, record; it holds an LLM
    config with a key, as the evolve and eval stages do."""
    from prefect.runtime import flow_run

    jobs = list(enumerate(texts))
    counts = runner(partial(count_words, folder), jobs)
    merge_in_order([ShardSlot(folder, i) for i, _ in jobs], "upper", folder / "upper.jsonl")
    return {"words": [c.words for c in counts], "flow_run": flow_run.id, "model": llm.model}


@pytest.mark.slow
def test_any_stage_runs_in_the_flow_as_it_runs_inline(
    tmp_path: Path, prefect_harness: None
) -> None:
    from prefect.client.orchestration import get_client

    from pipeline.flows import Runner, run_stage

    texts = ["one", "two words", "now three words", "", "and four more words"]
    llm = LLMConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key=SECRET)
    inline = word_stage(tmp_path / "inline", texts, llm, run_inline)
    stage = partial(word_stage, tmp_path / "flow", texts, llm)
    flowed = run_stage("words", stage, {"texts": len(texts)}, Runner(workers=3))
    assert flowed["words"] == inline["words"] == [1, 2, 3, 0, 4]
    merged = (tmp_path / "flow" / "upper.jsonl").read_bytes()
    assert merged == (tmp_path / "inline" / "upper.jsonl").read_bytes()
    assert merged.decode().splitlines()[1] == "TWO WORDS"

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flowed["flow_run"])  # type: ignore[arg-type]
        flow = client.read_flow(run.flow_id)
    assert flow.name == "words"
    assert run.parameters["about"] == {"texts": 5}
    assert SECRET not in json.dumps(run.parameters, default=str)
