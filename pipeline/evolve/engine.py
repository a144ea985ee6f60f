"""Rounds of evolution over a pool of validated tasks, resumable shard by shard.

Round 0 validates the seeds (or, in a run the validate stage filled, takes what it accepted and
rejected as they are); only accepted seeds become parents. Each later round applies the
chosen operators to the previous round's newly accepted tasks (the frontier), validates every
candidate with the validation chain, optionally sends rejects to the LLM ``repair`` operator
once, and optionally asks the LLM judge about what passed. The run stops after ``rounds`` rounds
or once ``target`` new tasks are accepted.

Layout of ``<run_dir>/evolve/``::

    round_00/ accepted.jsonl rejected.jsonl stats.json      (the seeds, validated)
    round_01/shards/00000.{accepted,rejected}.jsonl 00000.stats.json ...
    round_01/ accepted.jsonl rejected.jsonl stats.json
    ...
and in ``<run_dir>/``: ``evolved.jsonl`` (every accepted task, seeds included),
``evolve_rejected.jsonl``, ``rejected_tasks.jsonl`` (the candidate task of every rejection that
had one, ``Task.id == Rejection.sample_id``, for reviewers) and the ``evolve`` section of
``manifest.json``. A shard or
round with its stats file is done; a rerun after a crash skips it, and the LLM cache answers
any request already made.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path

from pipeline.evolve.candidate import Candidate
from pipeline.evolve.extend import extend
from pipeline.evolve.judge import load_trust, merge_stats
from pipeline.evolve.novelty import NoveltyCheck
from pipeline.evolve.rename import rename
from pipeline.evolve.verbalise import Verbaliser, shared_verbaliser, verbalise
from pipeline.jsonl import read_records, write_atomic, write_parts
from pipeline.llm import LLMClient, LLMConfig, UsageLedger, endpoint_capabilities
from pipeline.manifest import (
    EvolveCounts,
    EvolveSection,
    JudgeSummary,
    OperatorRecord,
    read_manifest,
    record_section,
)
from pipeline.models import Rejection, RejectionCode, Stage, Task, content_hash
from pipeline.rundir import RunDir, StageDir
from pipeline.runguard import claim, run_lock
from pipeline.shards import ShardRunner, ShardSlot, merge_in_order, process_once, run_inline
from pipeline.validate.chain import validate_task


class Operator(StrEnum):
    EXTEND = "extend"
    RENAME = "rename"
    VERBALISE = "verbalise"
    DEEPEN = "deepen"
    BROADEN = "broaden"
    PARAPHRASE = "paraphrase"

    @property
    def needs_llm(self) -> bool:
        return self in (Operator.DEEPEN, Operator.BROADEN, Operator.PARAPHRASE)


PROGRAMMATIC = [Operator.RENAME, Operator.EXTEND, Operator.VERBALISE]


@dataclass
class EvolveSettings:
    rounds: int = 3
    target: int = 1000
    operators: list[Operator] = field(default_factory=lambda: list(PROGRAMMATIC))
    seed: int = 0
    shard_size: int = 50
    variants: int = 2  # candidates per parent and programmatic operator
    repair: bool = True
    judge: bool = False
    #: deepen and broaden choose among checked next steps where there are some
    #: (``pipeline/evolve/options.py``); off, the model writes its own new calls
    offer_steps: bool = True
    #: the judge's calibration (None: prompts/judge_calibration.json); only the labels it
    #: trusts for the run's model reject
    judge_calibration: str | None = None


@dataclass
class OperatorStats:
    generated: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0  # the operator found nothing to do for a parent


@dataclass
class ShardStats:
    index: int
    operators: dict[str, OperatorStats] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    judge: dict[str, object] = field(default_factory=dict)  # judge.JudgeStats.as_dict()
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShardStats:
        data = json.loads(text)
        data["operators"] = {k: OperatorStats(**v) for k, v in data["operators"].items()}
        return cls(**data)


@dataclass(frozen=True)
class ShardJob:
    round_no: int
    index: int
    parents_file: str
    start: int
    stop: int
    folder: str


def _programmatic(
    operator: Operator, parent: Task, rng: random.Random, verbaliser: Verbaliser
) -> Task | None:
    if operator is Operator.RENAME:
        return rename(parent, rng)
    if operator is Operator.EXTEND:
        return extend(parent, rng, verbaliser)
    if operator is Operator.VERBALISE:
        return verbalise(parent, verbaliser)
    raise ValueError(f"{operator} is not a programmatic operator")


async def _llm_candidates(
    parents: Sequence[Task],
    operators: Sequence[Operator],
    client: LLMClient,
    offer_steps: bool = True,
) -> list[Candidate]:
    from pipeline.evolve.llm_ops import evolve_with_llm, paraphrase

    jobs = []
    for parent in parents:
        for operator in operators:
            if operator is Operator.PARAPHRASE:
                jobs.append(paraphrase(parent, client))
            else:
                jobs.append(evolve_with_llm(operator.value, parent, client, offer_steps))
    return list(await asyncio.gather(*jobs))


def _with_round(task: Task, round_no: int) -> Task:
    lineage = task.lineage.model_copy(update={"round": round_no})
    return task.model_copy(update={"lineage": lineage})


def run_shard(job: ShardJob, settings: EvolveSettings, llm: LLMConfig | None) -> ShardStats:
    """Apply the operators to one shard of parents, validate, repair, judge; write outputs (a
    finished shard is not redone)."""
    slot = ShardSlot(Path(job.folder), job.index)
    return process_once(slot, ShardStats.from_json, lambda: _grow(job, settings, llm))


def _grow(
    job: ShardJob, settings: EvolveSettings, llm: LLMConfig | None
) -> tuple[dict[str, str], ShardStats]:
    started = time.perf_counter()
    parents = list(read_records(Path(job.parents_file), Task))[job.start : job.stop]
    rng = random.Random(f"{settings.seed}:{job.round_no}:{job.index}")
    verbaliser = shared_verbaliser()
    stats = ShardStats(job.index)
    candidates: list[Candidate] = []
    for parent in parents:
        for operator in settings.operators:
            if operator.needs_llm:
                continue
            repeats = 1 if operator is Operator.VERBALISE else settings.variants
            for _ in range(repeats):
                made = _programmatic(operator, parent, rng, verbaliser)
                if made is None:
                    stats.operators.setdefault(operator.value, OperatorStats()).skipped += 1
                else:
                    candidates.append(Candidate(operator.value, parent.id, task=made))
    ledger = UsageLedger()
    llm_ops = [op for op in settings.operators if op.needs_llm]
    accepted, rejected = asyncio.run(
        _validate_all(candidates, parents, llm_ops, settings, llm, ledger, stats.judge)
    )
    for candidate, outcome in accepted + rejected:
        record = stats.operators.setdefault(candidate.operator, OperatorStats())
        record.generated += 1
        if isinstance(outcome, Task):
            record.accepted += 1
        else:
            record.rejected += 1
            stats.codes[outcome.code.value] = stats.codes.get(outcome.code.value, 0) + 1
    stats.usage = ledger.as_dict()
    stats.seconds = round(time.perf_counter() - started, 3)
    good = [_with_round(t, job.round_no) for _, t in accepted if isinstance(t, Task)]
    bad = [r for _, r in rejected if isinstance(r, Rejection)]
    # the audit app shows a rejected sample's question, state and calls from its candidate
    bad_tasks = [
        c.task
        for c, r in rejected
        if c.task is not None and isinstance(r, Rejection) and c.task.id == r.sample_id
    ]
    outputs = {
        "accepted": _jsonl(good),
        "rejected": _jsonl(bad),
        "rejected_tasks": _jsonl(_unique(bad_tasks)),
    }
    return outputs, stats


Outcome = tuple[Candidate, Task | Rejection]


async def _validate_all(
    candidates: list[Candidate],
    parents: Sequence[Task],
    llm_ops: Sequence[Operator],
    settings: EvolveSettings,
    llm: LLMConfig | None,
    ledger: UsageLedger,
    judged: dict[str, object],
) -> tuple[list[Outcome], list[Outcome]]:
    client = LLMClient(llm, ledger) if llm is not None and llm.configured else None
    try:
        if client is not None and llm_ops:
            candidates = candidates + await _llm_candidates(
                parents, llm_ops, client, settings.offer_steps
            )
        accepted: list[Outcome] = []
        rejected: list[Outcome] = []
        to_repair: list[tuple[Candidate, Task, Rejection]] = []
        novelty = NoveltyCheck(parents)  # what an LLM candidate must add to its parent
        for candidate in candidates:
            outcome = _check(candidate, novelty, candidate)
            if (
                isinstance(outcome, Rejection)
                and outcome.stage is not Stage.EVOLVE  # valid, but adds nothing: no repair
                and candidate.task is not None
                and client
                and settings.repair
            ):
                to_repair.append((candidate, candidate.task, outcome))
            (accepted if isinstance(outcome, Task) else rejected).append((candidate, outcome))
        if to_repair and client is not None:
            from pipeline.evolve.llm_ops import repair

            repaired = await asyncio.gather(*(repair(t, r, client) for _, t, r in to_repair))
            for (original, _, _), fixed in zip(to_repair, repaired):
                # a repair is held to what its original operator had to add
                outcome = _check(fixed, novelty, original)
                (accepted if isinstance(outcome, Task) else rejected).append((fixed, outcome))
        if settings.judge and client is not None:
            accepted, rejected = await _judge(accepted, rejected, client, settings, judged)
        return accepted, rejected
    finally:
        if client is not None:
            await client.aclose()


def _check(candidate: Candidate, novelty: NoveltyCheck, origin: Candidate) -> Task | Rejection:
    """Validate ``candidate``; a valid one is then held to what ``origin``'s operator must add
    to its parent (``origin`` is the candidate itself, or the one a repair started from)."""
    if candidate.rejection is not None:  # the operator rejected it itself
        return candidate.rejection
    assert candidate.task is not None
    verdict = validate_task(candidate.task, raw=candidate.raw)
    if verdict.task is not None:
        admitted = novelty.admit(origin.operator, origin.parent_id, verdict.task)
        if isinstance(admitted, Rejection) and candidate.raw is not None:
            admitted = admitted.model_copy(update={"raw": candidate.raw})
        return admitted
    assert verdict.rejection is not None
    return verdict.rejection


async def _judge(
    accepted: list[Outcome],
    rejected: list[Outcome],
    client: LLMClient,
    settings: EvolveSettings,
    record: dict[str, object],
) -> tuple[list[Outcome], list[Outcome]]:
    """Ask the judge about what passed; ``record`` gets what it did (judged, not judged,
    rejected, "no" answers on labels it is not trusted on)."""
    from pipeline.evolve.judge import judge_outcomes, load_trust

    calibration = settings.judge_calibration
    trust = load_trust(None if calibration is None else Path(calibration), client.model)
    kept, rejected, stats = await judge_outcomes(accepted, rejected, client, trust)
    record.update(stats.as_dict())
    return kept, rejected


def _judge_record(
    settings: EvolveSettings, llm: LLMConfig | None, shards: list[dict[str, object]]
) -> JudgeSummary | None:
    """The manifest's ``judge`` entry: the labels trusted to reject and what the judge did
    (tasks judged, not judged, rejected, "no" answers on untrusted labels)."""
    if not settings.judge or llm is None or not llm.configured or llm.model is None:
        return None
    calibration = settings.judge_calibration
    trust = load_trust(None if calibration is None else Path(calibration), llm.model)
    return JudgeSummary.model_validate({**trust.as_dict(), **merge_stats(shards)})


def _unique(tasks: Sequence[Task]) -> list[Task]:
    seen: set[str] = set()
    out = []
    for task in tasks:
        if task.id not in seen:
            seen.add(task.id)
            out.append(task)
    return out


def _jsonl(records: Sequence[Task | Rejection]) -> str:
    return "".join(record.model_dump_json() + "\n" for record in records)


def claim_inputs(base: Path, seeds: Sequence[Task], settings: EvolveSettings) -> None:
    """Record what this run evolves from, or refuse to resume from other seeds or settings."""
    inputs = {
        "seeds": content_hash([seed.id for seed in seeds]),
        "settings": {**asdict(settings), "operators": [op.value for op in settings.operators]},
    }
    claim(StageDir(base).inputs, inputs, "evolved")


def _validate_seeds(seeds: Sequence[Task], folder: Path) -> tuple[int, int]:
    if StageDir(folder).stats.exists():
        stats = json.loads(StageDir(folder).stats.read_text())
        return int(stats["accepted"]), int(stats["rejected"])
    good: list[Task] = []
    bad: list[Rejection] = []
    bad_tasks: list[Task] = []
    seen: set[str] = set()
    for seed in seeds:
        if seed.id in seen:  # later stages key tasks by id: keep the first, count the rest
            bad.append(_repeated_seed(seed))
            continue
        seen.add(seed.id)
        verdict = validate_task(seed)
        if verdict.task is not None:
            good.append(verdict.task)
        elif verdict.rejection is not None:
            bad.append(verdict.rejection)
            bad_tasks.append(seed)
    stage = StageDir(folder)
    write_atomic(stage.accepted, _jsonl(good))
    write_atomic(stage.rejected, _jsonl(bad))
    write_atomic(stage.rejected_tasks, _jsonl(_unique(bad_tasks)))
    write_atomic(stage.stats, json.dumps({"accepted": len(good), "rejected": len(bad)}))
    return len(good), len(bad)


def _import_validation(run: RunDir, folder: Path) -> tuple[int, int]:
    """Round 0 from the run's validate stage: what it accepted are the parents, what it rejected
    is carried into the run's rejections; nothing is validated twice."""
    stage = StageDir(folder)
    if not stage.stats.exists():
        accepted = run.accepted.read_text(encoding="utf-8")
        rejected = run.rejected.read_text(encoding="utf-8")
        write_atomic(stage.accepted, accepted)
        write_atomic(stage.rejected, rejected)
        write_atomic(stage.rejected_tasks, "")
        counts = {"accepted": accepted.count("\n"), "rejected": rejected.count("\n")}
        write_atomic(stage.stats, json.dumps({**counts, "from": "validate"}))
    stats = json.loads(stage.stats.read_text(encoding="utf-8"))
    return int(stats["accepted"]), int(stats["rejected"])


