"""Replay a task's ground truth on fresh environments built from its ``initial_config``."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue

from pipeline.budget import check_time
from pipeline.envs import ENVIRONMENTS, Environment, SeededState, ToolError, get_env_class
from pipeline.envs.diff import state_diff
from pipeline.jsontree import at_path
from pipeline.models import Call, Task, content_hash

Envs = dict[str, Environment[Any]]


@dataclass(frozen=True)
class CallOutcome:
    call_id: str
    tool: str
    result: JsonValue = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ReplayResult:
    outcomes: list[CallOutcome]
    final_state: dict[str, dict[str, Any]]
    envs: Envs = field(repr=False)

    @property
    def errors(self) -> list[CallOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.ok]

    @property
    def ok(self) -> bool:
        return not self.errors

    def state_digest(self) -> str:
        return state_digest(self.final_state)


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_canonical(item) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=str))
    return value


def same_outcome_state(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two final states are the same outcome: equal up to the order of elements in
    lists. Two independent messages land in an inbox in whichever order they were sent; the
    user asked for both to be there, not for an order, so the order is not part of the
    outcome. Drawn ids are compared by the call that drew them before this comparison
    (:mod:`pipeline.drawn_ids`)."""
    return a == b or _canonical(dict(a)) == _canonical(dict(b))


def state_digest(states: Mapping[str, Any]) -> str:
    return content_hash(states, length=32)


def build_envs(env_names: Iterable[str], initial_config: Mapping[str, Mapping[str, Any]]) -> Envs:
    """One fresh environment per name; a name without a config starts from defaults."""
    envs: Envs = {}
    for name in env_names:
        envs[name] = get_env_class(name).from_state(initial_config.get(name))
    unknown = set(initial_config) - set(envs)
    if unknown:
        raise ValueError(
            f"initial_config has environments the task does not use: {sorted(unknown)}"
        )
    return envs


def run_call(envs: Envs, call: Call) -> CallOutcome:
    """Run one call; a ``ToolError`` (or a simulator bug it raises) becomes the outcome's error."""
    env = envs.get(call.env)
    if env is None:
        if call.env in ENVIRONMENTS:
            error = f"environment {call.env!r} is not part of this task"
        else:
            error = f"unknown environment {call.env!r}"
        return CallOutcome(call.id, call.tool, error=error)
    try:
        result = env.invoke(call.function, call.arguments)
    except ToolError as failure:
        return CallOutcome(call.id, call.tool, error=str(failure))
    except Exception as failure:  # noqa: BLE001 - a simulator bug on hostile arguments fails
        # this call (and so rejects its candidate), never the whole run
        detail = str(failure)[:200]
        error = f"{call.tool} failed unexpectedly ({type(failure).__name__}: {detail})"
        return CallOutcome(call.id, call.tool, error=error)
    if not _finite(result):  # JSON has no inf or NaN: stored, it would silently become null
        error = f"{call.tool} returned a number JSON cannot hold (infinite or NaN)"
        return CallOutcome(call.id, call.tool, error=error)
    return CallOutcome(call.id, call.tool, result=result)


#: the C encoder refuses inf and NaN far faster than a walk in Python over a long result
_STRICT_JSON = json.JSONEncoder(allow_nan=False, check_circular=False)


def _finite(value: Any) -> bool:
    if isinstance(value, str | int | bool) or value is None:
        return True
    try:
        _STRICT_JSON.encode(value)
    except ValueError:
        return False
    except TypeError:  # not JSON at all: the walk decides on the numbers it holds
        return _finite_walk(value)
    return True


def _finite_walk(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_walk(item) for item in value.values())
    if isinstance(value, list | tuple):
        return all(_finite_walk(item) for item in value)
    return True


def replay_calls(envs: Envs, calls: Iterable[Call]) -> ReplayResult:
    outcomes = [run_call(envs, call) for call in calls]
    final = {name: env.snapshot() for name, env in envs.items()}
    return ReplayResult(outcomes=outcomes, final_state=final, envs=envs)


def replay(task: Task) -> ReplayResult:
    """Run every call of ``task`` in order on fresh environments, keeping going after errors."""
    return replay_calls(build_envs(task.envs, task.initial_config), task.calls)


