"""Long context as a composition knob (issue 16): ``compose --long-context-share`` draws
instances whose tasks run every environment's long-context mode, each variant validated again
and every task left out reported with its reason; the harness plays such instances, and an
agent speaking the OpenAI protocol sees their long results whole (a bare list included)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.audit.store import append_review
from pipeline.cli import main
from pipeline.compose import ComposeSettings, compose
from pipeline.envs import get_env_class
from pipeline.envs.long_context import FILE_CONTENT_EXTENSION, WATCH_LIST_EXTENSION
from pipeline.evolve.engine import EvolveSettings, evolve
from pipeline.harness.openai_agent import OpenAIAgentSettings, openai_agent_factory
from pipeline.harness.runner import ORACLES, run_many
from pipeline.harness.sim import Mode
from pipeline.jsonl import read_records
from pipeline.llm import LLMClient, LLMConfig
from pipeline.llm.fake_server import FakeOpenAIServer
from pipeline.long_context_variants import long_context_config, made_from
from pipeline.models import Call, ContextProfile, Decision, Instance, Rejection, Review, Task
from pipeline.publish.rows import instance_to_row, row_to_instance
from pipeline.replay import replay, state_digest
from pipeline.seeds import load_seeds
from pipeline.splits import root_ancestors, split_of
from pipeline.validate.chain import validate_task

pytestmark = pytest.mark.slow  # long-context states composed, replayed and evaluated

COUNT = 40


def _has_mode(env: str) -> bool:
    return "long_context" in get_env_class(env).state_model.model_fields


def _file_contents(node: Any) -> list[str]:
    """Every file's text in a filesystem state's tree."""
    if not isinstance(node, dict):
        return []
    if node.get("type") == "file":
        return [node["content"]]
    children = node.get("contents", node) if node.get("type") == "directory" else node
    return [text for child in children.values() for text in _file_contents(child)]


def _compose(run: Path, *extra: str) -> int:
    return main(["compose", "--run-dir", str(run), "--count", str(COUNT), "--seed", "2", *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("long-context") / "run"
    evolve(load_seeds(), run, EvolveSettings(rounds=1))
    assert _compose(run, "--long-context-share", "1") == 0
    return run


@pytest.fixture(scope="module")
def pool(run: Path) -> list[Task]:
    return list(read_records(run / "evolved.jsonl", Task))


@pytest.fixture(scope="module")
def instances(run: Path) -> list[Instance]:
    return list(read_records(run / "instances.jsonl", Instance))


def test_every_task_of_a_long_instance_runs_long_and_is_valid(
    pool: list[Task], instances: list[Instance]
) -> None:
    by_id = {task.id: task for task in pool}
    assert len(instances) == COUNT
    assert all(i.context_profile is ContextProfile.LONG for i in instances)
    roots = root_ancestors([*pool, *(task for i in instances for task in i.tasks)])
    longest = 0
    for instance in instances:
        assert len({split_of(roots[task.id]) for task in instance.tasks}) == 1
        for task in instance.tasks:
            parent = by_id[task.lineage.parents[0]]
            assert task.lineage.operator == "long_context" and task.id not in by_id
            assert (task.question, task.calls) == (parent.question, parent.calls)
            assert any(_has_mode(env) for env in task.envs)
            for env in task.envs:
                assert task.initial_config[env].get("long_context", False) is _has_mode(env)
            # the variant is what validation makes of it: expected recomputed, all checks pass
            assert validate_task(task.model_copy(update={"expected": None})).task == task
            result = replay(task)
            assert result.ok and state_digest(result.final_state) == task.expected.state_digest
            longest = max(longest, *(len(json.dumps(o.result)) for o in result.outcomes))
            if "filesystem" in task.envs:
                assert any(
                    text.endswith(FILE_CONTENT_EXTENSION)
                    for text in _file_contents(task.initial_config["filesystem"]["root"])
                )
    assert longest > 10_000  # the long results really are long


def test_tasks_left_out_are_counted_with_their_reasons(
    run: Path, pool: list[Task], instances: list[Instance]
) -> None:
    manifest = json.loads((run / "manifest.json").read_text())["compose"]
    assert manifest["settings"]["long_context_share"] == 1.0
    assert manifest["per_context"] == {"long": COUNT}
    report = manifest["long_context"]
    left_out = [
        Rejection.model_validate_json(line)
        for line in (run / report["left_out_file"]).read_text().splitlines()
    ]
    with_mode = [task for task in pool if any(_has_mode(env) for env in task.envs)]
    assert report["tasks_checked"] == len(pool)
    assert report["tasks_without_mode"] == len(pool) - len(with_mode)
    assert report["tasks_lengthened"] + report["tasks_left_out"] == len(with_mode)
    assert len(left_out) == report["tasks_left_out"] == sum(report["left_out_by_code"].values())
    assert left_out, "the seeds hold tasks whose long-context variant fails"
    by_id = {task.id: task for task in pool}
    used = {task.lineage.parents[0] for i in instances for task in i.tasks}
    for rejection in left_out:
        task = by_id[rejection.sample_id]
        assert task.id not in used
        # the stated reason is the verdict of validating the long-context variant
        config = long_context_config(task)
        assert config is not None
        variant = task.model_copy(update={"initial_config": config, "expected": None})
        verdict = validate_task(variant)
        assert verdict.rejection is not None and verdict.rejection.code == rejection.code
    # upstream's mode adds files to every folder without subfolders, so no folder a task
    # removes is empty any more: every such task is left out, its rmdir failing
    removing = {t.id for t in pool if any(c.tool == "filesystem.rmdir" for c in t.calls)}
    assert removing
    assert removing <= {r.sample_id for r in left_out if r.code.value == "execute.tool_error"}


def test_share_mixes_profiles_and_zero_keeps_the_standard_draw(
    run: Path, pool: list[Task], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "run"
    other.mkdir()
    shutil.copy(run / "evolved.jsonl", other / "evolved.jsonl")
    pool_ids = {task.id for task in pool}

    assert _compose(other, "--long-context-share", "0.5") == 0
    mixed = list(read_records(other / "instances.jsonl", Instance))
    counts = json.loads((other / "manifest.json").read_text())["compose"]["per_context"]
    assert counts["long"] > 0 and counts["standard"] > 0 and sum(counts.values()) == COUNT
    for instance in mixed:
        in_pool = [task.id in pool_ids for task in instance.tasks]
        assert all(in_pool) is (instance.context_profile is ContextProfile.STANDARD)
        assert any(in_pool) is (instance.context_profile is ContextProfile.STANDARD)
    assert (other / "compose" / "long_context_left_out.jsonl").exists()

    assert _compose(other) == 0
    standard = list(read_records(other / "instances.jsonl", Instance))
    assert all(i.context_profile is ContextProfile.STANDARD for i in standard)
    assert all(task.id in pool_ids for i in standard for task in i.tasks)
    assert "long_context" not in json.loads((other / "manifest.json").read_text())["compose"]
    assert not (other / "compose" / "long_context_left_out.jsonl").exists()

    capsys.readouterr()
    with pytest.raises(SystemExit):
        _compose(other, "--long-context-share", "1.5")
    assert "share between 0 and 1" in capsys.readouterr().err


@pytest.mark.slow
def test_the_prefect_flow_composes_the_same_long_instances(
    run: Path, tmp_path: Path, prefect_harness: None
) -> None:
    other = tmp_path / "run"
    other.mkdir()
    shutil.copy(run / "evolved.jsonl", other / "evolved.jsonl")
    assert _compose(other, "--long-context-share", "0.5", "--runner", "threads") == 0
    flow_instances = (other / "instances.jsonl").read_bytes()
    flow_manifest = json.loads((other / "manifest.json").read_text())["compose"]
    flow_left_out = (other / "compose" / "long_context_left_out.jsonl").read_bytes()
    assert _compose(other, "--long-context-share", "0.5") == 0
    assert (other / "instances.jsonl").read_bytes() == flow_instances
    inline_manifest = json.loads((other / "manifest.json").read_text())["compose"]
    for key in ("per_split", "per_context", "long_context"):
        assert flow_manifest[key] == inline_manifest[key]
    assert (other / "compose" / "long_context_left_out.jsonl").read_bytes() == flow_left_out


def test_a_reviewers_reject_removes_the_variants_too(
    run: Path, instances: list[Instance], tmp_path: Path
) -> None:
    """A variant has the rejected task's question and calls: eval and publish drop it too."""
    import datasets

    other = tmp_path / "run"
    other.mkdir()
    for name in ("evolved.jsonl", "instances.jsonl", "manifest.json"):
        shutil.copy(run / name, other / name)
    rejected = instances[0].tasks[0].lineage.parents[0]
    review = Review(
        sample_id=rejected, decision=Decision.REJECT, reviewer="t", at=datetime.now(UTC)
    )
    append_review(other, review)
    holding = {i.id for i in instances if any(made_from(t) == rejected for t in i.tasks)}
    assert holding

    # eval of the run itself (nothing published yet), then publish
    assert main(["eval", "--run-dir", str(other), "--split", "all", "--plots", "0",
                 "--agent", "oracle-async"]) == 0  # fmt: skip
    played = list((other / "eval").glob("*/episodes/*.jsonl"))
    assert len(played) == len(instances) - len(holding)

    assert main(["publish", "--run-dir", str(other)]) == 0
    rows = datasets.load_dataset(str(other / "dataset"), "multi", split="train+test")
    assert {row["id"] for row in rows} == {i.id for i in instances} - holding
    card = (other / "dataset" / "README.md").read_text("utf-8")
    long_rows = sum(1 for row in rows if row["context_profile"] == "long")
    assert f"| long | {long_rows} |" in card, "the card counts instances per context profile"


