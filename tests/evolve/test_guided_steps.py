"""deepen and broaden choosing among steps checked by execution (``pipeline/evolve/options.py``),
through ``asynctool evolve`` against a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.envs import ENVIRONMENTS
from pipeline.evolve.extend import produced_values
from pipeline.evolve.options import broaden_options, deepen_options, verbaliser
from pipeline.jsonl import read_records
from pipeline.llm.fake_server import FakeOpenAIServer, FaultMix
from pipeline.models import Rejection, RejectionCode, Task
from pipeline.replay import replay
from pipeline.seeds import load_seeds
from tests.evolve.test_llm_operators import ADD_THEN_MULTIPLY, MILES, TICKET, operator_of, seed


def chosen(tool: str, question: str, **arguments: Any) -> dict[str, Any]:
    return {"new_call": {"tool": tool, "arguments": arguments}, "question": question}


def write_seed(tmp: Path, parent: Task) -> Path:
    tmp.mkdir(exist_ok=True)
    os.chdir(tmp)  # a cache of its own (./output/cache)
    seeds = tmp / "seeds.jsonl"
    seeds.write_text(parent.model_dump_json() + "\n", encoding="utf-8")
    return seeds


def evolve_argv(tmp: Path, seeds: Path, operator: str, url: str, *extra: str) -> list[str]:
    return [
        "evolve", "--inline", "--output", str(tmp), "--run-id", "r", "--seeds", str(seeds),
        "--rounds", "1", "--operators", operator, "--llm-base-url", url,
        "--llm-model", "fake-model", "--no-repair", *extra,
    ]  # fmt: skip


def made_by_llm(tmp: Path) -> list[Task]:
    evolved = read_records(tmp / "runs" / "r" / "evolved.jsonl", Task)
    return [task for task in evolved if task.lineage.operator != "seed"]


def run(
    tmp: Path,
    parent: Task,
    operator: str,
    answer: dict[str, Any],
    faults: FaultMix | None = None,
    *extra: str,
) -> tuple[list[Task], list[Rejection], FakeOpenAIServer]:
    seeds = write_seed(tmp, parent)

    def reply(body: dict[str, Any]) -> str:
        assert operator_of(body) == operator
        return json.dumps(answer)

    server = FakeOpenAIServer(answer=reply, faults=faults)
    with server as url:
        assert main(evolve_argv(tmp, seeds, operator, url, *extra)) == 0
    rejected = list(read_records(tmp / "runs" / "r" / "evolve_rejected.jsonl", Rejection))
    return made_by_llm(tmp), rejected, server


@pytest.fixture(autouse=True)
def _restore_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_every_offered_step_takes_an_earlier_result_and_checked_ones_run() -> None:
    for parent in (seed(TICKET), seed(ADD_THEN_MULTIPLY)):
        for option in deepen_options(parent) + broaden_options(parent):
            call = option.calls(parent, dict(option.fixed))[-1]
            outputs = [o.result for o in replay(parent).outcomes[: option.kept]]
            produced = json.dumps(outputs)
            assert any(json.dumps(v) in produced for v in option.fixed.values()), option
            if not option.checked:  # a value the user states needs no earlier result
                assert not any(str(v) in parent.question for v in option.fixed.values()), option
            if option.checked:
                extended = parent.model_copy(update={"calls": option.calls(parent, call.arguments)})
                assert replay(extended).ok
    # broaden turns away from the parent's next tool; deepen keeps every call
    parent = seed(ADD_THEN_MULTIPLY)
    assert all(o.kept == len(parent.calls) for o in deepen_options(parent))
    for option in broaden_options(parent):
        assert option.tool != parent.calls[option.kept].tool


def test_deepen_with_a_chosen_step_is_accepted_and_the_grammar_offers_only_the_steps(
    tmp_path: Path,
) -> None:
    parent = seed(TICKET)
    answer = chosen(
        "get_ticket",
        "Open a ticket titled 'Duplicate invoice received' with priority 2, and then close that"
        " new ticket right away since billing already fixed it. Then fetch the ticket so I can"
        " check that it is closed.",
        ticket_id=230,
    )
    made, rejected, server = run(tmp_path, parent, "deepen", answer)
    assert rejected == [] and len(made) == 1
    *kept, added = made[0].calls
    assert [c.arguments for c in kept] == [c.arguments for c in parent.calls]
    assert added.tool == "tickets.get_ticket" and added.bindings == {"ticket_id": "s1.id"}
    # the only ticket needs no step named: the model's words stand
    assert made[0].lineage.words == "model" and made[0].question == answer["question"]
    (body,) = server.bodies
    prompt = body["messages"][-1]["content"]
    assert '1. {"tool": "get_ticket", "arguments": {"ticket_id": 230}}' in prompt
    assert '"resolution": <your value>' in prompt, "a free argument is a marked blank"
    schema = body["response_format"]["json_schema"]["schema"]
    branches = schema["properties"]["new_call"]["anyOf"]
    fixed = [b["properties"]["arguments"]["properties"]["ticket_id"] for b in branches]
    assert fixed == [{"const": 230}] * len(branches), "the earlier result is fixed"
    resolve = next(b for b in branches if b["properties"]["tool"] == {"const": "resolve_ticket"})
    assert resolve["properties"]["arguments"]["properties"]["resolution"] == {"type": "string"}


def test_a_request_that_does_not_ask_for_the_step_gets_the_steps_words(tmp_path: Path) -> None:
    """The chosen step is right by construction; where the model's words miss it, the words
    code writes for the step take their place, and the lineage says so. The prompt shows
    those words under the step, so the model can copy them."""
    parent = seed(ADD_THEN_MULTIPLY)
    answer = chosen(
        "round_number", f"{parent.question} Then do one more thing with it.", number=15.5
    )
    made, rejected, server = run(tmp_path, parent, "deepen", answer)
    assert rejected == []
    (task,) = made
    assert task.lineage.words == "code" and task.lineage.operator == "deepen"
    assert task.question.startswith(parent.question + " Then round ")
    assert "one more thing" not in task.question
    assert task.calls[-1].tool == "maths.round_number"
    assert task.calls[-1].bindings == {"number": "s2.result"}
    prompt = server.bodies[0]["messages"][-1]["content"]
    assert 'in words: "round the product to' in prompt

    # the model's words stay where they ask for the step and do not name another step as its
    # input; the product is the one product, so "that product" names it
    for words, whose in [
        ("Then round the result of the previous step to a whole number.", "model"),
        ("Then round that product to a whole number.", "model"),
        ("Then round the result of the first step to a whole number.", "code"),
        ("Then round that quotient to a whole number.", "code"),
    ]:
        worded = chosen("round_number", f"{parent.question} {words}", number=15.5)
        made, rejected, _ = run(tmp_path / f"{whose}{len(words)}", parent, "deepen", worded)
        assert rejected == [] and [t.lineage.words for t in made] == [whose], words
        assert (made[0].question == worded["question"]) == (whose == "model")


def test_one_of_two_tickets_is_named_by_its_title_or_its_step(tmp_path: Path) -> None:
    """Where one sentence opened two tickets, "the ticket from the first step" reads as that
    sentence (run llm25): code's words name the ticket by its title, and the model's words
    stand where they name the title or the step."""
    parent = seed(("tickets", "d07830877279f5e1"))  # Open two tickets: ... Then close one
    ticket = next(c.arguments["ticket_id"] for c in parent.calls if c.function == "close_ticket")
    other = ticket - 1
    for words, whose in [
        ("Then close the 'Laptop battery swelling' ticket as well.", "model"),
        ("Then close the ticket from the first step as well.", "model"),
        ("Then close the other ticket as well.", "code"),
    ]:
        worded = chosen("close_ticket", f"{parent.question} {words}", ticket_id=other)
        made, rejected, _ = run(tmp_path / f"{whose}{len(words)}", parent, "deepen", worded)
        assert rejected == [] and [t.lineage.words for t in made] == [whose], words
        if whose == "code":
            assert made[0].question.endswith(
                "Then close the ticket with title 'Laptop battery swelling'."
            )


def test_a_value_the_model_fills_with_a_stand_in_is_rejected(tmp_path: Path) -> None:
    """A free value must be one a person would give: "New title for ..." as a ticket's new
    title (run llm25) or a slot is rejected with its reason; a real value is kept."""
    parent = seed(TICKET)
    asked = f"{parent.question} Then rename the ticket from the first step to "
    for updates, code in [
        ({"title": "New title for duplicate invoice"}, RejectionCode.EVOLVE_PLACEHOLDER_VALUE),
        ({"title": "<new title>"}, RejectionCode.EVOLVE_PLACEHOLDER_VALUE),
        ({"title": "Invoice sent twice"}, None),
    ]:
        title = updates["title"]
        answer = chosen("edit_ticket", f"{asked}'{title}'.", ticket_id=230, updates=updates)
        made, rejected, _ = run(tmp_path / str(len(title)), parent, "deepen", answer)
        placeholder = [r for r in rejected if r.code is RejectionCode.EVOLVE_PLACEHOLDER_VALUE]
        if code is None:
            assert placeholder == [] and [t.calls[-1].arguments["updates"] for t in made] == [
                updates
            ]
        else:
            assert made == [] and len(placeholder) == 1, title
            assert "title" in placeholder[0].message and title in placeholder[0].message


def test_rows_that_share_a_found_value_are_a_checked_step(tmp_path: Path) -> None:
    """A value in a row an earlier step found feeds no tool by its type, but the same column of
    the same table means the same thing: "everyone in Priya Nair's department" is offered,
    runs, and binds to the row; a filter on the column the step itself matched on is not."""
    parent = seed(("data_management", "ad69bf60757488d4"))  # Find the row of 'Priya Nair' ...
    option = next(o for o in deepen_options(parent) if o.function == "select_rows")
    assert option.checked
    assert option.fixed == {"table": "staff", "where_column": "department", "where_value": "Sales"}
    assert all(o.fixed.get("where_column") != "name" for o in deepen_options(parent))
    answer = chosen(
        "select_rows",
        f"{parent.question} Then show me every row of 'staff' in the same department as"
        " the row found in the first step.",
        **option.fixed,
    )
    made, rejected, _ = run(tmp_path, parent, "deepen", answer)
    # "every row" names select_rows as "rows" does: the model's words stand
    assert rejected == [] and [t.lineage.words for t in made] == ["model"]
    added = made[0].calls[-1]
    assert added.bindings == {"where_value": "s1.rows.0.department"}
    assert [row["name"] for row in replay(made[0]).outcomes[-1].result["rows"]] == [
        "Ben Okafor",
        "Priya Nair",
    ]


def test_a_write_given_a_purpose_of_checking_gets_code_words(tmp_path: Path) -> None:
    """Run llm26: "Then, cancel the order to verify that everything was done correctly" -
    cancelling checks nothing, and both readers failed it. A read may have that purpose. Nor
    may the words number the step they add."""
    parent = seed(TICKET)
    for tool, words, whose in [
        ("edit_ticket", "Then set the priority of that ticket to 4 to verify it worked.", "code"),
        # run llm27: a label that numbers the last step as the first
        ("edit_ticket", "First step: set the priority of that ticket to 4.", "code"),
        # run llm31: the same label in a sentence
        ("edit_ticket", "The first step was to set the priority of that ticket to 4.", "code"),
        # run llm31: an action no call does ("use it in a new request")
        ("get_ticket", "Then fetch that ticket and use it in a new request.", "code"),
        ("get_ticket", "Then fetch that ticket and show it to me.", "model"),
        ("edit_ticket", "Then set the priority of that ticket to 4.", "model"),
        ("get_ticket", "Then fetch that ticket to verify it is closed.", "model"),
    ]:
        arguments: dict[str, Any] = {"ticket_id": 230}
        if tool == "edit_ticket":
            arguments["updates"] = {"priority": 4}
        worded = chosen(tool, f"{parent.question} {words}", **arguments)
        made, rejected, _ = run(tmp_path / f"{whose}{len(words)}", parent, "deepen", worded)
        assert rejected == [] and [t.lineage.words for t in made] == [whose], words
        assert ("verify" in made[0].question) == (whose == "model" and "verify" in words)


def test_no_step_takes_back_a_write_of_the_request(tmp_path: Path) -> None:
    """Run llm28: "send her a note ... Then delete the latest message sent to the user" undoes
    the request; the deletion leaves the message count as it was, so only counters differ.
    With no other step, the parent gets evolve.no_step and no request."""
    parent = seed(("messaging", "54db8c3f34ed3641"))  # Add Priya Nair ... send her a note
    assert deepen_options(parent) == []
    assert [o.tool for o in broaden_options(parent)] == ["messaging.list_users"]  # observes
    made, rejected, server = run(tmp_path, parent, "deepen", {"give_up": True})
    assert made == [] and server.bodies == []
    assert [r.code for r in rejected] == [RejectionCode.EVOLVE_NO_STEP]


def test_broaden_may_turn_to_a_read_that_shows_what_a_kept_write_changed(
    tmp_path: Path,
) -> None:
    """A seed whose results feed no step (run llm29: 16 parents without a step) may still
    broaden: keep "add Priya Nair to my contacts" and show the users, the new contact among
    them. A read that only needs a log-in's session is no such step."""
    parent = seed(("messaging", "54db8c3f34ed3641"))
    (option,) = broaden_options(parent)
    assert option.kept == 1 and option.fixed == {} and option.checked
    assert "Priya Nair" in json.dumps(option.result)
    answer = chosen("list_users", "Add Priya Nair to my contacts, then show me all the users.")
    made, rejected, _ = run(tmp_path, parent, "broaden", answer)
    assert rejected == [] and [[c.tool for c in t.calls] for t in made] == [
        ["messaging.add_contact", "messaging.list_users"]
    ]
    logged_in = seed(("posting", "e5431ce8034a8a6d"))  # Log in as dana_w ..., unfollow bob
    for option in broaden_options(logged_in):
        if not option.fixed:
            kept = logged_in.calls[: option.kept]
            assert any(c.tool != "posting.authenticate_twitter" for c in kept), option


