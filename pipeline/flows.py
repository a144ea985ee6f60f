"""Prefect: one flow for every sharded stage (:mod:`pipeline.shards`).

A stage is a function of where its shards run (a :data:`pipeline.shards.ShardRunner`): it plans
its jobs, hands them to the runner, merges the shards in order and records its manifest
section. :func:`stage_flow` runs such a function with the Prefect runner, one task per shard
on threads or a Dask cluster; the ``run_*_flow`` entry points only say which stage, under
which lock and with which progress report. Tasks are coarse, one per shard, because each
Prefect task costs several milliseconds; the work inside a shard is plain Python.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.compose import ComposeSettings
from pipeline.compose_stage import run_compose
from pipeline.evolve.engine import EvolveSettings, claim_inputs, evolve
from pipeline.harness.evaluate import EvalOptions as EvalOptions  # the CLI imports it from here
from pipeline.harness.evaluate import EvalSetup, SplitInstances, play_sharded
from pipeline.harness.scoring import EpisodeScore
from pipeline.harness.sim import Mode
from pipeline.jsonl import read_records
from pipeline.llm import LLMConfig
from pipeline.manifest import ComposeSection, EvolveSection, ValidateSection, read_manifest
from pipeline.models import Task
from pipeline.prefect_server import temporary_api
from pipeline.rundir import RunDir
from pipeline.runguard import run_lock
from pipeline.shards import J, S, ShardRunner
from pipeline.validate.runner import DEFAULT_SHARD_SIZE, ShardStats, claim_run, run_validation

R = TypeVar("R")

#: a sharded stage, given where its shards run: plan -> process -> merge -> record
Stage = Callable[[ShardRunner[Any, Any]], R]


@task(name="shard", retries=2, retry_delay_seconds=[1, 5], cache_policy=NO_CACHE)
def shard_task(process: Callable[[J], S], job: J) -> S:
    """One shard of any sharded stage; ``process`` is a module-level function or a partial of
    one, so it travels to Dask workers by reference."""
    return process(job)


def prefect_shards(process: Callable[[J], S], jobs: Sequence[J]) -> list[S]:
    """The Prefect :data:`pipeline.shards.ShardRunner`: one task per job on the flow's task
    runner (threads or Dask), each job's stats in plan order."""
    name = getattr(process, "func", process).__name__.replace("_", "-")
    named = shard_task.with_options(name=name)
    futures = [named.submit(process, job) for job in jobs]
    return [future.result() for future in futures]


@flow(
    name="stage",
    task_runner=ThreadPoolTaskRunner(max_workers=2),  # type: ignore[arg-type]
    validate_parameters=False,
)
def stage_flow(stage: Stage[R], about: Mapping[str, Any]) -> R:
    """Run ``stage`` here with its shards as Prefect tasks.

    Prefect stores a flow's parameters as JSON: ``about`` (paths, settings) is what its UI
    shows of the run, while ``stage`` is a partial, which Prefect's encoder stores as ``{}``,
    so an LLM key it holds is never written to Prefect's database (a test checks this).
    """
    return stage(prefect_shards)


@dataclass(frozen=True)
class Runner:
    """Where a flow's shard tasks run: ``workers`` threads here, or a Dask cluster.

    ``dask`` with an ``address`` (``tcp://host:8786``) uses that cluster; without one a
    ``LocalCluster`` of ``workers`` single-threaded processes is started on 127.0.0.1 for the
    flow. Shards travel as small descriptions (a file path and byte range, a job record) and
    results as files plus small stats, so nothing large crosses the wire.
    """

    kind: str = "threads"
    address: str | None = None
    workers: int = 2

    def task_runner(self) -> Any:
        if self.kind == "threads":
            return ThreadPoolTaskRunner(max_workers=self.workers)
        if self.kind != "dask":
            raise ValueError(f"unknown runner {self.kind!r}; use threads or dask")
        from prefect_dask.task_runners import DaskTaskRunner

        if self.address:
            return DaskTaskRunner(address=self.address)
        cluster = {
            "n_workers": self.workers,
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
        }
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=cluster)


def run_stage(
    name: str,
    stage: Stage[R],
    about: Mapping[str, Any],
    runner: Runner | None = None,
    progress: AbstractContextManager[None] | None = None,
) -> R:
    """:func:`stage_flow` as flow ``name`` on ``runner``, under a Prefect API that dies with
    this process (:func:`pipeline.prefect_server.temporary_api`) and without the per-flow
    heartbeat (about a second per flow run); ``progress`` is entered around it."""
    chosen = stage_flow.with_options(name=name, task_runner=(runner or Runner()).task_runner())
    with (
        temporary_api(),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
        progress or nullcontext(),
    ):
        result: R = chosen(stage, dict(about))
    return result