def test_oracle_solves_long_instances(instances: list[Instance], tmp_path: Path) -> None:
    for mode in (Mode.CLOCK, Mode.ROUNDS):
        scores = asyncio.run(
            run_many(instances, ORACLES["oracle-async"], "oracle-async", mode, tmp_path / mode)
        )
        assert all(score.success for score in scores), [s.labels for s in scores]
        assert all(score.efficiency == pytest.approx(1.0) for score in scores)


def test_eval_finds_each_long_instance_in_its_split(run: Path) -> None:
    # a variant is not in the run's task pool: its split comes from the task it was made from
    per_split = json.loads((run / "manifest.json").read_text())["compose"]["per_split"]
    for split in ("test", "train"):
        shutil.rmtree(run / "eval", ignore_errors=True)
        args = ["eval", "--run-dir", str(run), "--split", split, "--plots", "0"]
        assert main([*args, "--agent", "oracle-async"]) == 0
        assert len(list((run / "eval").glob("*/episodes/*.jsonl"))) == per_split[split]


def test_rows_round_trip_the_profile_and_older_rows_read_as_standard(
    instances: list[Instance],
) -> None:
    row = instance_to_row(instances[0], "train", ["root"])
    assert row["context_profile"] == "long" and row_to_instance(row) == instances[0]
    older = {key: value for key, value in row.items() if key != "context_profile"}
    assert row_to_instance(older).context_profile is ContextProfile.STANDARD