def test_code_words_name_a_value_by_its_meaning_or_keep_its_step() -> None:
    """By content: the loaded text is "the document's text" where the only other text is JSON
    (run llm28: "the document's text from the second step" read as the second sentence); a
    bare field keeps its owner or its step ("the symbol" alone read as a blank, run llm28)."""
    settings = seed(("data_format", "70a341fe8b957ef0"))  # set font.size; open and convert
    # (parsing a JSON text already shown tells nothing: the model must choose a format)
    words = {
        o.function: o.words(
            settings,
            {**{f: "json" for f in o.free if f == "source_format"}, **o.fixed},
            verbaliser(),
        )
        for o in deepen_options(settings)
    }
    assert words["parse_data"] == "parse the document's text as JSON into structured data"
    assert words["flatten_record"] is not None and "the JSON text into" in words["flatten_record"]
    order = seed(("trading", "2d463e24bd4e3a47"))  # Cancel my pending order 4410 ...
    quote = next(o for o in deepen_options(order) if o.function == "get_stock_info")
    # its owner, asked for by a stated id, says whose symbol (one llm101 reader: robotic step)
    assert quote.words(order, dict(quote.fixed), verbaliser()) == (
        "show me the latest quote for the symbol of order 4410"
    )
    # an element of a list keeps its step: "the first ticket" alone, first of which? (llm30);
    # the one an earlier call took already is the same one (llm109)
    tickets = seed(("tickets", "77607f8fb4b992ba"))  # Find my one Open ticket and close it
    show = next(o for o in deepen_options(tickets) if o.function == "get_ticket")
    assert show.words(tickets, dict(show.fixed), verbaliser()) == ("show me the same ticket")
    # a new contact is named by the name the request gave it, not "the user" (run llm28)
    contact = seed(("messaging", "54db8c3f34ed3641"))  # Add Priya Nair ... send her a note
    outputs = [outcome.result for outcome in replay(contact).outcomes]
    assert "then send the user 'Priya Nair' the message" in verbaliser().question(
        contact.calls, outputs, by_content=True
    )