def validated_seeds(run_dir: Path) -> list[Task] | None:
    """What the run's validate stage accepted, or None when validation has not finished in it
    (its manifest section is written last)."""
    manifest = read_manifest(run_dir)
    if manifest is None or manifest.validation is None:
        return None
    return list(read_records(RunDir(run_dir).accepted, Task))


def _codes_in(path: Path) -> Counter[str]:
    """Rejection codes of a rejected.jsonl (the seeds' own, which no shard stats carry)."""
    with path.open(encoding="utf-8", newline="\n") as handle:
        return Counter(json.loads(line)["code"] for line in handle if line.strip())


def _repeated_seed(seed: Task) -> Rejection:
    return Rejection(
        sample_id=seed.id,
        stage=RejectionCode.PARSE_DUPLICATE_ID.stage,
        code=RejectionCode.PARSE_DUPLICATE_ID,
        message=f"an earlier seed has the task id {seed.id!r}; the first is kept",
    )


def _dedupe(paths: Sequence[Path]) -> tuple[list[str], int]:
    seen: set[str] = set()
    lines: list[str] = []
    duplicates = 0
    for path in paths:
        # split on "\n" only: splitlines() also breaks at U+2028 or U+0085 inside a JSON string
        for line in path.read_text(encoding="utf-8").split("\n"):
            if not line:
                continue
            task_id = json.loads(line)["id"]
            if task_id in seen:
                duplicates += 1
                continue
            seen.add(task_id)
            lines.append(line)
    return lines, duplicates


