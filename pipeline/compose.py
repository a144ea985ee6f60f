"""Composition: multi-task instances of 2–3 validated tasks, with latency tables and bounds.

Each instance draws, from one split (``pipeline.splits``), tasks of distinct seed ancestors —
so their questions are different tasks, not rewordings of one — either all of one category
(``same_category``) or all of different categories (``cross_category``). Every task keeps its
own ``initial_config``: the harness builds separate environments per task, so no two tasks
share state even when they use the same tools. The latency table covers every tool the
instance's tasks call and is drawn from a named profile with the instance's seed; the bounds
follow the scheduling model of ``pipeline.schedule``.

A share of the instances (``long_context_share``) has the ``long`` context profile: each of its
tasks runs with the long-context mode of every environment that has one
(``pipeline.long_context_variants``). Such an instance draws, by the same rules, from the tasks
that have such an environment and whose long-context variant passes validation again; the others
are left out of long instances and reported with their reasons.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pipeline.envs import resolve_tool
from pipeline.long_context_variants import LongContextVariants, VariantCache, long_context_variant
from pipeline.models import Composition, ContextProfile, Instance, Task, content_hash
from pipeline.schedule import bounds_for
from pipeline.splits import DEFAULT_TEST_FRACTION, Split, root_ancestors, split_of

DEFAULT_TURN_COST = 1.0


class LatencyProfile(StrEnum):
    DEFAULTS = "defaults"  # each tool's documented default
    UNIFORM = "uniform"  # default x U(0.5, 1.5)
    LOGNORMAL = "lognormal"  # default x exp(N(0, 0.5)): a long tail of slow answers
    PAPER_ROUNDS = "paper-rounds"  # every call takes one turn, the paper's fixed delay


def latency_table(
    tools: Sequence[str], profile: LatencyProfile, rng: random.Random, turn_cost: float
) -> dict[str, float]:
    table: dict[str, float] = {}
    for tool in sorted(set(tools)):
        _, spec = resolve_tool(tool)
        if profile is LatencyProfile.DEFAULTS:
            seconds = spec.latency
        elif profile is LatencyProfile.UNIFORM:
            seconds = spec.latency * rng.uniform(0.5, 1.5)
        elif profile is LatencyProfile.LOGNORMAL:
            seconds = spec.latency * math.exp(rng.gauss(0.0, 0.5))
        else:
            seconds = turn_cost
        table[tool] = round(seconds, 3)
    return table


@dataclass
class ComposeSettings:
    count: int = 1200
    seed: int = 0
    three_task_share: float = 0.5
    cross_category_share: float = 0.5
    profiles: dict[str, float] = field(
        default_factory=lambda: {"uniform": 0.4, "lognormal": 0.4, "paper-rounds": 0.2}
    )
    turn_cost: float = DEFAULT_TURN_COST
    test_fraction: float = DEFAULT_TEST_FRACTION
    #: share of instances with the ``long`` context profile (0: none, 1: all)
    long_context_share: float = 0.0

    def __post_init__(self) -> None:
        for name in self.profiles:
            LatencyProfile(name)  # a clear ValueError for an unknown profile
        shares = (
            self.three_task_share,
            self.cross_category_share,
            self.test_fraction,
            self.long_context_share,
        )
        for share in shares:
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"shares must be between 0 and 1, got {share}")


@dataclass
class ComposeReport:
    instances: list[Instance]
    attempts: int
    per_split: dict[str, int]
    per_context: dict[str, int] = field(default_factory=dict)
    long_context: dict[str, Any] = field(default_factory=dict)


def _pools(
    tasks: Sequence[Task], roots: Mapping[str, str], test_fraction: float
) -> dict[Split, dict[str, list[tuple[str, Task]]]]:
    """Split -> category -> [(root, task)]."""
    pools: dict[Split, dict[str, list[tuple[str, Task]]]] = {s: defaultdict(list) for s in Split}
    for task in tasks:
        root = roots[task.id]
        pools[split_of(root, test_fraction)][task.category].append((root, task))
    return pools


def _pick(
    rng: random.Random, pool: Mapping[str, list[tuple[str, Task]]], size: int, cross: bool
) -> list[Task] | None:
    if cross:
        categories = [c for c, members in pool.items() if members]
        if len(categories) < size:
            return None
        chosen = [rng.choice(pool[c]) for c in rng.sample(sorted(categories), size)]
    else:
        categories = [c for c, members in pool.items() if len({r for r, _ in members}) >= size]
        if not categories:
            return None
        members = pool[rng.choice(sorted(categories))]
        chosen = rng.sample(members, size)
    if len({root for root, _ in chosen}) < size:
        return None  # two descendants of one seed are not two different tasks
    picked = [task for _, task in chosen]
    if len({task.question.strip().lower() for task in picked}) < size:
        return None
    return picked


def compose(tasks: Sequence[Task], settings: ComposeSettings) -> ComposeReport:
    """Draw ``settings.count`` distinct instances (fewer only if the pool runs out)."""
    tally = ComposeTally()
    instances = list(iter_instances(tasks, settings, tally))
    return ComposeReport(
        instances,
        tally.attempts,
        dict(tally.per_split),
        dict(tally.per_context),
        tally.long_context.report(),
    )


@dataclass
class ComposeTally:
    attempts: int = 0
    per_split: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    per_context: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: the long-context check of every task (when some instances are long)
    long_context: LongContextVariants = field(default_factory=LongContextVariants)

    def summary(self) -> dict[str, Any]:
        """Plain JSON for the run's manifest; ``long_context_left_out`` lists the rejections."""
        return {
            "attempts": self.attempts,
            "per_split": dict(self.per_split),
            "per_context": dict(self.per_context),
            "long_context": self.long_context.report(),
            "long_context_left_out": [
                rejection.model_dump(mode="json") for rejection in self.long_context.rejections
            ],
        }


