"""The template verbaliser: one macro per tool, grounded phrases, bound values as references."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from jinja2 import nodes

from pipeline.conditions import control_edges
from pipeline.envs import ENVIRONMENTS
from pipeline.evolve.verbalise import Ref, Verbaliser, format_number, verbalise
from pipeline.models import Call, Task
from pipeline.seeds import load_seeds
from pipeline.validate.chain import validate_task
from pipeline.validate.static import api_names_in

SEEDS = load_seeds()
TOOLS = [(env, name) for env, cls in ENVIRONMENTS.items() for name in cls.tool_specs()]


@pytest.fixture(scope="module")
def verbaliser() -> Verbaliser:
    return Verbaliser()


# --- every tool has a macro with the tool's parameters ----------------------------------------


def _macro_defaults(verbaliser: Verbaliser, env: str) -> dict[str, dict[str, Any]]:
    """Each macro of an environment's template -> {parameter: its default} (from the source)."""
    source = (verbaliser.template_dir / f"{env}.j2").read_text(encoding="utf-8")
    found: dict[str, dict[str, Any]] = {}
    for node in verbaliser.env.parse(source).find_all(nodes.Macro):
        names = [arg.name for arg in node.args]
        defaults = names[len(names) - len(node.defaults) :]
        found[node.name] = {
            name: default.as_const() for name, default in zip(defaults, node.defaults)
        }
    return found


@pytest.mark.parametrize(("env", "tool"), TOOLS, ids=[f"{e}.{t}" for e, t in TOOLS])
def test_macro_matches_tool_parameters(verbaliser: Verbaliser, env: str, tool: str) -> None:
    spec = ENVIRONMENTS[env].tool_specs()[tool]
    macro = verbaliser.macro(f"{env}.{tool}")
    assert tuple(macro.arguments) == spec.param_names
    required = set(spec.parameters.get("required", []))
    optional = {name: None for name in spec.param_names if name not in required}
    assert _macro_defaults(verbaliser, env)[tool] == optional


def test_no_macro_without_a_tool(verbaliser: Verbaliser) -> None:
    for env, cls in ENVIRONMENTS.items():
        module = verbaliser._module(env)
        macros = {name for name in dir(module) if not name.startswith("_")}
        assert macros <= set(cls.tool_specs()), f"{env}: {macros - set(cls.tool_specs())}"


# --- every macro renders every literal it is given, and no tool name --------------------------

_counter = itertools.count(1)