@dataclass
class _Totals:
    """The shards' stats summed over every round, for the manifest."""

    codes: Counter[str]
    operators: dict[str, OperatorStats] = field(default_factory=dict)
    usage: dict[str, Counter[str]] = field(default_factory=dict)
    judged: list[dict[str, object]] = field(default_factory=list)  # each shard's judge record

    def add(self, stats: ShardStats) -> None:
        for name, record in stats.operators.items():
            total = self.operators.setdefault(name, OperatorStats())
            for key, value in asdict(record).items():
                setattr(total, key, getattr(total, key) + value)
        self.codes.update(stats.codes)
        for stage, counters in stats.usage.items():
            self.usage.setdefault(stage, Counter()).update(counters)
        self.judged.append(stats.judge)


def _plan_round(round_no: int, frontier: Path, folder: StageDir, size: int) -> list[ShardJob]:
    """The round's jobs: the previous round's new tasks (the frontier), ``size`` per shard."""
    parents = frontier.read_text(encoding="utf-8").count("\n")
    return [
        ShardJob(
            round_no, index, str(frontier), start, min(start + size, parents), str(folder.shards)
        )
        for index, start in enumerate(range(0, parents, size))
    ]


def _merge_round(
    folder: StageDir, jobs: Sequence[ShardJob], earlier: Sequence[Path]
) -> tuple[int, int]:
    """Join the round's shards in order; a task already accepted (in this round or in the
    ``earlier`` files) is kept once. Returns (new tasks, accepted candidates merged away)."""
    slots = [ShardSlot(folder.shards, job.index) for job in jobs]
    lines, repeated = _dedupe([slot.output("accepted") for slot in slots])
    known, _ = _dedupe(earlier)
    known_ids = {json.loads(line)["id"] for line in known}
    fresh = [line for line in lines if json.loads(line)["id"] not in known_ids]
    write_atomic(folder.accepted, "".join(line + "\n" for line in fresh))
    merge_in_order(slots, "rejected", folder.rejected)
    merge_in_order(slots, "rejected_tasks", folder.rejected_tasks)
    return len(fresh), repeated + len(lines) - len(fresh)