def test_code_words_stand_for_a_step_whose_name_they_do_not_use(tmp_path: Path) -> None:
    """Run llm28c: code's "show me the latest quote" for get_stock_info was held to the tool's
    name ("stock") and the task rejected; and a broaden chain whose source format code never
    words ("the document's text" names it) was rejected for not naming its step."""
    order = seed(("trading", "2d463e24bd4e3a47"))  # Cancel my pending order 4410 ...
    answer = chosen("get_stock_info", f"{order.question} Then do it.", symbol="NVDA")
    made, rejected, _ = run(tmp_path / "quote", order, "deepen", answer)
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    assert made[0].question.endswith("Then show me the latest quote for the symbol of order 4410.")
    settings = seed(("data_format", "70a341fe8b957ef0"))  # set font.size; open and convert
    option = next(o for o in broaden_options(settings) if o.function == "parse_data")
    answer = chosen("parse_data", "Handle the settings.", **option.fixed)
    made, rejected, _ = run(tmp_path / "parse", settings, "broaden", answer)
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    assert made[0].question.endswith("finally parse the document's text into structured data.")


def test_a_step_the_model_makes_pointless_is_not_deeper(tmp_path: Path) -> None:
    """Run llm29: an arithmetic sequence of 1 value "going up by 5 each time" returns its start,
    a value an earlier step gave; both readers failed it. Four values are new."""
    parent = seed(("data_generation", "0dbbc5a15a54089f"))  # Draw 6 random prices ...
    total = replay(parent).outcomes[-1].result["sum"]
    asked = f"{parent.question} Then generate an arithmetic sequence of {{n}} starting at the sum"
    for length, accepted in [(1, False), (4, True)]:
        question = asked.format(n=f"{length} value{'s' * (length > 1)}") + (
            " and going up by 5 each time."
        )
        answer = chosen("arithmetic_sequence", question, start=total, step=5, length=length)
        made, rejected, _ = run(tmp_path / str(length), parent, "deepen", answer)
        assert [t.calls[-1].arguments["length"] for t in made] == ([length] if accepted else [])
        if not accepted:
            assert [r.code for r in rejected] == [RejectionCode.EVOLVE_NOT_DEEPER]
            assert "only values already known" in rejected[0].message


def test_broaden_shows_the_whole_request_for_each_checked_goal(tmp_path: Path) -> None:
    parent = seed(TICKET)
    options = broaden_options(parent)
    assert options, "the ticket seed has other goals"
    made, _, server = run(tmp_path, parent, "broaden", {"give_up": True})
    prompt = server.bodies[0]["messages"][-1]["content"]
    for option in options:
        if option.checked:
            words = option.words(parent, dict(option.fixed), verbaliser())
            assert words and f'as a request: "{words}"' in prompt
            assert words.startswith("First, ") or words[0].isupper()


def test_a_model_written_step_must_be_asked_for_too(tmp_path: Path) -> None:
    """With --free-steps the model writes the new calls; the added words must still ask for
    each (run llm19: a conversion appended to an unchanged request)."""
    parent = seed(ADD_THEN_MULTIPLY)
    answer = {
        "new_calls": [{"tool": "square_root", "arguments": {"number": 15.5, "precision": 2}}],
        "question": parent.question,
    }
    made, rejected, _ = run(tmp_path, parent, "deepen", answer, None, "--free-steps")
    assert made == [] and [r.code for r in rejected] == [RejectionCode.EVOLVE_STEP_UNASKED]


def test_broaden_that_still_asks_for_a_dropped_step_gets_the_chains_words(tmp_path: Path) -> None:
    parent = seed(ADD_THEN_MULTIPLY)  # add 3.5 and 4.25, then multiply that sum by 2
    still = chosen(
        "add", "Add 3.5 and 4.25, then multiply that sum by 2, and add 10 to the sum.", a=7.75, b=10
    )
    made, rejected, _ = run(tmp_path, parent, "broaden", still)
    # the model's words ask for the dropped multiplication: code's words for the chain replace
    # them, and they ask for the kept addition and the new one only
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    assert "multiply" not in made[0].question and "10" in made[0].question

    good = chosen("add", "Add 3.5 and 4.25, then add 10 to that sum.", a=7.75, b=10)
    made, rejected, _ = run(tmp_path / "good", parent, "broaden", good)
    assert rejected == [] and len(made) == 1
    assert [c.tool for c in made[0].calls] == ["maths.add", "maths.add"]
    assert made[0].calls[1].bindings == {"a": "s1.result"}


