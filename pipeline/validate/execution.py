"""Checks that run the calls: execution, determinism, dependencies and minimality."""

from __future__ import annotations

from typing import Any

from pipeline.conditions import CONDITION, sentences, untested_conditions
from pipeline.dependencies import declared_parents, same_value
from pipeline.envs import ToolKind, resolve_tool
from pipeline.envs.diff import state_diff
from pipeline.jsontree import at_path
from pipeline.models import Evidence, RejectionCode
from pipeline.replay import replay
from pipeline.semantics import feeds
from pipeline.validate.context import Reject, ValidationContext


def check_execution(ctx: ValidationContext) -> None:
    """Every call runs without ``ToolError``; a second replay ends identically."""
    for index, (call, step) in enumerate(zip(ctx.task.calls, ctx.traces)):
        if step.error is not None:
            before = [
                f"{done.id}: {line}"
                for done, trace in zip(ctx.task.calls[:index], ctx.traces[:index])
                for line in trace.effect
            ]
            raise Reject(
                RejectionCode.EXECUTE_TOOL_ERROR,
                f"step {call.id} ({call.tool}) failed: {step.error}",
                Evidence(step_id=call.id, output=step.error, diff=before[:50]),
            )
    again = replay(ctx.task)  # results and final state only: no per-step snapshots needed
    final = again.final_state
    for call, first, second in zip(ctx.task.calls, ctx.traces, again.outcomes):
        if first.result != second.result:
            raise Reject(
                RejectionCode.EXECUTE_NONDETERMINISTIC,
                f"step {call.id} ({call.tool}) returned different results on two replays",
                Evidence(step_id=call.id, output={"first": first.result, "second": second.result}),
            )
    if final != ctx.final_state:
        raise Reject(
            RejectionCode.EXECUTE_NONDETERMINISTIC,
            "two replays of the same calls ended in different states",
            Evidence(diff=state_diff(ctx.final_state, final, limit=50)),
        )


def _argument_value(arguments: dict[str, Any], slot: str) -> Any:
    name, _, index = slot.partition(".")
    value = arguments[name]
    return value[int(index)] if index else value


def check_binding_types(ctx: ValidationContext) -> None:
    """A binding joins a result field and a parameter whose semantic types fit: a percent
    change is not an amount of money, a ticket status is not a password."""
    tools = {call.id: call.tool for call in ctx.task.calls}
    for call in ctx.task.calls:
        _, spec = resolve_tool(call.tool)
        for slot, source in call.bindings.items():
            producer, _, path = source.partition(".")
            wanted = spec.param_types.get(slot.split(".", 1)[0])
            producer_spec = resolve_tool(tools[producer])[1]
            # a whole list bound to a list parameter: compare its elements' type
            given = producer_spec.result_type(path) or producer_spec.result_type(
                f"{path}.0" if path else "0"
            )
            if not feeds(given, wanted):
                raise Reject(
                    RejectionCode.DEPENDENCY_TYPE_MISMATCH,
                    f"step {call.id} fills {slot!r} ({wanted.value if wanted else '?'}) with "
                    f"{source!r} ({given.value if given else '?'}): different meanings",
                    Evidence(step_id=call.id, output={"binding": {slot: source}}),
                )
    for j, call in enumerate(ctx.task.calls):
        # the same mismatch without a declared binding: the value only an output of another
        # meaning provides (a distance in km passed where miles are wanted)
        crossing = ctx.run.flows.crossed_types(j)
        if crossing is None:
            continue
        name, source, given, wanted = crossing
        raise Reject(
            RejectionCode.DEPENDENCY_TYPE_MISMATCH,
            f"step {call.id} passes {name!r} ({wanted.value if wanted else '?'}) a value only "
            f"{source!r} ({given.value if given else '?'}) provides: different meanings",
            Evidence(step_id=call.id, output={"argument": name, "source": source}),
        )


