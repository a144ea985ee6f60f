"""Turn BFCL multi-turn files into our ``Task`` records.

Granularity ``task`` joins all turns of an upstream task into one question and one call
sequence. Granularity ``turn`` makes one task of each turn with at least two calls, from the
start of the conversation to that turn; it touches only the environments its calls use.

A turn cut out of a conversation is a task only if it stands on its own (see
``docs/validation.md``, "Self-contained imports"). So each turn task goes through the real
validation chain (:func:`pipeline.validate.chain.validate_task`):

- a task starts the conversation: turn ``i`` becomes one task with every turn before it (the
  first turn's initial state, the user texts joined in order as one message, all calls in
  order), at most :data:`MAX_MERGED_TURNS` turns and :data:`MAX_MERGED_CALLS` calls. Turn 0
  that passes is **kept** (lineage ``bfcl:<id>#turn0``), a later turn whose span passes is
  **merged** (``bfcl:<id>#turn0-<i>``), anything else is **dropped** with the chain's code and
  message (a turn past the cap with ``question.context_dependent``), recorded in
  :class:`ImportReport`. Blind reads found that turns cut from the middle of a conversation
  passed every check and still leaned on it far more often than first turns (5 of 13 valid
  against 10 of 11), and no check tells which earlier turns a turn needs. A turn without
  calls adds its text like any other (BFCL's ``miss_param`` files give the missing value in
  such a turn).

Each call's ``depends_on`` and ``bindings`` come from :mod:`pipeline.dependencies`, which finds
them by executing the sequence (see its docstring for the rules). Calls that fail to parse or
name a function no involved environment has are reported, and their upstream task is skipped
with the reason; nothing is dropped silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from pipeline.bfcl.data import BfclTask, fresh_envs, load_tasks, to_arguments
from pipeline.calls import CallParseError
from pipeline.dependencies import infer_dependencies
from pipeline.envs import BFCL_CLASSES
from pipeline.models import Call, Lineage, RejectionCode, Task
from pipeline.replay import run_call
from pipeline.validate.chain import validate_task


class Granularity(StrEnum):
    TASK = "task"
    TURN = "turn"


#: The largest merged task: at most this many consecutive turns (turns without calls included) ...
MAX_MERGED_TURNS = 4
#: ... and at most this many calls.
MAX_MERGED_CALLS = 40


class Outcome(StrEnum):
    KEPT = "kept"  # the turn stands on its own
    MERGED = "merged"  # the turn became a task together with the turns before it
    DROPPED = "dropped"  # neither; ``code`` and ``message`` say why


@dataclass(frozen=True)
class TurnOutcome:
    """What became of one turn with at least two calls (``source`` names that turn)."""

    source: str
    outcome: Outcome
    task: Task | None = None
    code: str | None = None
    message: str = ""


@dataclass
class ImportReport:
    tasks: list[Task] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    duplicates: int = 0
    #: turn granularity: turns kept alone, turns merged with earlier turns, turns dropped
    kept: int = 0
    merged: int = 0
    dropped: list[TurnOutcome] = field(default_factory=list)

    def dropped_by_code(self) -> Counter[str]:
        return Counter(item.code or "unknown" for item in self.dropped)

    def summary(self) -> str:
        categories = Counter(task.category for task in self.tasks)
        text = ", ".join(f"{name} {count}" for name, count in sorted(categories.items()))
        lines = [
            f"imported {len(self.tasks)} tasks ({text}); skipped {len(self.skipped)} upstream "
            f"tasks; duplicate tasks left out {self.duplicates}"
        ]
        turns = self.kept + self.merged + len(self.dropped)
        if turns:
            lines.append(
                f"turns with >=2 calls: {turns}: kept alone {self.kept}, merged with earlier "
                f"turns {self.merged}, dropped {len(self.dropped)}"
            )
            for code, count in sorted(self.dropped_by_code().items(), key=lambda i: (-i[1], i[0])):
                lines.append(f"  dropped {code}: {count}")
        return "\n".join(lines)


def _to_calls(sources: Sequence[str], env_names: Sequence[str], first_step: int) -> list[Call]:
    calls = []
    for offset, source in enumerate(sources):
        tool, arguments = to_arguments(source, env_names)
        calls.append(Call(id=f"s{first_step + offset}", tool=tool, arguments=arguments))
    return calls


def _category(calls: Sequence[Call], env_names: Sequence[str]) -> str:
    counts = Counter(call.env for call in calls)
    return max(env_names, key=lambda name: (counts[name], -env_names.index(name)))


def _make_task(
    question: str,
    env_names: Sequence[str],
    initial_config: dict[str, dict[str, Any]],
    calls: list[Call],
    source: str,
) -> Task:
    calls = infer_dependencies(env_names, initial_config, calls, question)
    task = Task(
        id="pending",
        category=_category(calls, env_names),
        envs=list(env_names),
        question=question,
        initial_config=initial_config,
        calls=calls,
        lineage=Lineage(operator="import", source=source),
    )
    return task.with_content_id()


def join_requests(texts: Sequence[str]) -> str:
    """User texts of consecutive turns as one message, in order, each kept as written.

    They are joined with a space; a text that does not end a sentence gets a full stop first.
    """
    parts = [text.strip() for text in texts if text.strip()]
    joined = []
    for position, part in enumerate(parts):
        ends = part.rstrip("'\"”’)").endswith((".", "?", "!")) or position == len(parts) - 1
        joined.append(part if ends else part + ".")
    return " ".join(joined)


@dataclass(frozen=True)
class _Turn:
    number: int
    text: str
    sources: list[str]  # upstream call strings
    state: dict[str, dict[str, Any]]  # every environment's snapshot at the start of the turn


def _replay_turns(upstream: BfclTask) -> list[_Turn]:
    """Parse every turn's calls (``CallParseError`` before anything is produced) and record
    the state each turn starts from."""
    env_names = upstream.env_names
    parsed = [_to_calls(sources, env_names, 1) for sources in upstream.ground_truth]
    envs = fresh_envs(upstream)
    turns = []
    for number, (text, sources, calls) in enumerate(
        zip(upstream.turns, upstream.ground_truth, parsed)
    ):
        state = {name: env.snapshot() for name, env in envs.items()}
        turns.append(_Turn(number, text, list(sources), state))
        for call in calls:  # advance the shared state to the start of the next turn
            run_call(envs, call)
    return turns


def _span_task(upstream: BfclTask, span: Sequence[_Turn], source: str) -> Task:
    env_names = upstream.env_names
    sources = [call for turn in span for call in turn.sources]
    calls = _to_calls(sources, env_names, 1)
    used = [name for name in env_names if any(call.env == name for call in calls)]
    config = {name: span[0].state[name] for name in used}
    return _make_task(join_requests([turn.text for turn in span]), used, config, calls, source)


def _verdict(
    upstream: BfclTask, span: Sequence[_Turn], source: str
) -> tuple[Task | None, RejectionCode | None, str]:
    """The span's task and, when the chain rejects it, the code and message."""
    if not any(turn.text.strip() for turn in span):
        return None, RejectionCode.QUESTION_NO_REQUEST, "the turn has calls but no user text"
    task = _span_task(upstream, span, source)
    verdict = validate_task(task)
    if verdict.rejection is None:
        return task, None, ""
    return task, verdict.rejection.code, verdict.rejection.message