def test_a_step_not_offered_from_a_server_without_grammar_is_kept_as_raw(tmp_path: Path) -> None:
    parent = seed(TICKET)
    answer = chosen("close_ticket", "Close ticket 999 as well.", ticket_id=999)
    made, rejected, _ = run(tmp_path, parent, "deepen", answer, FaultMix.llama_cpp())
    assert made == []
    (rejection,) = rejected
    assert rejection.code is RejectionCode.PARSE_MALFORMED
    assert "none of the steps offered" in rejection.message and "999" in (rejection.raw or "")


def test_free_steps_restores_the_model_written_calls(tmp_path: Path) -> None:
    seeds = write_seed(tmp_path, seed(TICKET))
    server = FakeOpenAIServer(answer=lambda body: json.dumps({"give_up": True}))
    with server as url:
        assert main(evolve_argv(tmp_path, seeds, "deepen", url, "--free-steps")) == 0
    prompt = server.bodies[0]["messages"][-1]["content"]
    assert "Possible new steps" not in prompt and '"new_calls" lists only the new calls' in prompt


def test_an_unreachable_endpoint_stops_the_run_and_a_rerun_resumes(tmp_path: Path) -> None:
    """A dead server is not the model's malformed answer: the run stops with one line, files
    no rejection, and the same command against a live server finishes the round."""
    import socket

    parent = seed(TICKET)
    seeds = write_seed(tmp_path, parent)
    config = tmp_path / "llm.toml"
    config.write_text("[llm]\nmax_retries = 1\ntimeout = 2\n")
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    argv = evolve_argv(tmp_path, seeds, "deepen", dead, "--llm-config", str(config))
    assert main(argv) != 0
    assert not (tmp_path / "runs" / "r" / "evolve_rejected.jsonl").exists()
    answer = chosen(
        "get_ticket",
        f"{parent.question} Then fetch the ticket so I can check that it is closed.",
        ticket_id=230,
    )
    with FakeOpenAIServer(answer=lambda body: json.dumps(answer)) as url:
        argv = evolve_argv(tmp_path, seeds, "deepen", url, "--llm-config", str(config))
        assert main(argv) == 0
    assert [t.lineage.operator for t in made_by_llm(tmp_path)] == ["deepen"]


def test_a_request_left_unchanged_costs_no_second_request(tmp_path: Path) -> None:
    """The 1.5B model often chose a step and returned the old request unchanged (asked again,
    it mostly did so again): the step's words come from code, with no second request."""
    parent = seed(TICKET)
    seeds = write_seed(tmp_path, parent)
    answer = chosen("get_ticket", parent.question, ticket_id=230)
    server = FakeOpenAIServer(answer=lambda body: json.dumps(answer))
    with server as url:
        assert main(evolve_argv(tmp_path, seeds, "deepen", url)) == 0
    (task,) = made_by_llm(tmp_path)
    assert task.question == f"{parent.question} Then show me the ticket."  # the only ticket
    assert task.lineage.words == "code" and len(server.bodies) == 1


def test_a_parent_without_a_checked_step_costs_no_request(tmp_path: Path) -> None:
    """Asked to invent steps, the 1.5B model wrote none a blind reader found valid: by default
    a parent without an option is rejected as evolve.no_step, and no request is sent."""
    parent = next(task for task in load_seeds() if not deepen_options(task))
    seeds = write_seed(tmp_path, parent)
    server = FakeOpenAIServer(answer=lambda body: json.dumps({"give_up": True}))
    with server as url:
        assert main(evolve_argv(tmp_path, seeds, "deepen", url)) == 0
    rejected = list(read_records(tmp_path / "runs" / "r" / "evolve_rejected.jsonl", Rejection))
    assert [r.code for r in rejected] == [RejectionCode.EVOLVE_NO_STEP]
    assert "--free-steps" in rejected[0].message and server.bodies == []


def test_broaden_whose_new_value_matches_a_dropped_one_keeps_code_words(tmp_path: Path) -> None:
    """Run llm21: the model chose "divide the product by 3" over "... round the quotient to 3
    decimal places" and left the request unchanged. Code's words for the chain state 3 for
    the new step, not for the dropped rounding, and stand."""
    parent = next(
        task
        for task in load_seeds()
        if [call.tool for call in task.calls]
        == ["maths.multiply", "maths.divide", "maths.round_number"]
    )
    option = next(o for o in broaden_options(parent) if o.tool == "maths.divide" and o.free)
    rounding = parent.calls[2].arguments["decimal_places"]
    answer = chosen("divide", parent.question, **option.fixed, **{option.free[0]: rounding})
    made, rejected, _ = run(tmp_path, parent, "broaden", answer)
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    assert [c.tool for c in made[0].calls][-1] == "maths.divide"
    assert "decimal" not in made[0].question and f"by {rounding}" in made[0].question


def test_words_asking_for_a_tool_no_call_makes_give_way_to_code(tmp_path: Path) -> None:
    """Run llm23: "... then place an order to sell it" over a step that only shows a quote.
    The model's words name a tool of the app that no call makes; code's words stand."""
    parent = seed(TICKET)
    answer = chosen(
        "get_ticket", f"{parent.question} Then show me that ticket and resolve it.", ticket_id=230
    )
    made, rejected, _ = run(tmp_path, parent, "deepen", answer)
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    assert "resolve" not in made[0].question and made[0].question.endswith("show me the ticket.")


def test_no_step_acts_in_a_service_the_request_logged_out_of() -> None:
    """Run llm31: "..., and then log me out. Then resolve the ticket ..." ran (the ticket system
    needs no session) and both readers failed it. Broaden may still turn before the log-out."""
    parent = seed(("tickets", "57b5856c0cec038a"))  # Create a ticket ..., then log me out
    assert deepen_options(parent) == []
    logout = next(i for i, call in enumerate(parent.calls) if call.tool == "tickets.logout")
    assert broaden_options(parent)
    assert all(option.kept <= logout for option in broaden_options(parent))


def test_a_step_that_returns_nothing_is_not_deeper(tmp_path: Path) -> None:
    """Run llm31: the JSON the first step made, converted "from CSV", comes back as "[]"; both
    readers failed it. Converted from JSON to a Markdown table it says something new."""
    parent = seed(("data_format", "e07f8fddfcab7ee4"))  # Convert the CSV text ... to JSON
    text = parent.calls[1].arguments["content"]
    question = f"{parent.question} Then convert the JSON text from the first step to {{fmt}}."
    for source, target, accepted in [("csv", "json", False), ("json", "markdown", True)]:
        answer = chosen(
            "convert_format",
            question.format(fmt=target.upper() if target == "json" else "a Markdown table"),
            content=text,
            source_format=source,
            target_format=target,
        )
        made, rejected, _ = run(tmp_path / source, parent, "deepen", answer)
        assert len(made) == int(accepted), rejected
        if not accepted:
            assert [r.code for r in rejected] == [RejectionCode.EVOLVE_NOT_DEEPER]