def run_validate_flow(
    input_path: Path,
    run_dir: Path,
    shard_size: int = DEFAULT_SHARD_SIZE,
    on_shard: Callable[[ShardStats], None] | None = None,
    runner: Runner | None = None,
) -> ValidateSection:
    """Validate a JSON-lines file of candidates into ``run_dir``, one task per shard."""
    runner = runner or Runner()
    with run_lock(run_dir):
        claim_run(input_path, run_dir, shard_size)
        name = f"prefect-{runner.kind}"  # what the manifest records as having run the shards
        stage = partial(run_validation, input_path, run_dir, shard_size, runner_name=name)
        report = None if on_shard is None else _read_stats(on_shard)
        about = dict(input_path=input_path, run_dir=run_dir, shard_size=shard_size)
        watch = _watch(RunDir(run_dir).shards, "*.stats.json", report)
        return run_stage("validate", stage, about, runner, watch)


def _read_stats(on_shard: Callable[[ShardStats], None]) -> Callable[[Path], None]:
    return lambda path: on_shard(ShardStats.from_json(path.read_text(encoding="utf-8")))


def run_evolve_flow(
    seeds_path: Path,
    run_dir: Path,
    settings: EvolveSettings,
    llm: LLMConfig | None = None,
    llm_config_file: Path | None = None,
    on_round: Callable[[int, int], None] | None = None,
    runner: Runner | None = None,
    validated: bool = False,
) -> EvolveSection:
    """Rounds of operators over the pool, one task per shard of parents; ``validated`` as in
    :func:`pipeline.evolve.engine.evolve`. ``llm_config_file`` is only shown in the UI: the
    key is in ``llm`` already."""
    with run_lock(run_dir):
        # refused here, before a flow run starts, so the operator sees one clear line
        read_manifest(run_dir)
        seeds = list(read_records(seeds_path, Task))
        claim_inputs(RunDir(run_dir).evolve.path, seeds, settings)
        configured = llm if llm is not None and llm.configured else None
        stage = partial(evolve, seeds, run_dir, settings, configured, validated=validated)
        public = configured.public_dict() if configured is not None else None
        about = dict(seeds_path=seeds_path, run_dir=run_dir, settings=settings, llm=public,
                     llm_config_file=llm_config_file, validated=validated)  # fmt: skip
        report = None if on_round is None else _round_report(run_dir, on_round)
        watch = _watch(RunDir(run_dir).evolve.path, "round_*/accepted.jsonl", report)
        return run_stage("evolve", stage, about, runner, watch)


def _round_report(run_dir: Path, on_round: Callable[[int, int], None]) -> Callable[[Path], None]:
    """``on_round(round, new tasks so far)`` from the rounds' merged files as they appear."""
    rounds_dir = RunDir(run_dir).evolve.path

    def report(path: Path) -> None:
        number = int(path.parent.name.split("_")[1])
        if number == 0:
            return
        done = sorted(rounds_dir.glob("round_*/accepted.jsonl"))[1 : number + 1]
        on_round(number, sum(part.read_text(encoding="utf-8").count("\n") for part in done))

    return report


@contextmanager
def _watch(folder: Path, pattern: str, callback: Callable[[Path], None] | None) -> Iterator[None]:
    """Call ``callback`` once for each file matching ``pattern`` that appears while the block
    runs. Progress is read from the files the tasks write, so no callable has to travel to the
    shards (they must pickle for Dask workers)."""
    if callback is None:
        yield
        return
    seen: set[Path] = set(folder.glob(pattern))

    def poll() -> None:
        for path in sorted(folder.glob(pattern)):
            if path not in seen:
                seen.add(path)
                callback(path)

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.2):
            poll()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        poll()


def run_eval_flow(
    run_dir: Path, split: str, count: int, agent: str, mode: str, out_dir: Path,
    runner: Runner, llm: LLMConfig | None = None, options: EvalOptions | None = None,
) -> list[EpisodeScore]:  # fmt: skip
    """Episodes of the first ``count`` instances of ``split``, one task per shard of them."""
    setup = EvalSetup(agent, Mode(mode), out_dir, options or EvalOptions(), llm)
    stage = partial(play_sharded, SplitInstances(run_dir, split), count, setup)
    about = dict(run_dir=run_dir, split=split, count=count, agent=agent, mode=mode,
                 out_dir=out_dir, options=setup.options)  # fmt: skip
    return run_stage("eval", stage, about, runner)


def run_compose_flow(run_dir: Path, settings: ComposeSettings, runner: Runner) -> ComposeSection:
    """Draw the instance specs in the flow, build them in shard tasks, join them in order."""
    stage = partial(run_compose, run_dir, settings)
    return run_stage("compose", stage, dict(run_dir=run_dir, settings=settings), runner)