# --- what an agent sees ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def watch_instance(pool: list[Task]) -> Instance:
    """A long instance with a task whose ``get_watchlist`` answers a bare list of symbols."""
    watch = Task(
        id="pending",
        category="trading",
        envs=["trading"],
        question="What is on my watch list? Then show me the current details of NVDA.",
        initial_config={"trading": {"watch_list": ["NVDA", "AAPL"]}},
        calls=[
            Call(id="s1", tool="trading.get_watchlist"),
            Call(id="s2", tool="trading.get_stock_info", arguments={"symbol": "NVDA"}),
        ],
    ).with_content_id()
    validated = validate_task(watch).task
    assert validated is not None
    travel = [t for t in pool if t.category == "travel"]
    settings = ComposeSettings(
        count=1, cross_category_share=1.0, three_task_share=0.0, long_context_share=1.0,
        test_fraction=0.0, profiles={"defaults": 1.0},
    )  # fmt: skip
    for candidate in travel:
        report = compose([validated, candidate], settings)
        if report.instances:
            return report.instances[0]
    raise AssertionError("no travel task of the pool runs long next to the watch-list task")


class LevelPlayer:
    """A scripted model: reply k issues every task's calls at depth k of its dependency graph
    (as JSON in the text), then finishes every task. In ``sync`` mode each reply sees all
    results of the one before."""

    def __init__(self, instance: Instance) -> None:
        self.levels: list[list[dict[str, Any]]] = []
        for task in instance.tasks:
            depth: dict[str, int] = {}
            for call in task.calls:
                depth[call.id] = 1 + max((depth[p] for p in call.depends_on), default=-1)
                while len(self.levels) <= depth[call.id]:
                    self.levels.append([])
                self.levels[depth[call.id]].append(
                    {
                        "tool": call.tool.replace(".", "__", 1),
                        "task_id": task.id,
                        "arguments": dict(call.arguments),
                    }  # fmt: skip
                )
        self.finish = [
            {"tool": "finish_task", "task_id": task.id, "arguments": {"answer": "done"}}
            for task in instance.tasks
        ]

    def __call__(self, body: dict[str, Any]) -> str:
        replies = sum(message["role"] == "assistant" for message in body["messages"])
        calls = self.levels[replies] if replies < len(self.levels) else self.finish
        return "```json\n" + json.dumps({"calls": calls}) + "\n```"


