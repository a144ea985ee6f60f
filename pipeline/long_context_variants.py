"""Long-context variants of validated tasks: composition's difficulty knob (issue 16).

A task's long-context variant is the same question and ground truth with every environment of
the task that has upstream BFCL's long-context mode (a ``long_context`` field in its state)
switched on: the larger states and longer results of ``pipeline.envs.long_context``. Its
content differs, so it is a new task (its own content id; lineage: the task as parent, operator
``long_context``), and it is validated again from scratch: every call must still succeed, every
binding still reproduce its value, every argument and quoted value still be grounded by what the
longer results show. A task whose variant fails is left out of long-context instances with a
``Rejection`` that says why; it is never adapted to fit (its questions would change meaning).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.envs import get_env_class
from pipeline.models import Expected, Rejection, RejectionCode, Task
from pipeline.replay import state_digest
from pipeline.validate.chain import validate_task
from pipeline.validate.context import ValidationContext
from pipeline.validate.execution import requested_outputs

OPERATOR = "long_context"
FLAG = "long_context"


def has_long_context(env: str) -> bool:
    """Whether the environment has upstream's long-context mode."""
    return FLAG in get_env_class(env).state_model.model_fields


def made_from(task: Task) -> str:
    """The id of the task a long-context variant was made from (else the task's own id): a
    reviewer's decision on that task holds for its variants too (same question and calls)."""
    if task.lineage.operator == OPERATOR and task.lineage.parents:
        return task.lineage.parents[0]
    return task.id


def long_context_state(env: str, state: Mapping[str, Any] | None) -> dict[str, Any]:
    """``state`` with the long-context mode on. What the mode adds is defined once, in the
    environment's BFCL loader, so the state is loaded both ways and the fields the flag changes
    are taken from the long load; every other field stays as the task had it (the loader does
    not read all of them: a filesystem's current directory). ``ValueError`` for a bad state."""
    cls = get_env_class(env)
    current = cls.from_state(state).snapshot()
    if current.get(FLAG) is True:
        return current  # already long: loading it again would add the extra content twice
    plain = cls.from_bfcl_config({**current, FLAG: False}).snapshot()
    long = cls.from_bfcl_config({**current, FLAG: True}).snapshot()
    changed = {key: value for key, value in long.items() if plain.get(key) != value}
    return {**current, **changed}


def long_context_config(task: Task) -> dict[str, dict[str, Any]] | None:
    """The task's ``initial_config`` with every environment that has the mode switched to it;
    None when none of its environments has the mode. ``ValueError`` for a bad state."""
    envs = [env for env in task.envs if has_long_context(env)]
    if not envs:
        return None
    config: dict[str, dict[str, Any]] = dict(task.initial_config)
    for env in envs:
        config[env] = long_context_state(env, task.initial_config.get(env))
    return config


def _variant_of(task: Task, config: Mapping[str, Mapping[str, Any]]) -> Task:
    """The unvalidated variant: the same question and calls on ``config``, lineage to ``task``."""
    if config == task.initial_config:
        return task  # imported from BFCL's long-context category: it is its own variant
    return task.derive(
        OPERATOR,
        next_round=False,
        initial_config={env: dict(state) for env, state in config.items()},
    )


@dataclass(frozen=True)
class LongContextCheck:
    """Whether a task can join a long-context instance, and if not, why."""

    #: the task runs at least one environment in long-context mode
    has_mode: bool
    #: its variant failed validation (or could not be built): the task is left out
    rejection: Rejection | None = None

    @property
    def usable(self) -> bool:
        return self.has_mode and self.rejection is None


def _left_out(task: Task, code: RejectionCode, message: str) -> LongContextCheck:
    rejection = Rejection(
        sample_id=task.id,
        stage=code.stage,
        code=code,
        message=f"long-context variant: {message}",
    )
    return LongContextCheck(True, rejection)


def check_long_context(task: Task) -> LongContextCheck:
    """Build the task's long-context variant and validate it with every check of the chain."""
    try:
        config = long_context_config(task)
    except ValueError as error:
        return _left_out(task, RejectionCode.STATIC_BAD_INITIAL_STATE, str(error))
    if config is None:
        return LongContextCheck(False)
    variant = _variant_of(task, config)
    if variant is task:
        return LongContextCheck(True)
    verdict = validate_task(variant)
    if verdict.rejection is not None:
        found = verdict.rejection
        return _left_out(task, found.code, f"{variant.id}: {found.message}")
    return LongContextCheck(True)


def long_context_variant(task: Task) -> Task:
    """The variant with its ``expected`` filled as validation fills it, for a task whose
    :func:`check_long_context` passed (rebuilt rather than kept: long states are large)."""
    config = long_context_config(task)
    if config is None:
        raise ValueError(f"task {task.id} uses no environment with a long-context mode")
    variant = _variant_of(task, config)
    if variant is task:
        return task
    ctx = ValidationContext(variant)
    expected = Expected(state_digest=state_digest(ctx.final_state), outputs=requested_outputs(ctx))
    return variant.model_copy(update={"expected": expected})


class VariantCache:
    """:func:`long_context_variant` keeping the last ``size`` variants built (a task drawn
    again is not replayed again; a long state is tens of kilobytes, hence the bound)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._kept: OrderedDict[str, Task] = OrderedDict()

    def __call__(self, task: Task) -> Task:
        variant = self._kept.pop(task.id, None)
        if variant is None:
            variant = long_context_variant(task)
        self._kept[task.id] = variant
        if len(self._kept) > self.size:
            self._kept.popitem(last=False)
        return variant


class LongContextVariants:
    """Each task's check, done once (validation is the costly part) and kept, so that every
    task left out is reported with its reason."""

    def __init__(self) -> None:
        self._checks: dict[str, LongContextCheck] = {}

    def check(self, task: Task) -> LongContextCheck:
        found = self._checks.get(task.id)
        if found is None:
            found = self._checks[task.id] = check_long_context(task)
        return found

    @property
    def rejections(self) -> list[Rejection]:
        found = [c.rejection for c in self._checks.values() if c.rejection is not None]
        return sorted(found, key=lambda rejection: rejection.sample_id)

    def report(self) -> dict[str, Any]:
        """Counts over the tasks checked (each once)."""
        checks = list(self._checks.values())
        codes = Counter(r.code.value for r in self.rejections)
        return {
            "tasks_checked": len(checks),
            "tasks_without_mode": sum(not c.has_mode for c in checks),
            "tasks_lengthened": sum(c.usable for c in checks),
            "tasks_left_out": len(self.rejections),
            "left_out_by_code": dict(codes.most_common()),
        }


__all__ = [
    "OPERATOR",
    "LongContextCheck",
    "LongContextVariants",
    "VariantCache",
    "check_long_context",
    "has_long_context",
    "long_context_config",
    "long_context_state",
    "long_context_variant",
    "made_from",
]