def test_words_that_ask_for_another_draw_or_the_highest_value_get_code_words(
    tmp_path: Path,
) -> None:
    """Run llm32: "..., then draw another 6 random prices ... and use the first set to
    generate an arithmetic sequence starting from the highest price" over one draw and a
    sequence from another value; both readers failed it."""
    parent = seed(("data_generation", "0dbbc5a15a54089f"))  # Draw 6 random prices ...
    total = replay(parent).outcomes[-1].result["sum"]
    for words in [
        f"{parent.question} Then draw another 6 and generate an arithmetic sequence of 6 values"
        " starting at the sum, going up by 10.",
        f"{parent.question} Then generate an arithmetic sequence of 6 values starting at the"
        " highest price, going up by 10.",
    ]:
        answer = chosen("arithmetic_sequence", words, start=total, step=10, length=6)
        made, rejected, _ = run(tmp_path / str(len(words)), parent, "deepen", answer)
        assert rejected == [] and [t.lineage.words for t in made] == ["code"], words
        assert "another" not in made[0].question and "highest" not in made[0].question


def test_a_text_that_asks_to_undo_the_request_is_rejected(tmp_path: Path) -> None:
    """Run llm32: "Then send customer support the message 'I need to cancel my flight and get
    my refund.' about the booking" the request just made; both readers failed it. A message
    about something else is a request a user makes."""
    parent = seed(("travel", "9dbf0edcc56987bd"))  # I'm flying first class from Crescent Hollow ...
    option = next(o for o in deepen_options(parent) if o.function == "contact_customer_support")
    for message, accepted in [
        ("I need to cancel my flight and get my refund.", False),
        ("Please add a vegetarian meal to this booking.", True),
    ]:
        question = f"{parent.question} Then send customer support the message '{message}'."
        answer = chosen("contact_customer_support", question, **option.fixed, message=message)
        made, rejected, _ = run(tmp_path / str(accepted), parent, "deepen", answer)
        assert len(made) == int(accepted), rejected
        if not accepted:
            assert [r.code for r in rejected] == [RejectionCode.EVOLVE_UNDOES_REQUEST]
            assert "'cancel'" in rejected[0].message


def test_broaden_whose_words_drop_a_kept_calls_value_gets_the_chains_words(
    tmp_path: Path,
) -> None:
    """Run llm79: "... at priority 2, then bump that ticket to priority 4 and show it"
    broadened as "... at priority 2; then list my tickets" still raised the priority, unasked.
    Words that no longer state a value a kept call passes give way to code's."""
    parent = seed(("tickets", "0487ee91aecb24f5"))  # open at priority 2, bump to 4, show it
    title = "Open a ticket titled 'Conference room display broken' with the description"
    title += " 'HDMI input not detected in room Atlas.' at priority 2"
    dropped = chosen("get_user_tickets", f"{title}; then list my tickets.")
    made, rejected, _ = run(tmp_path, parent, "broaden", dropped)
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    assert [c.function for c in made[0].calls][-1] == "get_user_tickets"
    assert "4" in made[0].question.split("priority 2", 1)[1]
    kept = chosen("get_user_tickets", f"{title}, then bump it to priority 4 and list my tickets.")
    made, rejected, _ = run(tmp_path / "kept", parent, "broaden", kept)
    assert rejected == [] and [t.lineage.words for t in made] == ["model"]


def test_no_step_asks_the_model_for_a_price_of_a_stock_a_result_picks(tmp_path: Path) -> None:
    """Run llm79: "... then place a sell order for 10 shares of the first stock listed in the
    previous step at $2840.34 per share" (both readers: nonsensical). An order's price is a
    price of its symbol (the tool says so), so an order whose symbol a result gives leaves no
    price for the user to state."""
    parent = seed(("trading", "9d2255ecd6aacdfe"))  # take NEPT off the watch list, add SYNX
    steps = [o.function for o in deepen_options(parent) + broaden_options(parent)]
    assert "place_order" not in steps and steps
    spec = ENVIRONMENTS["trading"].tool_specs()["place_order"]
    assert spec.describes == {"price": "symbol"}


def test_no_step_takes_an_entry_a_write_echoed_back_from_the_state(tmp_path: Path) -> None:
    """Run llm83: "... add it to my watch list. Then show me the latest quote for the first
    stock listed in the previous step" (both readers: a list the user never asked to see).
    ``add_to_watchlist`` returns the whole watch list; its entries the state held before are
    no result of the request. The ids a write makes are."""
    watch = seed(("trading", "a92ee267ac4576ff"))  # look up Omega, quote it, watch it
    held = set(watch.initial_config["trading"]["watch_list"])
    done = replay(watch)
    produced = {p.value for p in produced_values(watch, [o.result for o in done.outcomes])}
    echoed = set(done.outcomes[-1].result["watchlist"])  # type: ignore[index]
    assert echoed & held and not produced & held
    assert all(
        not set(option.fixed.values()) & held
        for option in deepen_options(watch) + broaden_options(watch)
    )
    # through the CLI: the model, had it been asked, would have chosen the echoed TSLA
    answer = chosen("get_stock_info", f"{watch.question} Then quote TSLA.", symbol="TSLA")
    made, rejected, server = run(tmp_path, watch, "deepen", answer)
    assert made == [] and [r.code for r in rejected] == [RejectionCode.EVOLVE_NO_STEP]
    assert server.bodies == []
    allocate = seed(("data_generation", "7dbf4cdc7ecc5520"))  # allocate 3 invoice ids, pick one
    done = replay(allocate)
    made = done.outcomes[0].result["ids"]  # type: ignore[index]
    assert set(made) <= {
        p.value for p in produced_values(allocate, [o.result for o in done.outcomes])
    }


def test_code_words_call_the_one_ticket_the_request_opened_the_new_ticket(
    tmp_path: Path,
) -> None:
    """Run llm89 (both readers): "Then change the ticket with description 'Follow-up: ...':
    set its description to ..." names the ticket the request just opened by the very field
    the step replaces. It is the new ticket."""
    parent = seed(("tickets", "6567d37e89ea7da8"))  # Look up ticket 2210 and open a new ...
    made_id = replay(parent).outcomes[-1].result["id"]  # type: ignore[index]
    for updates in ({"description": "The first fix still didn't hold."}, {"priority": 2}):
        # the model's words leave out the new step: code's stand
        answer = chosen("edit_ticket", parent.question, ticket_id=made_id, updates=updates)
        folder = tmp_path / next(iter(updates))
        made, rejected, _ = run(folder, parent, "deepen", answer)
        assert rejected == [] and [t.lineage.words for t in made] == ["code"]
        assert " Then change the new ticket: set its " in made[0].question
        assert "with description" not in made[0].question
    # the model's words may name it so too
    said = f"{parent.question} Then change the new ticket's priority to 2."
    answer = chosen("edit_ticket", said, ticket_id=made_id, updates={"priority": 2})
    made, rejected, _ = run(tmp_path / "model", parent, "deepen", answer)
    assert [t.lineage.words for t in made] == ["model"], rejected


