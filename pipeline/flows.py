"""Prefect flows: thin wrappers that sequence the stages' plain functions.

Tasks are coarse — one per shard of samples — because each Prefect task costs several
milliseconds; the work inside a shard is plain Python.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.compose import ComposeSettings
from pipeline.compose_stage import run_compose
from pipeline.evolve.engine import EvolveSettings, claim_inputs, evolve
from pipeline.harness.scoring import EpisodeScore
from pipeline.harness.sim import Mode
from pipeline.jsonl import read_records
from pipeline.llm import LLMConfig
from pipeline.manifest import ComposeSection, EvolveSection, ValidateSection, read_manifest
from pipeline.models import Task
from pipeline.prefect_server import temporary_api
from pipeline.rundir import RunDir
from pipeline.runguard import run_lock
from pipeline.shards import J, S
from pipeline.validate.runner import DEFAULT_SHARD_SIZE, ShardStats, claim_run, run_validation


@contextmanager
def _flow_settings() -> Iterator[None]:
    """What every flow here runs under: a Prefect API that dies with this process
    (:func:`pipeline.prefect_server.temporary_api`), and no per-flow heartbeat (about a second
    per flow run)."""
    with temporary_api(), temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@task(name="shard", retries=2, retry_delay_seconds=[1, 5], cache_policy=NO_CACHE)
def shard_task(process: Callable[[J], S], job: J) -> S:
    """One shard of any sharded stage (:mod:`pipeline.shards`); ``process`` is a module-level
    function or a partial of one, so it travels to Dask workers by reference."""
    return process(job)


def prefect_shards(process: Callable[[J], S], jobs: Sequence[J]) -> list[S]:
    """The Prefect :data:`pipeline.shards.ShardRunner`: one task per job on the flow's task
    runner (threads or Dask), each job's stats in plan order."""
    name = getattr(process, "func", process).__name__.replace("_", "-")
    named = shard_task.with_options(name=name)
    futures = [named.submit(process, job) for job in jobs]
    return [future.result() for future in futures]


@flow(
    name="validate",
    task_runner=ThreadPoolTaskRunner(max_workers=2),  # type: ignore[arg-type]
    validate_parameters=False,
)
def validate_flow(
    input_path: str,
    run_dir: str,
    shard_size: int = DEFAULT_SHARD_SIZE,
    runner: str = "prefect-threads",
) -> ValidateSection:
    """Validate a JSON-lines file of candidates into ``run_dir`` (one task per shard);
    ``runner`` is what the manifest records as having run the shards."""
    return run_validation(Path(input_path), Path(run_dir), shard_size, prefect_shards, runner)


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


def run_validate_flow(
    input_path: Path,
    run_dir: Path,
    shard_size: int = DEFAULT_SHARD_SIZE,
    on_shard: Callable[[ShardStats], None] | None = None,
    runner: Runner | None = None,
) -> ValidateSection:
    """Run :func:`validate_flow` without the per-flow heartbeat that costs about a second."""
    runner = runner or Runner()
    chosen = validate_flow.with_options(task_runner=runner.task_runner())
    with run_lock(run_dir):
        claim_run(input_path, run_dir, shard_size)
        return _run_validate(chosen, input_path, run_dir, shard_size, on_shard, runner)


def _run_validate(
    chosen: Any,
    input_path: Path,
    run_dir: Path,
    shard_size: int,
    on_shard: Callable[[ShardStats], None] | None,
    runner: Runner,
) -> ValidateSection:
    report = None
    if on_shard is not None:

        def report(path: Path) -> None:
            on_shard(ShardStats.from_json(path.read_text(encoding="utf-8")))

    with (
        _flow_settings(),
        _watch(RunDir(run_dir).shards, "*.stats.json", report),
    ):
        section: ValidateSection = chosen(
            str(input_path), str(run_dir), shard_size, f"prefect-{runner.kind}"
        )
    return section


@flow(
    name="evolve",
    task_runner=ThreadPoolTaskRunner(max_workers=2),  # type: ignore[arg-type]
    validate_parameters=False,
)
def evolve_flow(
    seeds_path: str,
    run_dir: str,
    settings: EvolveSettings,
    llm_settings: dict[str, Any] | None = None,
    llm_config_file: str | None = None,
    validated: bool = False,
) -> EvolveSection:
    """Rounds of operators over the pool; one Prefect task per shard of parents.

    The LLM settings arrive without the API key (flow parameters are stored by Prefect); the key
    is read again here from the environment or the config file.
    """
    llm = None
    if llm_settings is not None:
        file = Path(llm_config_file) if llm_config_file else None
        llm = LLMConfig.load(overrides=llm_settings, config_file=file)
    seeds = list(read_records(Path(seeds_path), Task))
    return evolve(seeds, Path(run_dir), settings, llm, prefect_shards, validated=validated)


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
    """:func:`evolve_flow`; ``validated`` as in :func:`pipeline.evolve.engine.evolve`."""
    with run_lock(run_dir):
        # refused here, before a flow run starts, so the operator sees one clear line
        read_manifest(run_dir)
        claim_inputs(RunDir(run_dir).evolve.path, list(read_records(seeds_path, Task)), settings)
        chosen = evolve_flow.with_options(task_runner=(runner or Runner()).task_runner())
        return _run_evolve(
            chosen, seeds_path, run_dir, settings, llm, llm_config_file, on_round, validated
        )


