"""Scores and failure labels for one episode.

* **Step**: function-name F1 and argument F1 of the agent's calls against the ground truth,
  per task, as multisets — so any order that respects the dependencies scores the same.
* **Sub-task**: finished, final state equal to the replayed ground truth's, and every requested
  output among the results delivered to that task. **Task**: every sub-task succeeds.
* **Efficiency**: optimal makespan over actual; overlap (share of the time with calls in flight
  that the agent spent working in turns rather than idle); same-task streak (mean run of
  consecutive calls for one task); turns; extra calls (calls matching no ground-truth call).
* **Failure labels**: ``dependency_violation`` (a call matching a ground-truth step whose
  producer's result the agent had not yet seen), ``task_neglect`` (a task never finished),
  ``tool_confusion`` (a call to an unknown task, to a tool its task does not have, or matching
  another task's ground truth and not its own), ``ungrounded_argument`` (a literal not in the
  task's question, initial state or a result delivered to that task before the call),
  ``repeated_call`` (the agent stopped an identical call over its bound: a ``repeated_call``
  event in the log; the harness's own agents never make one).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipeline.drawn_ids import Renaming, drawn_ids, rename, renaming
from pipeline.envs import ToolError, resolve_tool
from pipeline.harness.sim import EpisodeTrace, IssuedCall
from pipeline.jsontree import scalars
from pipeline.models import Instance, Task
from pipeline.replay import CallOutcome, replay, same_outcome_state
from pipeline.validate.grounding import observable_sources, schema_offers


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _f1(predicted: Counter[Any], expected: Counter[Any]) -> float:
    hits = sum((predicted & expected).values())
    total_p, total_e = sum(predicted.values()), sum(expected.values())
    if total_p == 0 and total_e == 0:
        return 1.0
    if hits == 0:
        return 0.0
    precision, recall = hits / total_p, hits / total_e
    return 2 * precision * recall / (precision + recall)


@dataclass
class EpisodeScore:
    instance_id: str
    success: bool
    subtask_success: dict[str, bool]
    name_f1: float
    argument_f1: float
    makespan: float
    optimal_makespan: float
    sequential_makespan: float
    efficiency: float
    overlap: float
    same_task_streak: float
    turns: int
    calls: int
    extra_calls: int
    labels: list[str] = field(default_factory=list)
    label_details: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        data = {
            k: v for k, v in self.__dict__.items() if k not in ("subtask_success", "label_details")
        }
        data["subtasks_solved"] = sum(self.subtask_success.values())
        data["subtasks"] = len(self.subtask_success)
        data["labels"] = ",".join(self.labels)
        return data

    def record(self) -> dict[str, Any]:
        """Everything, for the episode log: ``from_record`` rebuilds the score from it."""
        return {
            **self.row(),
            "subtask_success": self.subtask_success,
            "label_details": self.label_details,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> EpisodeScore:
        """The score a log's last line holds; ``KeyError``/``TypeError`` if it is not one."""
        names = [name for name in cls.__dataclass_fields__ if name != "labels"]
        values = {name: record[name] for name in names}
        labels = [name for name in str(record["labels"]).split(",") if name]
        return cls(**values, labels=labels)


def _match(task: Task, calls: list[IssuedCall]) -> dict[str, str]:
    """Agent call id -> ground-truth step id, exact tool and arguments, first unused step."""
    used: set[str] = set()
    matched: dict[str, str] = {}
    for call in calls:
        for step in task.calls:
            if (
                step.id not in used
                and step.tool == call.tool
                and _key(step.arguments) == _key(call.arguments)
            ):
                matched[call.call_id] = step.id
                used.add(step.id)
                break
    return matched


def _overlap(trace: EpisodeTrace) -> float:
    intervals = [(c.started_at, c.delivered_at) for c in trace.calls if c.delivered_at is not None]
    if not intervals:
        return 0.0
    points = sorted(
        {p for span in intervals for p in span} | {p for turn in trace.turns for p in turn}
    )
    busy = working = 0.0
    for left, right in zip(points, points[1:]):
        middle = (left + right) / 2
        if any(a <= middle < b for a, b in intervals):
            busy += right - left
            if any(a <= middle < b for a, b in trace.turns):
                working += right - left
    return working / busy if busy else 0.0


def _streak(trace: EpisodeTrace) -> float:
    runs: list[int] = []
    previous = None
    for call in trace.calls:
        if call.task_id == previous:
            runs[-1] += 1
        else:
            runs.append(1)
            previous = call.task_id
    return sum(runs) / len(runs) if runs else 0.0