def test_words_must_name_each_entry_a_step_takes_from_one_list(tmp_path: Path) -> None:
    """Run llm97 (both readers): "... The dates should start from the second date from the
    first step" over a range between two of its dates. Naming the step once does not say
    which entries: code's words name both."""
    parent = seed(("data_generation", "b75187c5d6055c38"))  # 5 dates in order, then a range
    dates = replay(parent).outcomes[0].result["dates"]
    start, end = dates[0], dates[-1]
    asked = dict(start=start, end=end, step_days=7)
    vague = f"{parent.question} The dates should start from the first date from the first step."
    made, rejected, _ = run(
        tmp_path / "vague", parent, "deepen", chosen("date_range", vague, **asked)
    )
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    # the step is said once, after the last entry (both readers of the words before: robotic)
    assert made[0].question.endswith(
        " Then list the dates from the first date to the fifth date from the first step, one"
        " every 7 days."
    )
    both = (
        f"{parent.question} Then list the days 7 days apart from the first to the fifth date of"
        " the first step."
    )
    made, rejected, _ = run(
        tmp_path / "both", parent, "deepen", chosen("date_range", both, **asked)
    )
    assert [t.lineage.words for t in made] == ["model"], rejected


def test_no_step_takes_a_value_the_request_had_rounded() -> None:
    """One llm101 reader: "Round it to 1 decimal place. Then divide the result of the first
    step by 4" makes the rounding pointless. A value a call of the request rounded is taken as
    rounded, never as it was."""
    parent = seed(MILES)  # Convert 26.2 miles to kilometers and then round ... 2 decimal places
    raw, rounded = (outcome.result["result"] for outcome in replay(parent).outcomes)  # type: ignore[index]
    assert raw != rounded
    taken = [value for option in deepen_options(parent) for value in option.fixed.values()]
    assert rounded in taken and raw not in taken


def test_a_field_of_a_thing_asked_about_by_its_id_is_named_by_that_id(tmp_path: Path) -> None:
    """One llm101 reader: "Then take the symbol from the previous step off my watch list"
    is robotic after "show me that order's details". The order was asked about by its id: the
    symbol is "the symbol of order 4410" in code's words (checked where code's words stand for
    a step), and model words that say "order 4410" name it too."""
    parent = seed(("trading", "2d463e24bd4e3a47"))  # Cancel my pending order 4410, show it
    said = f"{parent.question} Then get the latest quote for order 4410's stock."
    made, rejected, _ = run(
        tmp_path / "model", parent, "deepen", chosen("get_stock_info", said, symbol="NVDA")
    )
    assert [t.lineage.words for t in made] == ["model"], rejected


def test_code_words_name_a_card_by_no_ones_name_and_a_token_by_its_step(tmp_path: Path) -> None:
    """Both llm103 readers: "tell me the balance of the card 'Priya Raman', using the access
    token of client cli_88213". The cardholder's name is no name of the card, and a log-in is
    no read about client cli_88213."""
    parent = seed(("travel", "619d1fd47e44564b"))  # log in, register a card, book a flight
    card = replay(parent).outcomes[1].result["card_id"]  # type: ignore[index]
    answer = chosen("get_credit_card_balance", parent.question, access_token="700195", card_id=card)
    made, rejected, _ = run(tmp_path, parent, "deepen", answer)
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    assert made[0].question.endswith(
        " Then tell me the balance of the card, using the access token from the first step."
    )


def test_words_shown_for_another_offered_step_give_way_to_code(tmp_path: Path) -> None:
    """Run llm103 (both readers): broaden chose a card's balance and wrote "... then list every
    credit card registered with my travel account", the words the prompt showed for another
    offered step. Code's words for the chosen step stand."""
    parent = seed(("travel", "619d1fd47e44564b"))  # log in, register a card, book a flight
    card = replay(parent).outcomes[1].result["card_id"]  # type: ignore[index]
    shown = next(o for o in broaden_options(parent) if o.function == "get_all_credit_cards")
    other = shown.step_words(parent, {}, verbaliser())
    assert other == "list every credit card registered with my travel account"
    question = (
        "First, log me in to the travel service as Priya Raman with client id 'cli_88213',"
        " client secret 'Sx9!trav', refresh token 'rf_55120' and read and write access; then"
        " register my card 4539 1488 0343 6467, expiring 09/2029, in the name of Priya Raman"
        f" with CVV 412, using the access token from the previous step; then {other}, using the"
        " access token from the first step."
    )
    answer = chosen("get_credit_card_balance", question, access_token="700195", card_id=card)
    made, rejected, _ = run(tmp_path, parent, "broaden", answer)
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    assert other not in made[0].question and "balance of the card" in made[0].question


def test_a_step_after_a_rounding_takes_the_rounded_value_even_when_it_is_unchanged(
    tmp_path: Path,
) -> None:
    """The mean of 10 and 30 rounds to itself; the request asked to round it, so a step after
    takes the rounded value (one llm101 reader failed "divide the result of the first step by
    4": it made the rounding pointless)."""
    parent = Task.model_validate(
        {
            "id": "5e1f0aa2c3d4b5e6",
            "category": "maths",
            "envs": ["maths"],
            "question": "Find the mean of 10 and 30, then round it to 1 decimal place.",
            "initial_config": {"maths": {}},
            "calls": [
                {"id": "s1", "tool": "maths.mean", "arguments": {"numbers": [10, 30]}},
                {
                    "id": "s2",
                    "tool": "maths.round_number",
                    "arguments": {"number": 20.0, "decimal_places": 1},
                    "depends_on": ["s1"],
                    "bindings": {"number": "s1.result"},
                },
            ],
        }
    )
    answer = chosen("subtract", "Then subtract 4 from the result of the first step.", a=20.0, b=4)
    made, rejected, _ = run(tmp_path, parent, "deepen", answer)
    assert rejected == [] and len(made) == 1
    added = made[0].calls[-1]
    assert added.tool == "maths.subtract" and added.bindings == {"a": "s2.result"}
    assert made[0].question.endswith("Then subtract 4 from the rounded number.")