def _play(
    instance: Instance, out: Path, tmp_path: Path, settings: OpenAIAgentSettings | None = None
) -> tuple[bool, list[dict[str, Any]]]:
    """Play the instance through the fake server; the score and the delivered results."""
    server = FakeOpenAIServer(answer=LevelPlayer(instance))
    with server as url:
        config = LLMConfig(
            base_url=url, model="fake-model", cache_path=tmp_path / "llm.sqlite", timeout=5.0
        )

        async def go() -> bool:
            async with LLMClient(config) as client:
                factory = openai_agent_factory(client, settings)
                scores = await run_many([instance], factory, "llm", Mode.SYNC, out)
                return scores[0].success

        success = asyncio.run(go())
        bodies = server.bodies
    messages = bodies[-1]["messages"]
    # the agent names tasks T1, T2, ... in the order its system prompt lists them
    names = re.findall(r"^- task_id (\w+) \(", messages[0]["content"], re.MULTILINE)
    real = dict(zip(names, [task.id for task in instance.tasks]))
    delivered = [
        {**item, "task_id": real[item["task_id"]]}
        for message in messages
        if message["role"] == "user"
        for item in _results(message["content"])
    ]
    return success, delivered


def _results(text: str) -> list[dict[str, Any]]:
    """The result lines the agent wrote (``- c1 (task T) tool {args} returned: JSON``), as
    task, tool and result, with the stated cut when the result was cut."""
    found = []
    for line in text.splitlines():
        match = re.match(r"- (c\d+) \(task ([^)]+)\) (\w+) ", line)
        if match is None:
            continue
        _, end = json.JSONDecoder().raw_decode(line, match.end())
        item: dict[str, Any] = {"task_id": match.group(2), "tool": match.group(3)}
        rest = line[end:]
        if rest.startswith(" returned: "):
            item["result"] = json.loads(rest.removeprefix(" returned: "))
        elif rest.startswith(" returned ("):
            note, _, cut = rest.partition("): ")
            item.update(result=cut, result_truncated=note)
        else:
            continue
        found.append(item)
    return found


def test_agent_sees_long_results_whole(watch_instance: Instance, tmp_path: Path) -> None:
    success, delivered = _play(watch_instance, tmp_path / "whole", tmp_path)
    assert success
    expected = {
        (task.id, call.tool.replace(".", "__", 1)): outcome.result
        for task in watch_instance.tasks
        for call, outcome in zip(task.calls, replay(task).outcomes)
    }
    assert len(delivered) == len(expected)
    for item in delivered:
        assert "result_truncated" not in item
        assert item["result"] == expected[item["task_id"], item["tool"]]
    watch = next(item for item in delivered if item["tool"] == "trading__get_watchlist")
    assert isinstance(watch["result"], list)
    assert set(WATCH_LIST_EXTENSION) <= set(watch["result"])
    assert max(len(json.dumps(item["result"])) for item in delivered) > 10_000


def test_a_result_cap_is_stated_to_the_agent_and_logged(
    watch_instance: Instance, tmp_path: Path
) -> None:
    settings = OpenAIAgentSettings(max_result_chars=2_000)
    _, delivered = _play(watch_instance, tmp_path / "capped", tmp_path, settings)
    cut = [item for item in delivered if "result_truncated" in item]
    assert cut and all(len(item["result"]) == 2_000 for item in cut)
    assert all("only the first 2000 are shown" in item["result_truncated"] for item in cut)
    log = tmp_path / "capped" / "episodes" / f"{watch_instance.id}.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(event["event"] == "result_truncated" for event in events) == len(cut)