def evolve(
    seeds: Sequence[Task],
    run_dir: Path,
    settings: EvolveSettings,
    llm: LLMConfig | None = None,
    runner: ShardRunner[ShardJob, ShardStats] = run_inline,
    on_round: Callable[[int, int], None] | None = None,
    validated: bool = False,
) -> EvolveSection:
    """Run the rounds; returns the section recorded in the run's manifest. ``validated``: the
    seeds are what the run's validate stage accepted (:func:`validated_seeds`), so round 0
    takes its accepted and rejected files instead of validating them again."""
    with run_lock(run_dir):
        return _evolve(seeds, run_dir, settings, llm, runner, on_round, validated)


def _evolve(
    seeds: Sequence[Task],
    run_dir: Path,
    settings: EvolveSettings,
    llm: LLMConfig | None,
    runner: ShardRunner[ShardJob, ShardStats],
    on_round: Callable[[int, int], None] | None,
    validated: bool,
) -> EvolveSection:
    started = time.perf_counter()
    run = RunDir(run_dir)
    base = run.evolve.path
    read_manifest(run_dir)  # an unreadable manifest is refused now, not after the work
    claim_inputs(base, seeds, settings)
    if validated:
        seeds_ok, seeds_bad = _import_validation(run, run.round(0).path)
    else:
        seeds_ok, seeds_bad = _validate_seeds(seeds, run.round(0).path)
    accepted_files = [run.round(0).accepted]
    rejected_files = [run.round(0).rejected]
    rejected_task_files = [run.round(0).rejected_tasks]
    frontier = run.round(0).accepted
    totals = _Totals(codes=Counter(_codes_in(run.round(0).rejected)))
    process = partial(run_shard, settings=settings, llm=llm)
    new_total = 0
    rounds_done = 0
    merged = 0
    for round_no in range(1, settings.rounds + 1):
        if new_total >= settings.target:
            break
        round_dir = run.round(round_no)
        jobs = _plan_round(round_no, frontier, round_dir, settings.shard_size)
        if not jobs:
            break
        for stats in runner(process, jobs):
            totals.add(stats)
        fresh, repeats = _merge_round(round_dir, jobs, accepted_files)
        merged += repeats
        accepted_files.append(round_dir.accepted)
        rejected_files.append(round_dir.rejected)
        rejected_task_files.append(round_dir.rejected_tasks)
        frontier = round_dir.accepted
        new_total += fresh
        rounds_done = round_no
        if on_round is not None:
            on_round(round_no, new_total)
    evolved, _ = _dedupe(accepted_files)
    write_atomic(run.evolved, "".join(line + "\n" for line in evolved))
    write_parts(rejected_files, run.evolve_rejected)
    rejected_tasks, _ = _dedupe(rejected_task_files)
    write_atomic(run.rejected_tasks, "".join(line + "\n" for line in rejected_tasks))
    rejected_total = sum(1 for p in rejected_files for _ in p.open(encoding="utf-8"))
    section = EvolveSection(
        settings={**asdict(settings), "operators": [op.value for op in settings.operators]},
        llm=llm.public_dict() if llm is not None and llm.configured else None,
        # the working output mode, token-cap name and tool support the client learned
        llm_endpoint=endpoint_capabilities(llm) if llm is not None else None,
        counts=EvolveCounts(
            seeds=seeds_ok + seeds_bad,  # every candidate ends accepted or rejected
            seeds_accepted=seeds_ok,
            seeds_rejected=seeds_bad,
            rounds=rounds_done,
            new_accepted=new_total,
            evolved=len(evolved),
            rejected=rejected_total,
            duplicates_merged=merged,
            rejected_by_code=dict(totals.codes.most_common()),
        ),
        operators={
            name: OperatorRecord(
                **asdict(record),
                acceptance_rate=round(record.accepted / record.generated, 3)
                if record.generated
                else None,
            )
            for name, record in sorted(totals.operators.items())
        },
        token_usage={stage: dict(counter) for stage, counter in sorted(totals.usage.items())},
        judge=_judge_record(settings, llm, totals.judged),
        seconds=round(time.perf_counter() - started, 3),
    )
    record_section(run_dir, section)
    return section
