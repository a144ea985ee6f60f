"""References to earlier outputs read like a person wrote them: a list taken whole is that list,
an entry of a listing is "the third file listed", a text named by its format is not followed by
the format again."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.evolve.verbalise import Ref, Verbaliser, verbalise
from pipeline.models import Call, Task
from pipeline.replay import replay


@pytest.fixture(scope="module")
def verbaliser() -> Verbaliser:
    return Verbaliser()


# --- 1. a list argument bound element by element to an earlier list ---------------------------

_WATCHLIST = ["TSLA", "MSFT", "NVDA", "NEPT"]
_TRADING: dict[str, Any] = {
    "authenticated": True,
    "market_status": "Closed",
    "stocks": {
        "AAPL": {
            "price": 227.16,
            "percent_change": 0.17,
            "volume": 2.552,
            "MA(5)": 227.16,
            "MA(20)": 227.16,
        },
        "TSLA": {
            "price": 667.92,
            "percent_change": -0.12,
            "volume": 1.654,
            "MA(5)": 667.92,
            "MA(20)": 667.92,
        },
        "MSFT": {
            "price": 310.23,
            "percent_change": 0.09,
            "volume": 3.234,
            "MA(5)": 310.23,
            "MA(20)": 310.23,
        },
        "NVDA": {
            "price": 220.34,
            "percent_change": 0.34,
            "volume": 1.234,
            "MA(5)": 220.34,
            "MA(20)": 220.34,
        },
        "NEPT": {
            "price": 88.34,
            "percent_change": 0.19,
            "volume": 0.654,
            "MA(5)": 88.34,
            "MA(20)": 88.34,
        },
    },
    "watch_list": _WATCHLIST,
}


def _watch_task(stocks: list[str], bindings: dict[str, str]) -> Task:
    calls = [
        Call(id="s1", tool="trading.get_watchlist"),
        Call(
            id="s2",
            tool="trading.notify_price_change",
            arguments={"stocks": stocks, "threshold": 0.15},
            depends_on=["s1"],
            bindings=bindings,
        ),
    ]
    task = Task(
        id="t",
        category="trading",
        envs=["trading"],
        question="Do the steps.",
        initial_config={"trading": _TRADING},
        calls=calls,
    )
    assert replay(task).ok
    return task


def _element_bindings(count: int, indices: list[int] | None = None) -> dict[str, str]:
    return {
        f"stocks.{slot}": f"s1.watchlist.{index}"
        for slot, index in enumerate(indices if indices is not None else range(count))
    }


def test_a_list_taken_whole_reads_as_that_list(verbaliser: Verbaliser) -> None:
    task = _watch_task(list(_WATCHLIST), _element_bindings(4))
    verbalised = verbalise(task, verbaliser)
    assert verbalised is not None
    question = verbalised.question
    assert (
        "then tell me which stocks in the watch list from the previous step are up or down by "
        "0.15% or more." in question
    ), question
    for old in ("the first stock symbol", "fourth", "TSLA"):
        assert old not in question, question
    # the same from the calls and their outputs
    outputs = [outcome.result for outcome in replay(task).outcomes]
    assert verbaliser.question(task.calls, outputs) == question


def test_without_outputs_a_bound_prefix_reads_compactly(verbaliser: Verbaliser) -> None:
    task = _watch_task(list(_WATCHLIST), _element_bindings(4))
    question = verbaliser.question(task.calls)  # no outputs: the list may be longer
    assert "tell me which of the first four stocks listed in the previous step are up" in question
    assert "the first stock symbol from" not in question
    assert question.count("previous step") == 1, question


def test_a_prefix_of_a_longer_list_is_not_the_whole_list(verbaliser: Verbaliser) -> None:
    task = _watch_task(_WATCHLIST[:3], _element_bindings(3))
    verbalised = verbalise(task, verbaliser)
    assert verbalised is not None
    question = verbalised.question
    assert "which of the first three stocks listed in the previous step are up" in question
    assert "watch list from" not in question


def test_some_bound_elements_keep_their_ordinals_joined(verbaliser: Verbaliser) -> None:
    task = _watch_task(["TSLA", "NVDA", "AAPL"], _element_bindings(2, [0, 2]))
    verbalised = verbalise(task, verbaliser)
    assert verbalised is not None
    question = verbalised.question
    assert "which of the first and third stocks listed in the previous step and AAPL are" in (
        question
    ), question
    assert "the first stock listed in the previous step," not in question


def test_elements_of_a_list_with_no_type_are_grouped_by_its_key(verbaliser: Verbaliser) -> None:
    calls = [
        Call(id="s1", tool="string_manipulation.split_text", arguments={"text": "a;b;c"}),
        Call(
            id="s2",
            tool="string_manipulation.join_parts",
            arguments={"parts": ["b", "c"], "separator": "-"},
            depends_on=["s1"],
            bindings={"parts.0": "s1.parts.1", "parts.1": "s1.parts.2"},
        ),
    ]
    question = verbaliser.question(calls)
    assert "join the second and third parts from the previous step into one text" in question


# --- 2. an entry of a listing of named things -------------------------------------------------


def _listed(step: str, index: int) -> str:
    return f"{step}.current_directory_content.{index}"


def test_an_entry_of_a_listing_reads_as_the_thing_listed(verbaliser: Verbaliser) -> None:
    calls = [
        Call(id="s1", tool="filesystem.ls"),
        Call(
            id="s2",
            tool="filesystem.sort",
            arguments={"file_name": "c.txt"},
            depends_on=["s1"],
            bindings={"file_name": _listed("s1", 2)},
        ),
        Call(
            id="s3",
            tool="filesystem.tail",
            arguments={"file_name": "c.txt"},
            depends_on=["s1"],
            bindings={"file_name": _listed("s1", 2)},
        ),
        Call(
            id="s4",
            tool="filesystem.wc",
            arguments={"file_name": "b.txt", "mode": "l"},
            depends_on=["s1"],
            bindings={"file_name": _listed("s1", 1)},
        ),
    ]
    question = verbaliser.question(calls)
    assert (
        "then show me the lines of the third file listed in the previous step in sorted order; "
        "then show me the end of the third file listed in the first step; "
        "finally count the lines in the second file listed in the first step."
    ) in question, question
    assert "file name" not in question


def test_a_listed_document_is_not_named_by_itself(verbaliser: Verbaliser) -> None:
    calls = [
        Call(id="s1", tool="data_format.list_documents"),
        Call(
            id="s2",
            tool="data_format.load_document",
            arguments={"name": "team"},
            depends_on=["s1"],
            bindings={"name": "s1.names.1"},
        ),
    ]
    question = verbaliser.question(calls)
    assert question.endswith("; then show me the second document listed in the previous step.")
    for old in ("named by", "document id"):
        assert old not in question, question


def test_a_name_that_is_not_a_listed_entry_keeps_its_noun() -> None:
    ref = Ref(1, "name", path="new_name", consumer_index=2, meaning="document id")
    assert ref.named("document") == "the document named by the new name from the previous step"


# --- 3. a text is named by its format, and the format is not repeated -------------------------

_NESTED = '{"server": {"host": "db.local"}, "debug": false}'
_KV = "server:\n  host: db.local\ndebug: false"


def test_a_converted_text_is_named_by_its_format(verbaliser: Verbaliser) -> None:
    calls = [
        Call(id="s1", tool="data_format.unflatten_record", arguments={"content": _NESTED}),
        Call(
            id="s2",
            tool="data_format.convert_format",
            arguments={"content": _NESTED, "source_format": "json", "target_format": "keyvalue"},
            depends_on=["s1"],
            bindings={"content": "s1.content"},
        ),
        Call(
            id="s3",
            tool="data_format.save_document",
            arguments={"name": "config", "content": _KV, "source_format": "keyvalue"},
            depends_on=["s2"],
            bindings={"content": "s2.content"},
        ),
    ]
    question = verbaliser.question(calls)
    assert "then convert the JSON text from the previous step to the key/value format;" in question
    assert "finally save the key/value text from the previous step as the document 'config'." in (
        question
    )
    for old in ("(JSON)", "(key/value)", "document's text"):
        assert old not in question, question


def test_only_a_loaded_document_has_a_documents_text(verbaliser: Verbaliser) -> None:
    calls = [
        Call(id="s1", tool="data_format.load_document", arguments={"name": "budget"}),
        Call(
            id="s2",
            tool="data_format.convert_format",
            arguments={"content": "a,b\n1,2", "source_format": "csv", "target_format": "json"},
            depends_on=["s1"],
            bindings={"content": "s1.content"},
        ),
        Call(
            id="s3",
            tool="data_format.convert_document",
            arguments={"name": "budget", "target_format": "csv", "new_name": "budget_csv"},
        ),
        Call(
            id="s4",
            tool="data_format.extract_field",
            arguments={"content": "a,b\n1,2", "path": "0.a", "source_format": "csv"},
            depends_on=["s3"],
            bindings={"content": "s3.content"},
        ),
    ]
    question = verbaliser.question(calls)
    # a loaded document's format is not in its noun, so it is still named
    assert "then convert the document's text from the previous step from CSV to JSON;" in question
    # a document converted to CSV gives CSV text, named once
    assert "finally get the value at '0.a' in the CSV text from the previous step." in question
    assert "(format: csv)" not in question and question.count("document's text") == 1


def test_a_value_only_one_step_gives_is_named_by_content() -> None:
    """``by_content``: the order only one call placed is "the order"; with two orders placed,
    or a value a path does not name ("the result"), the step stays in the words."""
    verbaliser = Verbaliser()
    place = {"order_type": "Buy", "symbol": "MSFT", "price": 310.23, "amount": 20}
    one = [
        Call(id="s1", tool="trading.place_order", arguments=place),
        _bound("trading.cancel_order", "order_id", 3001, "s1.order_id"),
    ]
    outputs = [o.result for o in replay(_task("trading", one)).outcomes]
    assert verbaliser.question(one, outputs).endswith(
        "then cancel the order from the previous step."
    )
    assert verbaliser.question(one, outputs, by_content=True).endswith("then cancel the order.")

    other = {**place, "symbol": "AAPL", "price": 227.16}
    two = [one[0], Call(id="s2", tool="trading.place_order", arguments=other), one[1]]
    two[2] = two[2].model_copy(update={"id": "s3"})
    outputs = [o.result for o in replay(_task("trading", two)).outcomes]
    assert "cancel the order from the first step" in verbaliser.question(two, outputs, True)

    maths = [
        Call(id="s1", tool="maths.multiply", arguments={"a": 7, "b": 6}),
        _bound("maths.round_number", "number", 42.0, "s1.result"),
    ]
    outputs = [o.result for o in replay(_task("maths", maths)).outcomes]
    # a calculation's result is named by what computed it (both llm107 readers called "the
    # result of the previous step" robotic); one no noun names keeps its step
    assert "then round the product to the nearest" in verbaliser.question(maths, outputs, True)
    powered = [
        Call(id="s1", tool="maths.power", arguments={"base": 2, "exponent": 3}),
        _bound("maths.round_number", "number", 8.0, "s1.result"),
    ]
    outputs = [o.result for o in replay(_task("maths", powered)).outcomes]
    assert "the result of the previous step" in verbaliser.question(powered, outputs, True)


def test_one_of_two_new_tickets_is_named_by_its_stated_title() -> None:
    """``by_content``: of two tickets opened, each is named by the title the request gave it,
    not by a step number a reader takes for a sentence number."""
    verbaliser = Verbaliser()
    login = {"username": "jdoe", "password": "Pa55word!"}
    calls = [
        Call(id="s1", tool="tickets.ticket_login", arguments=login),
        Call(id="s2", tool="tickets.create_ticket", arguments={"title": "Battery", "priority": 5}),
        Call(id="s3", tool="tickets.create_ticket", arguments={"title": "Mouse", "priority": 1}),
        Call(
            id="s4", tool="tickets.close_ticket", arguments={"ticket_id": 18},
            depends_on=["s3"], bindings={"ticket_id": "s3.id"},
        ),
        Call(
            id="s5", tool="tickets.edit_ticket",
            arguments={"ticket_id": 17, "updates": {"priority": 4}},
            depends_on=["s2"], bindings={"ticket_id": "s2.id"},
        ),
    ]  # fmt: skip
    config = {"tickets": {"ticket_queue": [], "ticket_counter": 17, "current_user": None}}
    task = Task(
        id="t", category="tickets", envs=["tickets"], question="Do the steps.",
        initial_config=config, calls=calls,
    )  # fmt: skip
    outputs = [outcome.result for outcome in replay(task).outcomes]
    assert outputs[3] is not None and outputs[4] is not None
    question = verbaliser.question(calls, outputs, by_content=True)
    assert "then close the ticket with title 'Mouse';" in question
    assert "finally change the ticket with title 'Battery':" in question
    # without by_content, the offline wording keeps its step numbers
    assert "change the ticket from the second step" in verbaliser.question(calls, outputs)
    # a title both tickets share tells neither apart
    same = [calls[0], calls[1], calls[2].model_copy(update={"arguments": calls[1].arguments})]
    same += calls[3:]
    outputs = [
        outcome.result for outcome in replay(task.model_copy(update={"calls": same})).outcomes
    ]
    assert "change the ticket from the second step" in verbaliser.question(same, outputs, True)


def _bound(tool: str, argument: str, value: Any, source: str) -> Call:
    """Step s2: ``tool`` with its one ``argument`` taken from ``source``."""
    producer = source.partition(".")[0]
    return Call(
        id="s2", tool=tool, arguments={argument: value}, depends_on=[producer],
        bindings={argument: source},
    )  # fmt: skip


def _task(env: str, calls: list[Call]) -> Task:
    config = {"trading": _TRADING} if env == "trading" else {}
    return Task(
        id="t", category=env, envs=[env], question="Do the steps.", initial_config=config,
        calls=calls,
    )  # fmt: skip


def _feet(step: str, value: float) -> Call:
    return Call(
        id=step, tool="maths.imperial_si_conversion",
        arguments={"value": value, "unit_in": "feet", "unit_out": "meters"},
    )  # fmt: skip


def _both(tool: str, a: str, b: str, values: dict[str, float], step: str = "s3") -> Call:
    return Call(
        id=step, tool=tool, arguments=values, depends_on=sorted({a, b}),
        bindings={"a": f"{a}.result", "b": f"{b}.result"},
    )  # fmt: skip


def test_the_two_results_just_before_an_addition_read_as_such() -> None:
    """Both llm127 readers: "finally add the 12.5 feet in meters and the 10 feet in meters",
    right after both conversions, read as template text. The two results of the two steps
    just before an addition or a product are "the two results"; an order that matters, or a
    value from further back, keeps each name."""
    verbaliser = Verbaliser()
    converted = {"a": 3.81, "b": 3.048}

    def said(calls: list[Call]) -> str:
        outputs = [o.result for o in replay(_task("maths", calls)).outcomes]
        return verbaliser.question(calls, outputs, by_content=True)

    pair = [_feet("s1", 12.5), _feet("s2", 10)]
    assert said([*pair, _both("maths.add", "s1", "s2", converted)]).endswith(
        "then convert 10 feet to meters; finally add the two results."
    )
    assert said([*pair, _both("maths.multiply", "s2", "s1", converted)]).endswith(
        "finally multiply the two results."
    )
    assert said([*pair, _both("maths.subtract", "s1", "s2", converted)]).endswith(
        "finally subtract the 10 feet in meters from the 12.5 feet in meters."
    )
    further = [*pair, _feet("s3", 4), _both("maths.add", "s1", "s2", converted, step="s4")]
    assert "add the 12.5 feet in meters and the 10 feet in meters" in said(further)
    computed = [
        Call(id="s1", tool="maths.add", arguments={"a": 2, "b": 3}),
        Call(id="s2", tool="maths.multiply", arguments={"a": 2, "b": 3}),
        _both("maths.add", "s1", "s2", {"a": 5, "b": 6}),
    ]
    assert said(computed).endswith("finally add the sum and the product.")


def test_an_order_at_a_quoted_price_reads_as_its_current_price() -> None:
    """Both llm131 readers: "place a buy order for 10 shares of NVDA at the price of NVDA per
    share" reads as a template slot. The price a quote of the same stock gave is "its current
    price"; a price of another stock keeps its name, a stated one its dollars."""
    verbaliser = Verbaliser()

    def said(quoted: str, symbol: str) -> str:
        price = _TRADING["stocks"][quoted]["price"]
        calls = [
            Call(id="s1", tool="trading.get_stock_info", arguments={"symbol": quoted}),
            Call(
                id="s2", tool="trading.place_order", depends_on=["s1"],
                arguments={"order_type": "Buy", "symbol": symbol, "price": price, "amount": 10},
                bindings={"price": "s1.price"},
            ),
        ]  # fmt: skip
        outputs = [o.result for o in replay(_task("trading", calls)).outcomes]
        return verbaliser.question(calls, outputs, by_content=True)

    assert said("NVDA", "NVDA").endswith("10 shares of NVDA at its current price.")
    assert said("MSFT", "NVDA").endswith("10 shares of NVDA at the price of MSFT.")
    stated = Call(
        id="s1", tool="trading.place_order",
        arguments={"order_type": "Buy", "symbol": "NVDA", "price": 220.34, "amount": 10},
    )  # fmt: skip
    assert verbaliser.question([stated]).endswith("at $220.34 per share.")