def test_a_field_of_what_the_car_reports_reads_without_a_step_number(tmp_path: Path) -> None:
    """ "convert the fuel level from the previous step" read as robotic (one llm101 reader):
    the fuel level the car shows needs no step, nor the one starting the engine reports (an
    llm137 reader: "the fuel level from the second step" is a build leftover)."""
    for reference, fuel, words in [
        (("vehicle", "c0ec22f62cd943c0"), 18.0, "Then convert the fuel level from gallons to"),
        (("vehicle", "4d826e28668f6ebe"), 22.0, "Then convert the fuel level from gallons to"),
    ]:
        parent = seed(reference)
        answer = chosen(
            "gallon_to_liter", f"{parent.question} Then do one more thing.", gallon=fuel
        )
        made, rejected, _ = run(tmp_path / reference[1], parent, "deepen", answer)
        assert rejected == [] and [t.lineage.words for t in made] == ["code"]
        assert made[0].calls[-1].bindings == {"gallon": f"s{len(parent.calls)}.fuelLevel"}
        assert words in made[0].question and "step" not in made[0].question


def test_a_field_of_a_read_about_a_named_company_names_the_company(tmp_path: Path) -> None:
    """One llm97 reader failed "from the nearest airport from the first step to the nearest
    airport from the previous step": a read asked about one stated place or company names
    its result by it ("the symbol of Synex Solutions"), and model words naming it stand."""
    parent = seed(("trading", "d0c1131775e6e37c"))  # Look up the symbol for Synex Solutions ...
    for words, whose in [
        ("Then add it to my watch list.", "code"),
        ("Then add the Synex Solutions symbol to my watch list.", "model"),
    ]:
        answer = chosen("add_to_watchlist", f"{parent.question} {words}", stock="SYNX")
        made, rejected, _ = run(tmp_path / whose, parent, "deepen", answer)
        assert rejected == [] and [t.lineage.words for t in made] == [whose], words
        assert made[0].calls[-1].bindings == {"stock": "s1.symbol"}
        if whose == "code":
            assert made[0].question.endswith(
                "Then add the symbol of Synex Solutions to my watch list."
            )


def test_the_user_field_of_a_post_reads_as_its_author(tmp_path: Path) -> None:
    """ "the stats of the username of the first matching tweet" is code's words at their most
    robotic: a post's user field names the post's author."""
    parent = seed(("posting", "294e5eba3dd95e56"))  # Search for posts about 'marathon' and ...
    answer = chosen(
        "get_user_stats", "Search for 'marathon' and do something.", username="city_runs"
    )
    made, rejected, _ = run(tmp_path, parent, "broaden", answer)
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    assert made[0].calls[-1].bindings == {"username": "s1.matching_tweets.0.username"}
    assert "the stats of the author of the first matching tweet" in made[0].question


def test_a_value_a_later_call_changed_is_not_offered(tmp_path: Path) -> None:
    """Both llm107 readers: "... set '2.stock' to 0; finally convert the JSON text to CSV"
    converted the text from before the edit. A step after the edit may not take the value it
    changed; right after the conversion it may."""
    parent = seed(("data_format", "5057d93c73989b1c"))  # Convert my document 'inventory' ...
    before_edit = replay(parent).outcomes[0].result["content"]
    assert '"stock": 3' in before_edit
    offered = [(o.kept, o.tool) for o in broaden_options(parent) if before_edit in o.fixed.values()]
    assert offered and {kept for kept, _ in offered} == {1}
    answer = chosen(
        "convert_format",
        "Convert my document 'inventory' to JSON as 'inventory_json', set '2.stock' to 0 there,"
        " then convert the JSON text to CSV.",
        content=before_edit,
        source_format="json",
        target_format="csv",
    )
    made, rejected, _ = run(tmp_path, parent, "broaden", answer)
    # the step the model chose is offered only before the edit, so the edit goes
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    assert [c.function for c in made[0].calls] == ["convert_document", "convert_format"]
    assert "2.stock" not in made[0].question


def test_a_random_draw_that_would_wait_for_an_unrelated_draw_is_not_offered(
    tmp_path: Path,
) -> None:
    """Both llm107 readers: "draw 4 random whole numbers between the sum from the second step
    and 500" was made to wait for the random pick of a date it takes nothing from, only
    because both draw from one random stream."""
    parent = seed(("data_generation", "f430dc47c6a1cf16"))  # ... pick one of the signup dates
    offered = {(o.kept, o.tool) for o in deepen_options(parent) + broaden_options(parent)}
    assert (3, "data_generation.random_integers") not in offered
    assert (2, "data_generation.random_integers") in offered, "with the pick dropped it may"
    answer = chosen(
        "random_integers",
        f"{parent.question} Then draw 4 random whole numbers between the sum of the ages and 500.",
        low=316,
        count=4,
        high=500,
    )
    made, rejected, _ = run(tmp_path, parent, "deepen", answer)
    assert made == [] and [r.code for r in rejected] == [RejectionCode.PARSE_MALFORMED]
    assert "none of the steps offered" in rejected[0].message


def test_the_square_root_of_a_percentage_is_rejected_as_meaningless(tmp_path: Path) -> None:
    """Both llm107 readers: "round it to the nearest whole number. Then compute the square
    root of the result ..." over a budget share: a percentage, rounded or not, has no
    meaningful square root or logarithm. Rounding it stays."""
    parent = seed(("maths", "627ba5aa3fcb4a5d"))  # I spent 340 out of a 1250 budget ...
    answer = chosen(
        "square_root",
        f"{parent.question} Then compute the square root of the rounded percentage.",
        number=27.0,
        precision=5,
    )
    made, rejected, _ = run(tmp_path, parent, "deepen", answer)
    assert made == [] and [r.code for r in rejected] == [
        RejectionCode.DEPENDENCY_DIMENSION_MISMATCH
    ]
    assert "square root of a percentage" in rejected[0].message


def test_model_words_that_swap_the_operands_give_way_to_codes(tmp_path: Path) -> None:
    """Run llm109 (model words): "divide the result of the first step by the result of the
    previous step" over a division of the second step's result by the first's."""
    parent = seed(("maths", "fea0b450b7b9f161"))  # A room is 12.5 feet by 10 feet ...
    opening = "First, convert 12.5 feet to meters; then convert 10 feet to meters; finally"
    for words, whose in [
        ("divide the result of the first step by the result of the previous step.", "code"),
        ("divide the result of the previous step by the result of the first step.", "model"),
    ]:
        answer = chosen("divide", f"{opening} {words}", a=3.048, b=3.81)
        made, rejected, _ = run(tmp_path / whose, parent, "broaden", answer)
        assert rejected == [] and [t.lineage.words for t in made] == [whose], words
        assert made[0].calls[-1].bindings == {"a": "s2.result", "b": "s1.result"}
        if whose == "code":  # a converted amount is named by what it is
            assert made[0].question.endswith(
                "divide the 10 feet in meters by the 12.5 feet in meters."
            )