def _span_name(upstream: BfclTask, first: int, last: int) -> str:
    turns = f"turn{last}" if first == last else f"turn{first}-{last}"
    return f"bfcl:{upstream.id}#{turns}"


def _merge_limit(turns: Sequence[_Turn], first: int, last: int) -> str:
    """Why turns ``first..last`` cannot be merged, or "" if they can."""
    span = turns[first : last + 1]
    if len(span) > MAX_MERGED_TURNS or sum(len(turn.sources) for turn in span) > MAX_MERGED_CALLS:
        return f"merging stops at {MAX_MERGED_TURNS} turns and {MAX_MERGED_CALLS} calls"
    return ""


def _turn_outcome(upstream: BfclTask, turns: Sequence[_Turn], last: int) -> TurnOutcome:
    """Keep turn ``last`` together with every turn before it, or drop it.

    A task starts at the conversation's first turn: blind reads found that turns cut from the
    middle of a conversation passed every check and still leaned on it (an unnamed "the file",
    "as well", a request the earlier turns had settled) far more often than first turns, and
    no check can tell which earlier turns a turn needs.
    """
    source = _span_name(upstream, last, last)
    limit = _merge_limit(turns, 0, last)
    if limit:
        return TurnOutcome(
            source,
            Outcome.DROPPED,
            code=RejectionCode.QUESTION_CONTEXT_DEPENDENT.value,
            message=f"turn {last} is too far from the start of the conversation ({limit})",
        )
    task, code, message = _verdict(upstream, turns[: last + 1], _span_name(upstream, 0, last))
    if code is None:
        return TurnOutcome(source, Outcome.KEPT if last == 0 else Outcome.MERGED, task)
    where = "" if last == 0 else f"merged with turn{'s 0-' if last > 1 else ' '}{last - 1}: "
    return TurnOutcome(source, Outcome.DROPPED, code=code.value, message=where + message)