def score_episode(
    instance: Instance,
    trace: EpisodeTrace,
    optimal: float | None = None,
    sequential: float | None = None,
) -> EpisodeScore:
    """Score a finished episode; ``optimal``/``sequential`` are the makespan bounds under the
    episode's mode (the instance's own bounds, which are for clock mode, when omitted)."""
    optimal = instance.bounds.optimal_makespan if optimal is None else optimal
    sequential = instance.bounds.sequential_makespan if sequential is None else sequential
    tasks = {task.id: task for task in instance.tasks}
    labels: list[str] = []
    details: list[str] = []

    def label(name: str, detail: str) -> None:
        if name not in labels:
            labels.append(name)
        details.append(f"{name}: {detail}")

    by_task: dict[str, list[IssuedCall]] = {task_id: [] for task_id in tasks}
    for call in trace.calls:
        if call.task_id not in tasks:
            label("tool_confusion", f"{call.call_id} names unknown task {call.task_id!r}")
            continue
        if call.delivered_at is None:
            label("tool_confusion", f"{call.call_id}: {call.error}")
        by_task[call.task_id].append(call)
    name_p: Counter[Any] = Counter()
    name_e: Counter[Any] = Counter()
    arg_p: Counter[Any] = Counter()
    arg_e: Counter[Any] = Counter()
    matched_total = 0
    success: dict[str, bool] = {}
    for task_id, task in tasks.items():
        calls = by_task[task_id]
        for call in calls:
            name_p[(task_id, call.tool)] += 1
            for arg, value in call.arguments.items():
                arg_p[(task_id, call.tool, arg, _key(value))] += 1
        for step in task.calls:
            name_e[(task_id, step.tool)] += 1
            for arg, value in step.arguments.items():
                arg_e[(task_id, step.tool, arg, _key(value))] += 1
        matched = _match(task, calls)
        matched_total += len(matched)
        confused = {call.call_id for call in calls if call.delivered_at is None}
        for call in calls:
            if call.call_id in matched or call.delivered_at is None:
                continue
            for other_id, other in tasks.items():
                if other_id != task_id and _match(other, [call]):
                    confused.add(call.call_id)
                    label(
                        "tool_confusion",
                        f"{call.call_id} for {task_id} matches task {other_id}'s steps",
                    )
        # a call sent to the wrong task is judged as confusion only, not against that task's data
        _dependency_and_grounding(task, calls, matched, confused, label)
        success[task_id] = _subtask_success(task, trace, calls)
        if task_id not in trace.finished:
            label("task_neglect", f"task {task_id} was never finished")
    for event in trace.events:  # logged by an agent that stopped a call it kept repeating
        if event.get("event") == "repeated_call":
            label("repeated_call", str(event.get("message", "")))
    finish_times = [t for t, _ in trace.finished.values()]
    all_done = len(trace.finished) == len(tasks)
    makespan = max(finish_times) if all_done else trace.end_time
    solved = all(success.values())
    # only a solved episode has an efficiency: finishing every task at once without doing them
    # must not look faster than the optimum
    efficiency = optimal / makespan if solved and all_done and makespan > 0 else 0.0
    return EpisodeScore(
        instance_id=instance.id,
        success=all(success.values()),
        subtask_success=success,
        name_f1=round(_f1(name_p, name_e), 6),
        argument_f1=round(_f1(arg_p, arg_e), 6),
        makespan=round(makespan, 6),
        optimal_makespan=optimal,
        sequential_makespan=sequential,
        efficiency=round(efficiency, 6),
        overlap=round(_overlap(trace), 6),
        same_task_streak=round(_streak(trace), 6),
        turns=len(trace.turns),
        calls=len(trace.calls),
        extra_calls=len(trace.calls) - matched_total,
        labels=labels,
        label_details=details,
    )


def _dependency_and_grounding(
    task: Task, calls: list[IssuedCall], matched: dict[str, str], confused: set[str], label: Any
) -> None:
    step_to_call = {step: call_id for call_id, step in matched.items()}
    steps = {step.id: step for step in task.calls}
    sources = observable_sources(task)
    results_by_call = {call.call_id: call.result for call in calls}
    added: set[str] = set()
    for call in calls:
        for seen in sorted(call.seen_results - added):
            if seen in results_by_call:
                sources.add(results_by_call[seen])
                added.add(seen)
        if call.call_id in confused:
            continue
        step_id = matched.get(call.call_id)
        if step_id is not None:
            for parent in steps[step_id].depends_on:
                producer = step_to_call.get(parent)
                if producer is None or producer not in call.seen_results:
                    label(
                        "dependency_violation",
                        f"{call.call_id} ({call.tool}) ran before step {parent}'s result was seen",
                    )
                    break
        bound = set(steps[step_id].bindings) if step_id else set()
        try:
            spec = resolve_tool(call.tool)[1]
            properties, types = spec.parameters.get("properties", {}), spec.param_types
        except ToolError:
            properties, types = {}, {}
        for name, value in call.arguments.items():
            if name in bound:
                continue
            schema = properties.get(name, {})
            for literal in scalars(value):
                grounded = sources.grounds(literal, types.get(name))
                if not grounded and not schema_offers(schema, literal):
                    label("ungrounded_argument", f"{call.call_id} passes {name}={literal!r}")
                    break


def _subtask_success(task: Task, trace: EpisodeTrace, calls: list[IssuedCall]) -> bool:
    if task.id not in trace.finished:
        return False
    expected = replay(task)
    envs = trace.envs[task.id]
    # ids the agent's calls drew count as the ids the same ground-truth calls drew: two
    # independent tickets opened the other way round hold each other's ids (pipeline.drawn_ids)
    mapping = _drawn_id_renaming(task, expected.outcomes, calls) or {}
    state = rename({name: env.snapshot() for name, env in envs.items()}, mapping)
    if not same_outcome_state(state, expected.final_state):
        return False
    wanted = task.expected.outputs if task.expected else {}
    got = [
        _key(rename(call.result, mapping))
        for call in calls
        if call.error is None and call.delivered_at is not None
    ]
    return all(_key(value) in got for value in wanted.values())


def _drawn_id_renaming(
    task: Task, outcomes: list[CallOutcome], calls: list[IssuedCall]
) -> Renaming | None:
    """Pair each ground-truth call that drew ids with the agent's call of the same tool and
    arguments, and rename the agent's drawn ids to the ground truth's."""
    unused = [call for call in calls if call.error is None and call.delivered_at is not None]
    pairs = []
    for step, outcome in zip(task.calls, outcomes):
        if not drawn_ids(step.tool, outcome.result):
            continue
        match = next(
            (c for c in unused if c.tool == step.tool and c.arguments == step.arguments), None
        )
        if match is not None:
            unused.remove(match)
            pairs.append((step.tool, match.result, outcome.result))
    return renaming(pairs)