def _run_evolve(
    chosen: Any,
    seeds_path: Path,
    run_dir: Path,
    settings: EvolveSettings,
    llm: LLMConfig | None,
    llm_config_file: Path | None,
    on_round: Callable[[int, int], None] | None,
    validated: bool,
) -> EvolveSection:
    public = llm.public_dict() if llm is not None and llm.configured else None
    file = str(llm_config_file) if llm_config_file else None
    report = None
    if on_round is not None:
        rounds_dir = RunDir(run_dir).evolve.path

        def report(path: Path) -> None:
            number = int(path.parent.name.split("_")[1])
            if number == 0:
                return
            done = sorted(rounds_dir.glob("round_*/accepted.jsonl"))[1 : number + 1]
            on_round(number, sum(part.read_text(encoding="utf-8").count("\n") for part in done))

    with (
        _flow_settings(),
        _watch(RunDir(run_dir).evolve.path, "round_*/accepted.jsonl", report),
    ):
        result: EvolveSection = chosen(
            str(seeds_path), str(run_dir), settings, public, file, validated
        )
    return result


@contextmanager
def _watch(folder: Path, pattern: str, callback: Callable[[Path], None] | None) -> Iterator[None]:
    """Call ``callback`` once for each file matching ``pattern`` that appears while the block
    runs. Progress is read from the files the tasks write, so no callable has to travel with
    the flow's parameters (they must pickle for Dask workers and are stored by Prefect)."""
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


@dataclass(frozen=True)
class EvalOptions:
    """What an episode's score depends on besides agent and mode: shards get it whole, so a
    distributed eval scores and logs exactly as an inline one."""

    turn_cost: float | None = None
    measure_turns: bool = False
    #: read back episodes already logged under the same key instead of playing them again
    resume: bool = True


@task(name="eval-shard", retries=1, retry_delay_seconds=[2])
def eval_shard_task(
    run_dir: str, split: str, start: int, stop: int, agent: str, mode: str, out_dir: str,
    llm_settings: dict[str, Any] | None, options: EvalOptions,
) -> list[EpisodeScore]:  # fmt: skip
    from pipeline.harness.evaluate import load_split, play_episodes

    instances = load_split(Path(run_dir), split)[start:stop]
    llm = LLMConfig.load(overrides=llm_settings) if llm_settings is not None else None
    return play_episodes(
        instances, agent, Mode(mode), Path(out_dir), 8, options.turn_cost,
        options.measure_turns, llm, options.resume, lambda _: None,
    )  # fmt: skip


@flow(
    name="eval",
    task_runner=ThreadPoolTaskRunner(max_workers=2),  # type: ignore[arg-type]
    validate_parameters=False,
)
def eval_flow(
    run_dir: str, split: str, count: int, agent: str, mode: str, out_dir: str,
    shard_size: int = 100, llm_settings: dict[str, Any] | None = None,
    options: EvalOptions | None = None,
) -> list[EpisodeScore]:  # fmt: skip
    """Episodes in shards of instances (by position in the split), one task per shard."""
    futures = [
        eval_shard_task.submit(
            run_dir,
            split,
            start,
            min(start + shard_size, count),
            agent,
            mode,
            out_dir,
            llm_settings,
            options or EvalOptions(),
        )
        for start in range(0, count, shard_size)
    ]
    return [score for future in futures for score in future.result()]


def run_eval_flow(
    run_dir: Path, split: str, count: int, agent: str, mode: str, out_dir: Path,
    runner: Runner, llm: LLMConfig | None = None, options: EvalOptions | None = None,
) -> list[EpisodeScore]:  # fmt: skip
    public = llm.public_dict() if llm is not None and llm.configured else None
    chosen = eval_flow.with_options(task_runner=runner.task_runner())
    with _flow_settings():
        scores: list[EpisodeScore] = chosen(
            str(run_dir), split, count, agent, mode, str(out_dir), 100, public, options
        )
    return scores


@flow(
    name="compose",
    task_runner=ThreadPoolTaskRunner(max_workers=2),  # type: ignore[arg-type]
    validate_parameters=False,
)
def compose_flow(run_dir: str, settings: ComposeSettings) -> ComposeSection:
    """Draw the instance specs here (sequential and cheap), build them in shard tasks (latency
    tables and exact bounds), then join the shards in order into ``instances.jsonl``."""
    return run_compose(Path(run_dir), settings, prefect_shards)


def run_compose_flow(run_dir: Path, settings: ComposeSettings, runner: Runner) -> ComposeSection:
    chosen = compose_flow.with_options(task_runner=runner.task_runner())
    with _flow_settings():
        section: ComposeSection = chosen(str(run_dir), settings)
    return section