def check_declared_dependencies(ctx: ValidationContext) -> None:
    """A declared dependency is real: without the producer, the dependent call behaves differently;
    a binding points at a value the producer really returned."""
    position = {call.id: index for index, call in enumerate(ctx.task.calls)}
    for j, call in enumerate(ctx.task.calls):
        for slot, source in call.bindings.items():
            producer, _, path = source.partition(".")
            try:
                produced = at_path(ctx.traces[position[producer]].result, path)
            except KeyError:
                raise Reject(
                    RejectionCode.DEPENDENCY_SPURIOUS,
                    f"step {call.id} binds {slot!r} to {source!r}, which is not in that output",
                    Evidence(step_id=call.id, output=ctx.traces[position[producer]].result),
                ) from None
            value = _argument_value(call.arguments, slot)
            same = same_value(produced, value) or (
                isinstance(value, list) and any(same_value(produced, v) for v in value)
            )
            if not same:
                raise Reject(
                    RejectionCode.DEPENDENCY_SPURIOUS,
                    f"step {call.id} binds {slot!r} to {source!r} = {produced!r}, "
                    f"but passes {value!r}",
                    Evidence(step_id=call.id, output=produced),
                )
        for parent in call.depends_on:
            if ctx.run.reason(position[parent], j, ctx.ancestors()) is not None:
                continue  # data, a stated order, state (maybe only perturbed), or order
            raise Reject(
                RejectionCode.DEPENDENCY_SPURIOUS,
                f"step {call.id} is declared to depend on {parent}, but behaves the same "
                "without it (same result, same effect, or only the ids it drew and the place "
                "of what it wrote differ) and may run before it",
                Evidence(step_id=call.id, output=ctx.traces[j].result),
            )


def check_undeclared_dependencies(ctx: ValidationContext) -> None:
    """Values copied from earlier outputs, and earlier state changes a call needs, are declared
    (directly or through a chain of declared dependencies): the needs inference finds
    (:class:`pipeline.dependencies.Replays`) that the declared ancestors leave out."""
    ancestors = ctx.ancestors()
    calls = ctx.task.calls
    position = {call.id: index for index, call in enumerate(calls)}
    for j, (call, producers) in enumerate(zip(calls, ctx.run.flows.rounded_sources())):
        for i in sorted(producers - ancestors[j]):
            raise Reject(
                RejectionCode.DEPENDENCY_UNDECLARED,
                f"step {call.id} passes a rounded value of step {calls[i].id}'s output "
                "but does not depend on it",
                Evidence(step_id=call.id, output=ctx.traces[i].result),
            )
    for j, (call, bindings) in enumerate(zip(calls, ctx.run.bindings)):
        for slot, source in bindings.items():
            producer = source.split(".", 1)[0]
            if slot in call.bindings or position[producer] in ancestors[j]:
                continue
            raise Reject(
                RejectionCode.DEPENDENCY_UNDECLARED,
                f"step {call.id} passes {slot!r} = {_argument_value(call.arguments, slot)!r}, "
                f"a value only step {producer}'s output provides, but does not depend on it",
                Evidence(step_id=call.id, output=ctx.traces[position[producer]].result),
            )
    for j, hidden in enumerate(ctx.run.hidden(ancestors)):
        for i in sorted(hidden - ancestors[j]):
            raise Reject(
                RejectionCode.DEPENDENCY_UNDECLARED,
                f"step {calls[j].id} behaves differently without step "
                f"{calls[i].id} once the initial state holds unrelated extra content "
                "(a coincidence of the real state hides it), but does not depend on it",
                Evidence(step_id=calls[j].id),
            )
    for i, j in ctx.run.state_needs(ancestors):
        without, _ = ctx.without(i)
        raise Reject(
            RejectionCode.DEPENDENCY_UNDECLARED,
            f"step {calls[j].id} behaves differently without step {calls[i].id} "
            f"but does not depend on it, so a scheduler could reorder them",
            Evidence(
                step_id=calls[j].id,
                output={"with": ctx.traces[j].result, "without": without[j].result},
                diff=list(ctx.traces[j].effect),
            ),
        )