@dataclass(frozen=True)
class StepTrace:
    """What one call did: its result or error, the state change it made, the draws it used."""

    result: JsonValue
    error: str | None
    effect: tuple[str, ...]
    rng_words: int
    skipped: bool = False
    #: what the call read without naming it (:meth:`pipeline.envs.Environment.ambient`)
    ambient: JsonValue = None

    def same_behaviour(self, other: StepTrace) -> bool:
        return (self.result, self.error, self.effect, self.ambient) == (
            other.result,
            other.error,
            other.effect,
            other.ambient,
        )

    @property
    def pure(self) -> bool:
        """Changed no state and drew nothing: leaving it out or moving it changes no other call."""
        return not self.skipped and not self.effect and self.rng_words == 0


def _rng_position(env: Environment[Any] | None) -> int:
    if env is not None and isinstance(env.state, SeededState):
        return env.state.rng_words
    return 0


def trace_calls(
    env_names: Iterable[str],
    initial_config: Mapping[str, Mapping[str, Any]],
    calls: Sequence[Call],
    skip: int | None = None,
    skipped_rng_words: int = 0,
    follow_bindings: bool = False,
) -> tuple[list[StepTrace], dict[str, dict[str, Any]]]:
    """Replay recording each call's behaviour; optionally leave out call ``skip``.

    A left-out call still consumes ``skipped_rng_words`` draws of its environment's generator,
    so ids drawn by later calls do not shift merely because an unrelated call is missing.
    With ``follow_bindings`` a bound argument takes the value its producer returned in this
    run ("close the ticket the second step opened" closes that ticket, whichever id it drew),
    as an agent would pass it. Returns the per-call traces and the final state.
    """
    envs = build_envs(env_names, initial_config)
    returned: dict[str, JsonValue] = {}
    traces: list[StepTrace] = []
    # an environment changes only through its own calls, so its last "after" is the next "before"
    latest: dict[str, dict[str, Any]] = {}
    for index, call in enumerate(calls):
        env = envs.get(call.env)
        if index == skip:
            if env is not None and skipped_rng_words and isinstance(env.state, SeededState):
                env.state.rng_words += skipped_rng_words
                env.reset_rng()
                latest.pop(call.env, None)
            traces.append(StepTrace(None, None, (), 0, skipped=True))
            continue
        if env is not None and call.env not in latest:
            latest[call.env] = env.snapshot()
        before = latest.get(call.env, {})
        words = _rng_position(env)
        ambient = env.ambient() if env is not None else None
        if follow_bindings and call.bindings:
            call = rebound(call, returned)
        outcome = run_call(envs, call)
        returned[call.id] = outcome.result
        after = env.snapshot() if env is not None else {}
        if env is not None:
            latest[call.env] = after
        check_time()
        traces.append(
            StepTrace(
                outcome.result,
                outcome.error,
                tuple(state_diff(before, after)),
                _rng_position(env) - words,
                ambient=ambient,
            )
        )
    return traces, {name: env.snapshot() for name, env in envs.items()}


def rebound(call: Call, returned: Mapping[str, JsonValue]) -> Call:
    """``call`` with each bound argument (``name`` or ``name.index``) set to what its producer
    returned in ``returned``; a binding whose producer or path is missing keeps its value."""
    arguments = json.loads(json.dumps(call.arguments))
    for slot, source in call.bindings.items():
        producer, _, path = source.partition(".")
        if producer not in returned:
            continue
        try:
            value = at_path(returned[producer], path)
        except KeyError:
            continue
        name, _, index = slot.partition(".")
        if not index:
            arguments[name] = value
        elif isinstance(arguments.get(name), list) and int(index) < len(arguments[name]):
            arguments[name][int(index)] = value
    return call.model_copy(update={"arguments": arguments})


def states_before(
    env_names: Iterable[str],
    initial_config: Mapping[str, Mapping[str, Any]],
    calls: Sequence[Call],
) -> list[dict[str, dict[str, Any]]]:
    """The whole state before each call, and after the last one (``len(calls) + 1`` entries).

    Snapshots of environments a call leaves alone are shared between entries, so this costs
    one snapshot per call.
    """
    envs = build_envs(env_names, initial_config)
    current = {name: env.snapshot() for name, env in envs.items()}
    states = [current]
    for call in calls:
        run_call(envs, call)
        env = envs.get(call.env)
        if env is not None:
            current = {**current, call.env: env.snapshot()}
        states.append(current)
        check_time()
    return states