def turn_outcomes(upstream: BfclTask) -> list[TurnOutcome]:
    """Kept, merged or dropped: one outcome per turn with at least two calls, in turn order.

    Raises ``CallParseError`` (before any outcome) if a call of any turn cannot be read.
    """
    turns = _replay_turns(upstream)
    return [_turn_outcome(upstream, turns, turn.number) for turn in turns if len(turn.sources) >= 2]


def tasks_from_bfcl(upstream: BfclTask, granularity: Granularity) -> Iterator[Task]:
    """Yield our tasks for one upstream task (``CallParseError`` if a call cannot be read).

    At turn granularity these are the kept and merged turns of :func:`turn_outcomes`.
    """
    env_names = upstream.env_names
    if granularity is Granularity.TASK:
        sources = [source for turn in upstream.ground_truth for source in turn]
        envs = fresh_envs(upstream)
        config = {name: env.snapshot() for name, env in envs.items()}
        question = "\n".join(text for text in upstream.turns if text.strip())
        yield _make_task(
            question, env_names, config, _to_calls(sources, env_names, 1), f"bfcl:{upstream.id}"
        )
        return
    for outcome in turn_outcomes(upstream):
        if outcome.task is not None:
            yield outcome.task


#: upstream's task file of the long-context category; its environments load long contexts
LONG_CONTEXT_MARK = "_long_context"


def with_long_context(upstream: BfclTask) -> BfclTask:
    """The task with ``long_context: true`` in the config of every involved class that has
    the flag, as upstream's loader passes it for the long-context category (the task file
    itself does not say so)."""
    config = {name: dict(value) for name, value in upstream.initial_config.items()}
    for bfcl_class in upstream.involved_classes:
        if "long_context" in BFCL_CLASSES[bfcl_class].state_model.model_fields:
            config.setdefault(bfcl_class, {})["long_context"] = True
    return replace(upstream, initial_config=config)


def import_bfcl(files: Sequence[Path], granularity: Granularity) -> ImportReport:
    report = ImportReport()
    seen: set[str] = set()
    for path in files:
        long_context = path.stem.endswith(LONG_CONTEXT_MARK)
        for upstream in load_tasks(path):
            if long_context:
                upstream = with_long_context(upstream)
            try:
                if granularity is Granularity.TASK:
                    produced = list(tasks_from_bfcl(upstream, granularity))
                else:
                    outcomes = turn_outcomes(upstream)
                    produced = [item.task for item in outcomes if item.task is not None]
            except CallParseError as error:
                report.skipped.append((f"{path.name}:{upstream.id}", str(error)))
                continue
            if granularity is Granularity.TURN:
                report.kept += sum(item.outcome is Outcome.KEPT for item in outcomes)
                report.merged += sum(item.outcome is Outcome.MERGED for item in outcomes)
                report.dropped += [item for item in outcomes if item.outcome is Outcome.DROPPED]
            for task in produced:
                if task.id in seen:
                    report.duplicates += 1
                    continue
                seen.add(task.id)
                report.tasks.append(task)
    return report


def multi_turn_files(folder: Path) -> list[Path]:
    """The multi-turn task files in a BFCL data folder that have ground truth beside them."""
    files = sorted(folder.glob("BFCL_v*_multi_turn_*.json"))
    return [path for path in files if (path.parent / "possible_answer" / path.name).exists()]