def check_unordered_calls(ctx: ValidationContext) -> None:
    """Calls of one environment that ``depends_on`` leaves unordered give the same results and
    final state in either order — otherwise a scheduler's choice would change the outcome."""
    ancestors = ctx.ancestors()
    calls = ctx.task.calls
    for i, j in sorted(ctx.run.worded_order):
        if i not in ancestors[j]:
            raise Reject(
                RejectionCode.DEPENDENCY_UNDECLARED,
                f"the question orders step {calls[i].id} ({calls[i].tool}) before step "
                f"{calls[j].id} ({calls[j].tool}), but {calls[j].id} does not depend on it, so "
                "a scheduler could run them the other way round",
                Evidence(step_id=calls[j].id),
            )
    for i, j in sorted(ctx.run.session_ends, key=lambda pair: (pair[1], pair[0])):
        if i not in ancestors[j]:
            raise Reject(
                RejectionCode.DEPENDENCY_UNDECLARED,
                f"step {calls[j].id} logs out, but does not come after step {calls[i].id} "
                "of the same service, so a scheduler could log out first",
                Evidence(step_id=calls[j].id),
            )
    for i, j in ctx.run.order_needs(declared_parents(calls)):
        raise Reject(
            RejectionCode.DEPENDENCY_UNDECLARED,
            f"steps {calls[i].id} and {calls[j].id} are not ordered by depends_on, but "
            f"running {calls[j].id} first changes a result or the final state",
            Evidence(step_id=calls[j].id),
        )


def check_conditional_dependencies(ctx: ValidationContext) -> None:
    """A question that makes a step conditional ("if any tyre is below 35 PSI, find a shop")
    needs that step to depend on the read that produced the tested value
    (:func:`pipeline.conditions.control_edges` says which step and which read)."""
    ancestors = ctx.ancestors()
    calls = ctx.task.calls
    for sentence in untested_conditions(ctx.task.question, calls):
        raise Reject(
            RejectionCode.DEPENDENCY_CONDITION_UNLINKED,
            f"the question makes steps conditional or asks for a check ({sentence[:120]!r}), "
            "but no step reads a value the condition or the check could test",
            Evidence(output={"condition": sentence[:300]}),
        )
    for read, conditioned in sorted(ctx.run.control):
        if read in ancestors[conditioned]:
            continue
        raise Reject(
            RejectionCode.DEPENDENCY_CONDITION_UNLINKED,
            f"the question makes step {calls[conditioned].id} ({calls[conditioned].tool}) "
            f"conditional, but it does not depend on the read {calls[read].id} "
            f"({calls[read].tool}) that produces the tested value",
            Evidence(
                step_id=calls[conditioned].id,
                output={"condition": _condition_sentence(ctx.task.question)},
            ),
        )


def _condition_sentence(question: str) -> str:
    return next((part for part in sentences(question) if CONDITION.search(part)), "")[:300]


def check_minimality(ctx: ValidationContext) -> None:
    """No call can be dropped: each changes the final state, feeds a later call, or is a read
    whose answer is not already known from an identical earlier read."""
    consumed = {
        source.split(".", 1)[0] for call in ctx.task.calls for source in call.bindings.values()
    }
    for i, call in enumerate(ctx.task.calls):
        _, spec = resolve_tool(call.tool)
        if spec.kind is ToolKind.READ:
            for earlier, step in zip(ctx.task.calls[:i], ctx.traces[:i]):
                repeated = earlier.tool == call.tool and earlier.arguments == call.arguments
                if repeated and step.result == ctx.traces[i].result:
                    raise Reject(
                        RejectionCode.MINIMALITY_REDUNDANT_CALL,
                        f"step {call.id} repeats step {earlier.id} and returns the same answer",
                        Evidence(step_id=call.id, output=ctx.traces[i].result),
                    )
            continue
        if call.id in consumed:
            continue
        without, final = ctx.without(i)
        later_same = all(
            ctx.traces[j].result == without[j].result and ctx.traces[j].error == without[j].error
            for j in range(i + 1, len(ctx.task.calls))
        )
        if later_same and final == ctx.final_state:
            raise Reject(
                RejectionCode.MINIMALITY_REDUNDANT_CALL,
                f"step {call.id} ({call.tool}) can be dropped: the final state and every other "
                "result stay the same without it",
                Evidence(
                    step_id=call.id, output=ctx.traces[i].result, diff=list(ctx.traces[i].effect)
                ),
            )


def requested_outputs(ctx: ValidationContext) -> dict[str, Any]:
    """Outputs the answer must report: reads whose result no later call consumes."""
    consumed = {
        source.split(".", 1)[0] for call in ctx.task.calls for source in call.bindings.values()
    }
    consumed |= {parent for call in ctx.task.calls for parent in call.depends_on}
    outputs: dict[str, Any] = {}
    for call, step in zip(ctx.task.calls, ctx.traces):
        _, spec = resolve_tool(call.tool)
        if spec.kind is ToolKind.READ and call.id not in consumed:
            outputs[call.id] = step.result
    return outputs