def _sample(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "$ref" in schema:
        return _sample(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        branch = next(b for b in schema["anyOf"] if b.get("type") != "null")
        return _sample(branch, defs)
    if "enum" in schema:
        return schema["enum"][-1]
    n = next(_counter)
    kind = schema.get("type")
    if kind == "string":
        return f"val{n}x"
    if kind == "integer":
        return 40 + n
    if kind == "number":
        return 3.25 + n
    if kind == "boolean":
        return n % 2 == 0
    if kind == "array":
        items = schema.get("items", {})
        if "enum" in items:
            return list(items["enum"])
        return [_sample(items, defs), _sample(items, defs)]
    if kind == "object":
        props = schema.get("properties", {})
        return {key: _sample(value, defs) for key, value in props.items()}
    raise AssertionError(f"no sample for {schema}")


def _literals(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _literals(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _literals(item)]
    return [value]


def _sample_arguments(env: str, tool: str, optional: bool) -> dict[str, Any]:
    spec = ENVIRONMENTS[env].tool_specs()[tool]
    required = set(spec.parameters.get("required", []))
    defs = spec.parameters.get("$defs", {})
    props = spec.parameters.get("properties", {})
    return {
        name: _sample(props[name], defs)
        for name in spec.param_names
        if optional or name in required
    }


@pytest.mark.parametrize("optional", [True, False], ids=["all_args", "required_only"])
def test_every_macro_grounds_its_literals(verbaliser: Verbaliser, optional: bool) -> None:
    for env, tool in TOOLS:
        spec = ENVIRONMENTS[env].tool_specs()[tool]
        props = spec.parameters.get("properties", {})
        arguments = _sample_arguments(env, tool, optional)
        call = Call(id="s1", tool=f"{env}.{tool}", arguments=arguments)
        text = verbaliser.phrase(call)
        where = f"{env}.{tool}: {text!r}"
        assert text and text == text.strip() and text[0].islower(), where
        assert "None" not in text and "\n" not in text, where
        assert api_names_in(text, [env]) == [], where
        for name, value in arguments.items():
            if "enum" in props[name] or "enum" in props[name].get("items", {}):
                continue  # an API choice: may be put in words
            for literal in _literals(value):
                if isinstance(literal, bool) or literal is None:
                    continue
                shown = format_number(literal) if isinstance(literal, int | float) else literal
                assert str(shown) in text, f"{where} lacks {name}={literal!r}"


def test_every_macro_reads_with_references(verbaliser: Verbaliser) -> None:
    for env, tool in TOOLS:
        arguments = _sample_arguments(env, tool, optional=True)
        # booleans never come from an output (too easily equal by chance)
        refs = {
            name: Ref(1, name, path=f"out_{name}", consumer_index=2)
            for name, value in arguments.items()
            if not isinstance(value, bool)
        }
        call = Call(id="s2", tool=f"{env}.{tool}", arguments=arguments)
        text = verbaliser.phrase(call, refs)
        for name in refs:
            for literal in _literals(arguments[name]):
                if isinstance(literal, str) and literal.startswith("val"):
                    assert literal not in text, f"{env}.{tool}: {text!r} shows {literal!r}"
        assert "from the previous step" in text or not refs, f"{env}.{tool}: {text!r}"
        assert api_names_in(text, [env]) == [], f"{env}.{tool}: {text!r}"


# --- every seed, verbalised, still passes validation -----------------------------------------


@pytest.mark.parametrize("seed", SEEDS, ids=[seed.id for seed in SEEDS])
def test_verbalised_seed_is_accepted(verbaliser: Verbaliser, seed: Task) -> None:
    task = verbalise(seed, verbaliser)
    if task is None:  # a condition the calls cannot say is not verbalised
        assert control_edges(seed.question, seed.calls)
        return
    verdict = validate_task(task)
    assert verdict.accepted, f"{task.question!r}: {verdict.rejection}"
    assert task.question != seed.question
    assert task.id == task.content_id() != seed.id
    assert task.initial_config == seed.initial_config
    # the same calls and bindings; an edge may go only where the new wording states the value
    assert [(c.tool, c.arguments, c.bindings) for c in task.calls] == [
        (c.tool, c.arguments, c.bindings) for c in seed.calls
    ]
    assert task.expected is None
    assert task.lineage.parents == [seed.id]
    assert task.lineage.operator == "verbalise"
    assert task.lineage.round == seed.lineage.round + 1
    assert task.lineage.source == seed.lineage.source


# --- bound arguments are references, not values -----------------------------------------------


def _seed(seed_id: str) -> Task:
    return next(seed for seed in SEEDS if seed.id == seed_id)


def test_bound_argument_renders_as_reference(verbaliser: Verbaliser) -> None:
    seed = _seed("b9279f0ec4320861")  # get_user_id, then send_message to the id it returned
    assert seed.calls[1].bindings == {"receiver_id": "s1.user_id"}
    question = verbaliser.question(seed.calls)
    assert "USR004" not in question
    assert "send the user from the previous step the message" in question
    assert "'The build is green again.'" in question


def test_bound_list_element_renders_as_reference(verbaliser: Verbaliser) -> None:
    calls = [
        Call(id="a", tool="trading.get_symbol_by_name", arguments={"name": "Zeta Corp"}),
        Call(id="b", tool="trading.get_current_time"),
        Call(
            id="c",
            tool="trading.filter_stocks_by_price",
            arguments={"stocks": ["ZETA", "AAPL"], "min_price": 10, "max_price": 99.5},
            depends_on=["a"],
            bindings={"stocks.0": "a.symbol"},
        ),
    ]
    question = verbaliser.question(calls)
    assert question.startswith("First, look up the ticker symbol of 'Zeta Corp'; then ")
    assert "finally tell me which of the symbol from the first step and AAPL are priced" in question
    assert "ZETA" not in question and "$99.5" in question and question.endswith(".")


def test_reference_wording() -> None:
    assert str(Ref(1, "number", path="result", consumer_index=2)) == (
        "the result of the previous step"
    )
    assert str(Ref(1, "a", consumer_index=3)) == "the result of the first step"
    assert str(Ref(2, "content", path="matching_lines.0", consumer_index=3)) == (
        "the first matching line from the previous step"
    )
    assert str(Ref(1, "tweet_id", path="id")) == "the tweet id from the first step"
    ticket = Ref(1, "ticket_id", path="id", consumer_index=2)
    assert ticket.about("ticket") == "the ticket from the previous step"
    receiver = Ref(1, "receiver_id", path="results.0.receiver_id", consumer_index=2)
    assert receiver.about("user") == "the receiver of the first result from the previous step"


def test_single_call_question(verbaliser: Verbaliser) -> None:
    call = Call(id="s1", tool="filesystem.cd", arguments={"folder": "docs"})
    assert verbaliser.question([call]) == "Go into the folder 'docs'."


# --- clear errors ------------------------------------------------------------------------------


def test_missing_macro_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "maths.j2").write_text(
        "{% macro add(a, b) %}add {{ a }} and {{ b }}{% endmacro %}\n", encoding="utf-8"
    )
    verbaliser = Verbaliser(tmp_path)
    assert verbaliser.phrase(Call(id="s1", tool="maths.add", arguments={"a": 2, "b": 3})) == (
        "add 2 and 3"
    )
    with pytest.raises(KeyError, match=r"no verbalise macro for tool 'maths.multiply'"):
        verbaliser.phrase(Call(id="s1", tool="maths.multiply", arguments={"a": 2, "b": 3}))
    with pytest.raises(KeyError, match=r"no verbalise template for environment 'filesystem'"):
        verbaliser.phrase(Call(id="s1", tool="filesystem.pwd"))


def test_unknown_argument_is_a_clear_error(verbaliser: Verbaliser) -> None:
    call = Call(id="s1", tool="maths.add", arguments={"a": 2, "b": 3, "c": 4})
    with pytest.raises(ValueError, match=r"takes a, b; step s1 passes c"):
        verbaliser.phrase(call)


def test_a_value_the_new_wording_states_is_not_waited_for(verbaliser: Verbaliser) -> None:
    # the conversion's result, rounded, was the fill amount; the new question states 10.04
    task = Task(
        id="pending",
        category="vehicle",
        envs=["vehicle"],
        question="Convert 38 liters to gallons, then fill the tank with that, to 2 decimals.",
        initial_config={},
        calls=[
            Call(id="s1", tool="vehicle.liter_to_gallon", arguments={"liter": 38}),
            Call(
                id="s2",
                tool="vehicle.fillFuelTank",
                arguments={"fuelAmount": 10.04},
                depends_on=["s1"],
            ),
        ],
    ).with_content_id()
    assert validate_task(task).accepted
    verbalised = verbalise(task, verbaliser)
    assert verbalised is not None and "10.04" in verbalised.question
    assert verbalised.calls[1].depends_on == []
    assert validate_task(verbalised).accepted


def test_a_conditional_task_is_not_verbalised(verbaliser: Verbaliser) -> None:
    task = next(seed for seed in SEEDS if control_edges(seed.question, seed.calls))
    assert verbalise(task, verbaliser) is None