def test_a_step_that_removes_what_the_request_made_is_rejected(tmp_path: Path) -> None:
    """Run llm109 (both readers: nonsensical): "book a flight ..., send support a message
    about the new booking, then cancel that booking". The support message leaves the state
    changed, so the whole state never returns to before the booking; the booking itself does."""
    parent = seed(("travel", "d99393dcefa3c9b9"))  # Book an economy flight ... customer support
    answer = chosen(
        "cancel_booking",
        f"{parent.question} Then cancel that booking.",
        booking_id="3426812",
        access_token="cs-88-tok",
    )
    made, rejected, _ = run(tmp_path, parent, "deepen", answer)
    assert made == [] and [r.code for r in rejected] == [RejectionCode.EVOLVE_UNDOES_REQUEST]
    assert "booking_record.3426812" in rejected[0].message


def test_broaden_words_that_drop_a_kept_read_give_way_to_codes(tmp_path: Path) -> None:
    """Run llm109 (both readers: mismatch): "Open the config folder and list what is in it"
    kept the 'pwd' that had fed the dropped write of the path to a file, and no word asked for
    it. Code's words name every kept call."""
    parent = seed(("filesystem", "9b1f913f121e76ad"))  # ... write its full path into a file
    answer = chosen("ls", "Open the config folder and list what is in it.")
    made, rejected, _ = run(tmp_path, parent, "broaden", answer)
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    assert [c.function for c in made[0].calls] == ["cd", "pwd", "ls"]
    assert "full path" in made[0].question


def test_a_value_an_earlier_call_took_reads_as_the_same_thing(tmp_path: Path) -> None:
    """Run llm109 (both readers: unnatural): "... retweet the first one you find. Then comment
    '...' on the first matching tweet from the first step", code's words then, gave one tweet
    two names. They now say "the same tweet", and model words may too."""
    parent = seed(("posting", "a6c40c53720562ba"))  # ... retweet the first one you find
    comment = "I love the solar panels! They are so clean and efficient."
    for words, whose in [
        (f"Then comment '{comment}' on a tweet.", "code"),
        (f"Then comment '{comment}' on that same tweet.", "model"),
    ]:
        answer = chosen(
            "comment", f"{parent.question} {words}", tweet_id=4, comment_content=comment
        )
        made, rejected, _ = run(tmp_path / whose, parent, "deepen", answer)
        assert rejected == [] and [t.lineage.words for t in made] == [whose], words
        assert made[0].calls[-1].bindings == {"tweet_id": "s1.matching_tweets.0.id"}
        if whose == "code":
            assert made[0].question.endswith(f"comment '{comment}' on the same tweet.")


def test_parsing_a_json_text_already_shown_is_not_offered(tmp_path: Path) -> None:
    """Run llm107b (one reader: tacked on): "... and show me that document. Then parse the
    document's text (JSON) into structured data" returns only what the request had shown."""
    parent = seed(("data_format", "5057d93c73989b1c"))  # ... and show me that document.
    shown = replay(parent).outcomes[-1].result["content"]
    assert not [o for o in deepen_options(parent) if o.function == "parse_data" and o.checked]
    answer = chosen(
        "parse_data",
        f"{parent.question} Then parse the document's text as JSON into structured data.",
        content=shown,
        source_format="json",
    )
    made, rejected, _ = run(tmp_path, parent, "deepen", answer)
    assert made == [] and [r.code for r in rejected] == [RejectionCode.EVOLVE_NOT_DEEPER]


def test_deepen_does_not_go_back_to_a_number_the_request_moved_on_from(tmp_path: Path) -> None:
    """Run llm113 (one reader: under-specified): "Add 3.5 and 4.25, then multiply that sum by
    2. Then subtract 16 from the sum" took the sum the multiplication had already taken, where
    a chain reads on from the product."""
    parent = seed(ADD_THEN_MULTIPLY)
    offered = [o.fixed for o in deepen_options(parent)]
    assert offered and all(7.75 not in fixed.values() for fixed in offered)
    assert any(15.5 in fixed.values() for fixed in offered)
    answer = chosen("subtract", f"{parent.question} Then subtract 16 from the sum.", a=7.75, b=16)
    made, rejected, _ = run(tmp_path, parent, "deepen", answer)
    assert made == [] and [r.code for r in rejected] == [RejectionCode.PARSE_MALFORMED]


def test_a_kept_call_named_only_through_the_new_steps_words_gives_way(tmp_path: Path) -> None:
    """Run llm109b (model words): "First, convert 12.5 feet to meters; then add the 12.5 feet
    in meters and the 10 feet in meters" dropped the kept "convert 10 feet to meters"; the 10
    was there only inside the new step's own words."""
    parent = seed(("maths", "fea0b450b7b9f161"))  # A room is 12.5 feet by 10 feet ...
    dropped = (
        "First, convert 12.5 feet to meters; then add the 12.5 feet in meters and the 10 feet"
        " in meters."
    )
    answer = chosen("add", dropped, a=3.81, b=3.048)
    made, rejected, _ = run(tmp_path, parent, "broaden", answer)
    assert rejected == [] and [t.lineage.words for t in made] == ["code"]
    assert "convert 10 feet to meters" in made[0].question
    # both llm127 readers: "add the 12.5 feet in meters and the 10 feet in meters" is template
    assert made[0].question.endswith("finally add the two results.")


def test_an_entry_a_draw_returned_by_its_place_alone_is_not_offered(tmp_path: Path) -> None:
    """Run llm131 (a reader: nonsensical): "draw 12 random whole numbers between 40 and 100;
    then draw 12 random decimal numbers between the first value from the previous step and
    100", and "a geometric sequence starting at the first value": the first of 12 random
    scores is one more random number. The ends of a draw asked in order stay offered."""
    scores = seed(("data_generation", "728a8a435168e544"))  # Draw 12 random whole numbers ...
    first = replay(scores).outcomes[0].result["values"][0]
    offered = deepen_options(scores) + broaden_options(scores)
    assert offered and all(first not in option.fixed.values() for option in offered)
    question = (
        "First, draw 12 random whole numbers between 40 and 100; then draw 12 random decimal"
        " numbers between the first value from the previous step and 100."
    )
    answer = chosen("random_numbers", question, count=12, low=first, high=100)
    made, rejected, _ = run(tmp_path, scores, "broaden", answer)
    # nothing else in reach: broaden has no step to offer, and asks no model
    assert made == [] and [r.code for r in rejected] == [RejectionCode.EVOLVE_NO_STEP]

    dates = seed(("data_generation", "b75187c5d6055c38"))  # ... dates in calendar order, ...
    drawn = replay(dates).outcomes[0].result["dates"]
    ends = {drawn[0], drawn[-1]}
    taken = [o for o in broaden_options(dates) if set(o.fixed.values()) & ends]
    assert taken and not [o for o in broaden_options(dates) if drawn[1] in o.fixed.values()]