def test_a_field_the_car_reports_after_an_option_write_needs_no_step() -> None:
    """An llm137 reader: "convert the fuel level from the second step from gallons to liters",
    where the second step switched the engine off and no one asked to see the fuel level,
    reads as a leftover of how the task was built. The car has one fuel level."""
    calls = [
        Call(id="s1", tool="vehicle.pressBrakePedal", arguments={"pedalPosition": 1.0}),
        Call(id="s2", tool="vehicle.startEngine", arguments={"ignitionMode": "STOP"}),
        Call(id="s3", tool="vehicle.activateParkingBrake", arguments={"mode": "engage"}),
        Call(
            id="s4", tool="vehicle.gallon_to_liter", arguments={"gallon": 12.0},
            depends_on=["s2"], bindings={"gallon": "s2.fuelLevel"},
        ),
    ]  # fmt: skip
    running = {"vehicle": {"engine_state": "running", "fuelLevel": 12.0}}
    task = _task("vehicle", calls).model_copy(update={"initial_config": running})
    outputs = [o.result for o in replay(task).outcomes]
    assert outputs[1]["fuelLevel"] == 12.0
    said = Verbaliser().question(calls, outputs, by_content=True)
    assert said.endswith("finally convert the fuel level from gallons to liters."), said
    # a write given an amount changed the level it reports: "the resulting fuel level"
    filled = [
        Call(id="s1", tool="vehicle.fillFuelTank", arguments={"fuelAmount": 5.0}),
        Call(
            id="s2", tool="vehicle.gallon_to_liter", arguments={"gallon": 17.0},
            depends_on=["s1"], bindings={"gallon": "s1.fuelLevel"},
        ),
    ]  # fmt: skip
    task = task.model_copy(update={"calls": filled})
    outputs = [o.result for o in replay(task).outcomes]
    assert (
        Verbaliser()
        .question(filled, outputs, by_content=True)
        .endswith("then convert the resulting fuel level from gallons to liters.")
    )