@dataclass(frozen=True)
class InstanceSpec:
    """Everything drawn for an instance except the work: latency table and bounds."""

    id: str
    task_ids: tuple[str, ...]
    cross: bool
    profile: str
    seed: int
    split: str
    context: str = ContextProfile.STANDARD.value


def iter_specs(
    tasks: Sequence[Task], settings: ComposeSettings, tally: ComposeTally | None = None
) -> Iterator[InstanceSpec]:
    """The draws, cheap and sequential (they depend on what was drawn before)."""
    tally = tally if tally is not None else ComposeTally()
    roots = root_ancestors(tasks)
    pools = {ContextProfile.STANDARD: _pools(tasks, roots, settings.test_fraction)}
    if settings.long_context_share > 0:
        usable = [task for task in tasks if tally.long_context.check(task).usable]
        pools[ContextProfile.LONG] = _pools(usable, roots, settings.test_fraction)
    sizes = {
        (context, split): sum(len(m) for m in pool[split].values())
        for context, pool in pools.items()
        for split in Split
    }
    profiles = list(settings.profiles)
    weights = list(settings.profiles.values())
    made = 0
    seen: set[str] = set()
    attempts = 0
    while made < settings.count and attempts < settings.count * 20:
        attempts += 1
        tally.attempts = attempts
        rng = random.Random(f"{settings.seed}:{attempts}")
        # its own generator: with no long instances every other draw stays what it was
        long = random.Random(f"{settings.seed}:{attempts}:context").random()
        context = (
            ContextProfile.LONG if long < settings.long_context_share else ContextProfile.STANDARD
        )
        split = Split.TEST if rng.random() < settings.test_fraction else Split.TRAIN
        if not sizes[context, split]:
            continue
        size = 3 if rng.random() < settings.three_task_share else 2
        cross = rng.random() < settings.cross_category_share
        picked = _pick(rng, pools[context][split], size, cross)
        if picked is None:
            continue
        profile = LatencyProfile(rng.choices(profiles, weights)[0])
        instance_seed = rng.getrandbits(32)
        # a standard instance's id and identity stay as before the context profile existed
        marks = [context.value] if context is ContextProfile.LONG else []
        key = content_hash([[t.id for t in picked], cross, profile.value, instance_seed, *marks])
        identity = content_hash([sorted(t.id for t in picked), profile.value, *marks])
        if identity in seen:
            continue
        seen.add(identity)
        made += 1
        tally.per_split[split.value] += 1
        tally.per_context[context.value] += 1
        yield InstanceSpec(
            key,
            tuple(t.id for t in picked),
            cross,
            profile.value,
            instance_seed,
            split.value,
            context.value,
        )


def build_instance(
    spec: InstanceSpec,
    tasks: Mapping[str, Task],
    turn_cost: float,
    variant_of: Callable[[Task], Task] = long_context_variant,
) -> Instance:
    """The expensive part of a draw: the latency table and the exact bounds (and, for a long
    instance, its tasks' long-context variants, which the draw checked)."""
    picked = [tasks[task_id] for task_id in spec.task_ids]
    context = ContextProfile(spec.context)
    if context is ContextProfile.LONG:
        picked = [variant_of(task) for task in picked]
    tools = [call.tool for task in picked for call in task.calls]
    profile = LatencyProfile(spec.profile)
    latency = latency_table(tools, profile, random.Random(spec.seed), turn_cost)
    return Instance(
        id=spec.id,
        tasks=picked,
        composition=Composition.CROSS_CATEGORY if spec.cross else Composition.SAME_CATEGORY,
        latency_profile=profile.value,
        seed=spec.seed,
        latency=latency,
        bounds=bounds_for(picked, latency, turn_cost),
        context_profile=context,
    )


def iter_instances(
    tasks: Sequence[Task], settings: ComposeSettings, tally: ComposeTally | None = None
) -> Iterator[Instance]:
    """The instances one at a time, so a caller can stream any number of them to disk."""
    by_id = {task.id: task for task in tasks}
    variants = VariantCache()
    for spec in iter_specs(tasks, settings, tally):
        yield build_instance(spec, by_id, settings.turn_cost, variants)
