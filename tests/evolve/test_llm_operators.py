"""The LLM operators' prompts and what their candidates must add (issue 17, parts 3 and 4).

Each test runs ``asynctool evolve`` against the loopback fake server with a scripted model that
answers one way, and checks the verdict the run records, or reads the requests the server got.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.envs import ENVIRONMENTS
from pipeline.evolve.llm_ops import MAX_TOKENS, deepen_model, evolved_model
from pipeline.evolve.prompts import example_answers
from pipeline.jsonl import read_records
from pipeline.llm.fake_server import FakeOpenAIServer, FaultMix
from pipeline.models import Call, Rejection, RejectionCode, Task
from pipeline.seeds import SEED_DIR
from pipeline.validate.chain import validate_task

Answer = Callable[[dict[str, Any]], str]

ADD_THEN_MULTIPLY = ("maths", "d334f7e62d617f38")  # Add 3.5 and 4.25, then multiply ... by 2.
MILES = ("maths", "4f5fdcb1b5fb6e91")  # Convert 26.2 miles to kilometers and then round ...
MAYA = ("posting", "60c93688a325f594")  # Log me in as maya_codes ... comment on that new post.
CONGRATS = ("posting", "e29dd7fb740e6e6c")  # Comment 'Congrats ...' on tweet 6, then show ...
DOORS = ("vehicle", "304d1d62357cf6ba")  # Unlock only the driver door, ..., then show me ...
TICKET = ("tickets", "721174ebfd3c82db")  # Open a ticket ... and then close that new ticket


def seed(reference: tuple[str, str]) -> Task:
    env, task_id = reference
    for line in (SEED_DIR / f"{env}.jsonl").read_text(encoding="utf-8").splitlines():
        task = Task.model_validate_json(line)
        if task.id == task_id:
            return task
    raise LookupError(task_id)


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments}


def parent_calls(task: Task) -> list[dict[str, Any]]:
    return [call(c.function, **c.arguments) for c in task.calls]


def operator_of(body: dict[str, Any]) -> str:
    prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
    for marker, operator in [
        ("Your job: make this task deeper", "deepen"),
        ("Your job: write a different task", "broaden"),
        ("Your job: reword", "paraphrase"),
        ("This task failed an automatic check", "repair"),
    ]:
        if marker in prompt:
            return operator
    raise AssertionError(f"no operator recognised in {prompt[-300:]!r}")


def scripted(**answers: dict[str, Any]) -> Answer:
    """A model that gives each operator one fixed answer (and gives up any repair)."""

    def answer(body: dict[str, Any]) -> str:
        operator = operator_of(body)
        if operator == "repair" and "repair" not in answers:
            return json.dumps({"give_up": True, "reason": "no", "question": "", "calls": []})
        return json.dumps(answers[operator])

    return answer


def evolve(
    tmp: Path, parent: Task, operators: str, answer: Answer, *extra: str
) -> tuple[list[Task], list[Rejection], FakeOpenAIServer]:
    os.chdir(tmp)  # a cache of its own (./output/cache): another answer, same prompt
    seeds = tmp / "seeds.jsonl"
    seeds.write_text(parent.model_dump_json() + "\n", encoding="utf-8")
    server = FakeOpenAIServer(answer=answer)
    with server as url:
        argv = [
            "evolve", "--inline", "--output", str(tmp), "--run-id", "r", "--seeds", str(seeds),
            "--rounds", "1", "--operators", operators, "--llm-base-url", url,
            "--llm-model", "fake-model", "--free-steps", *extra,
        ]  # fmt: skip
        assert main(argv) == 0
    run = tmp / "runs" / "r"
    made = [t for t in read_records(run / "evolved.jsonl", Task) if t.lineage.operator != "seed"]
    rejected = list(read_records(run / "evolve_rejected.jsonl", Rejection))
    return made, rejected, server


@pytest.fixture(autouse=True)
def _restore_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # ``evolve`` changes directory; this puts it back afterwards


# --- deepen --------------------------------------------------------------------------------------


def test_deepen_that_adds_a_call_using_a_result_is_accepted(tmp_path: Path) -> None:
    parent = seed(ADD_THEN_MULTIPLY)
    deeper = {
        "new_calls": [call("square_root", number=15.5, precision=2)],
        "question": "Add 3.5 and 4.25, multiply that sum by 2, and give me the square root of"
        " the product to 2 decimal places.",
    }
    made, rejected, _ = evolve(tmp_path, parent, "deepen", scripted(deepen=deeper))
    assert rejected == []
    assert [t.lineage.operator for t in made] == ["deepen"]
    *kept, added = made[0].calls
    assert [c.arguments for c in kept] == [c.arguments for c in parent.calls], "calls kept"
    assert added.tool == "maths.square_root" and added.bindings == {"number": "s2.result"}


@pytest.mark.parametrize(
    ("question", "added"),
    [
        # a valid added call, but it needs no earlier result
        ("Add 3.5 and 4.25, then multiply that sum by 2. Separately, add 10 and 20.",
         call("add", a=10, b=20)),
        # a follow-up in words, but the value is stated, not taken from the product
        ("Add 3.5 and 4.25, multiply that sum by 2, and give me the square root of 16 to 2"
         " decimal places.", call("square_root", number=16, precision=2)),
        # a chain of its own: the second added call uses the first, neither uses the parent's
        # results (the 1.5B model appended a new sequence and its summary this way)
        ("Add 3.5 and 4.25, then multiply that sum by 2. Separately, add 10 and 6 and give me"
         " the square root of that sum to 2 decimal places.",
         [call("add", a=10, b=6), call("square_root", number=16, precision=2)]),
    ],
)  # fmt: skip
def test_deepen_that_adds_nothing_dependent_is_rejected(
    tmp_path: Path, question: str, added: dict[str, Any] | list[dict[str, Any]]
) -> None:
    parent = seed(ADD_THEN_MULTIPLY)
    answer = {"new_calls": added if isinstance(added, list) else [added], "question": question}
    made, rejected, _ = evolve(tmp_path, parent, "deepen", scripted(deepen=answer), "--no-repair")
    assert made == []
    assert [r.code for r in rejected] == [RejectionCode.EVOLVE_NOT_DEEPER]
    assert rejected[0].raw is not None and question in rejected[0].raw


def test_deepen_answers_only_its_new_calls(tmp_path: Path) -> None:
    """The parent's calls are kept by construction: an answer without a new call is no answer."""
    parent = seed(ADD_THEN_MULTIPLY)
    answer = {"new_calls": [], "question": parent.question}
    made, rejected, server = evolve(
        tmp_path, parent, "deepen", scripted(deepen=answer), "--no-repair"
    )
    assert made == [] and [r.code for r in rejected] == [RejectionCode.PARSE_MALFORMED]
    schema = _schema(server.bodies[0])
    assert list(schema["properties"]) == ["new_calls", "question"]  # calls first, then words
    assert schema["properties"]["new_calls"]["minItems"] == 1
    assert schema["properties"]["new_calls"]["maxItems"] == 2


# --- broaden -------------------------------------------------------------------------------------


def test_broaden_must_change_the_tools_or_the_end_state(tmp_path: Path) -> None:
    parent = seed(ADD_THEN_MULTIPLY)
    same_tools = {
        "question": "Add 1.5 and 2.5, then multiply that sum by 3.",
        "calls": [call("add", a=1.5, b=2.5), call("multiply", a=4.0, b=3)],
    }
    made, rejected, _ = evolve(tmp_path, parent, "broaden", scripted(broaden=same_tools))
    assert made == [] and [r.code for r in rejected] == [RejectionCode.EVOLVE_SAME_GOAL]

    other = tmp_path / "other"
    new_goal = {
        "question": "What is the mean of 3.5, 4.25 and 9? Round it to 1 decimal place.",
        "calls": [call("mean", numbers=[3.5, 4.25, 9]),
                  call("round_number", number=5.583333333333333, decimal_places=1)],
    }  # fmt: skip
    other.mkdir()
    made, rejected, _ = evolve(other, parent, "broaden", scripted(broaden=new_goal))
    assert rejected == [] and [t.lineage.operator for t in made] == ["broaden"]


def test_broaden_in_a_stateful_app_may_keep_the_tools_but_not_the_end_state(
    tmp_path: Path,
) -> None:
    parent = seed(TICKET)
    same_state = {"question": parent.question, "calls": parent_calls(parent)}
    reworded = (
        "Please create a ticket named 'Duplicate invoice received' at priority 2 and then"
        " close that new ticket at once, because billing has fixed the issue."
    )
    same_state["question"] = reworded
    made, rejected, _ = evolve(tmp_path, parent, "broaden", scripted(broaden=same_state))
    assert made == [] and [r.code for r in rejected] == [RejectionCode.EVOLVE_SAME_GOAL]

    other = tmp_path / "other"
    other.mkdir()
    new_ticket = {
        "question": "Open a ticket titled 'Badge reader broken' with priority 4, and then close"
        " that new ticket because security replaced the reader.",
        "calls": [call("create_ticket", title="Badge reader broken", priority=4),
                  call("close_ticket", ticket_id=230)],
    }  # fmt: skip
    made, rejected, _ = evolve(other, parent, "broaden", scripted(broaden=new_ticket))
    assert rejected == [] and [t.lineage.operator for t in made] == ["broaden"]


# --- paraphrase ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "question", "lost"),
    [
        # a user name respelt: grounding would only see a value "in the hidden state"
        (MAYA, "Sign me in as Maya_codes using the password Tr33house!, publish 'Shipping the"
         " new release today!' tagged #release and #devlife, and then leave the comment"
         " 'Changelog is in the README.' under that new post.", "'maya_codes'"),
        # quoted text lower-cased: it would be posted as written
        (MAYA, "Sign me in as maya_codes using the password Tr33house!, publish 'shipping the"
         " new release today!' tagged #release and #devlife, and then leave the comment"
         " 'Changelog is in the README.' under that new post.",
         "'Shipping the new release today!'"),
        # unit names capitalised: the tool takes them as written
        (MILES, "How many Kilometers are 26.2 Miles? Give me the distance rounded to 2 decimal"
         " places.", "'miles'"),
        # a number dropped
        (ADD_THEN_MULTIPLY, "Sum 3.5 and 4.25 and then double the result.", "2"),
        # a mode kept only inside another word (run llm79): the message says where
        (("string_manipulation", "e054c8236ac8e151"),
         "Find all email addresses in the 'inbox' buffer that match the pattern"
         " '[\\w.]+@[\\w.]+\\w', convert the first matching address to uppercase, and append it"
         " to the 'contacts' buffer on a new line.", "'upper' (only inside 'uppercase')"),
    ],
)  # fmt: skip
def test_paraphrase_keeps_every_literal_exactly(
    tmp_path: Path, reference: tuple[str, str], question: str, lost: str
) -> None:
    parent = seed(reference)
    made, rejected, _ = evolve(
        tmp_path, parent, "paraphrase", scripted(paraphrase={"question": question})
    )
    assert made == []
    assert [r.code for r in rejected] == [RejectionCode.EVOLVE_LITERAL_CHANGED]
    assert lost in rejected[0].message


@pytest.mark.parametrize(
    ("reference", "question"),
    [
        # a small model asked to "change the order of the clauses" wrote the rounding first
        (MILES, "First round to 2 decimal places, then convert 26.2 miles to kilometers."),
        # no sequence word, but clauses that open on the calls' verbs (run llm24, over
        # "Unlock only the driver door, switch the headlights on, and then show me ...")
        (DOORS, "Show me the status of all doors, unlock only the driver door, switch the"
         " headlights on."),
        # both tools' names share "comment": the mention only one call has decides (run llm23)
        (CONGRATS, "Show me all the comments on tweet 6 and then comment 'Congrats to the whole"
         " team!' on that tweet."),
        # the parent names the document early ("In my document 'settings', set ...; then open
        # the document"): the opening it moved to the front is the later call (run llm28)
        (("data_format", "70a341fe8b957ef0"), "Open the document 'settings', set 'font.size' to"
         " 14, and then convert its key/value text to JSON."),
        # a read moved to the front: its first words ("brake pedal") are also the press's, so
        # the step word between them decides (run llm83, both readers)
        (("vehicle", "0f0bbcda74e11673"), "Show the brake pedal status and then release the"
         " parking brake, press the brake pedal halfway (position 0.5)."),
    ],
)  # fmt: skip
def test_paraphrase_that_names_dependent_steps_the_other_way_round_is_rejected(
    tmp_path: Path, reference: tuple[str, str], question: str
) -> None:
    made, rejected, _ = evolve(
        tmp_path, seed(reference), "paraphrase", scripted(paraphrase={"question": question})
    )
    assert made == []
    assert [r.code for r in rejected] == [RejectionCode.EVOLVE_ORDER_CHANGED]


def paraphrased(tmp: Path, parent: Task, question: str) -> tuple[list[Task], list[Rejection]]:
    """The parent paraphrased as ``question``, in a folder of its own under ``tmp``."""
    folder = tmp / f"p{len(list(tmp.iterdir()))}"
    folder.mkdir()
    made, rejected, _ = evolve(
        folder, parent, "paraphrase", scripted(paraphrase={"question": question})
    )
    return made, rejected


def only_rejection(tmp: Path, parent: Task, question: str) -> Rejection:
    """The one rejection of the parent paraphrased as ``question``, which makes no task."""
    made, rejected = paraphrased(tmp, parent, question)
    assert made == [] and len(rejected) == 1, question
    return rejected[0]


def assert_rejected(tmp: Path, parent: Task, question: str, code: RejectionCode, said: str) -> None:
    """The parent paraphrased as ``question`` is rejected with ``code``, the message saying
    ``said``."""
    rejection = only_rejection(tmp, parent, question)
    assert rejection.code is code and said in rejection.message, rejection.message


def assert_kept(tmp: Path, parent: Task, question: str) -> None:
    """The parent paraphrased as ``question`` makes exactly that task, rejecting nothing."""
    made, rejected = paraphrased(tmp, parent, question)
    assert rejected == [] and [t.question for t in made] == [question]


def assert_tells_apart(
    tmp: Path, parent: Task, wrong: str, code: RejectionCode, said: str, right: str
) -> None:
    """The parent paraphrased as ``wrong`` is rejected with ``code`` (the message saying
    ``said``), and as ``right`` kept."""
    assert_rejected(tmp, parent, wrong, code, said)
    assert_kept(tmp, parent, right)


def test_paraphrase_that_speaks_as_the_assistant_is_rejected(tmp_path: Path) -> None:
    """Run llm25: "register my card" became "Register your card" and "I'm Priya Raman" "set
    your name to Priya Raman"; both readers failed it. A "your" inside a quoted value, or one
    the parent already had, is no change of voice."""
    parent = seed(("travel", "619d1fd47e44564b"))  # Log me into the travel service ... my card
    reworded = (
        "Please sign me in to the travel service (client id 'cli_88213', client secret"
        " 'Sx9!trav', refresh token 'rf_55120', read and write access) as Priya Raman. After"
        " that, save {whose} card 4539 1488 0343 6467, expiring 09/2029, cardholder Priya Raman,"
        " CVV 412, and pay with it for an economy flight from SFO to ORD on 2026-04-14."
    )
    flipped = reworded.format(whose="your")
    rejection = only_rejection(tmp_path, parent, flipped)
    assert (
        rejection.code is RejectionCode.EVOLVE_MEANING_CHANGED
        and "save your card" in rejection.message
    )
    kept = reworded.format(whose="my")
    assert_kept(tmp_path, parent, kept)


def test_paraphrase_that_drops_a_step_is_rejected(tmp_path: Path) -> None:
    """Run llm26: "..., then summarise them" rewritten without the summary, whose call stays.
    Reworded ("summarize them for me") the step is still asked for."""
    parent = seed(("data_generation", "0dbbc5a15a54089f"))  # Draw 6 random prices ... summarise
    dropped = (
        "Could you produce a list of 6 random prices, each from $5 to $50 with 2 decimal places?"
    )
    rejection = only_rejection(tmp_path, parent, dropped)
    assert (
        rejection.code is RejectionCode.EVOLVE_STEP_UNASKED
        and "summarise_numbers" in rejection.message
    )
    # run llm30: "List my text buffers, ..." as "List all text files, ...": "list" and "text"
    # (a word of count_text) say nothing of which step, so the buffers are no longer asked for
    buffers = seed(("string_manipulation", "2563fb568c9f52d1"))
    files = (
        "List all text files, read the first one, and count how many times the word 'action'"
        " appears in its content."
    )
    rejection = only_rejection(tmp_path, buffers, files)
    assert (
        rejection.code is RejectionCode.EVOLVE_STEP_UNASKED and "list_buffers" in rejection.message
    )
    # run llm34: "follows" is still said, but only for the stats; carla_dev is followed unasked
    follow = seed(("posting", "207df730e167bdaf"))  # Follow carla_dev and then tell me ...
    rejection = only_rejection(
        tmp_path, follow, "Tell me how many accounts sam_t follows, starting from carla_dev."
    )
    assert (
        rejection.code is RejectionCode.EVOLVE_STEP_UNASKED and "follow_user" in rejection.message
    )
    made, rejected = paraphrased(
        tmp_path,
        follow,
        "Please start following carla_dev; after that, let me know the number of accounts"
        " sam_t is following.",
    )
    assert rejected == [] and len(made) == 1
    kept = (
        "Pick 6 random prices from 5 to 50, each with 2 decimal places, and then summarize"
        " them for me."
    )
    assert_kept(tmp_path, parent, kept)


def test_paraphrase_that_adds_a_reason_is_rejected(tmp_path: Path) -> None:
    """Run llm27: "Since the marathon has already been run, ..." invents a context; a reason the
    parent gave may be reworded."""
    parent = seed(TICKET)  # ... close that new ticket right away since billing already fixed it
    added = (
        "Because the invoice came in twice, open a ticket titled 'Duplicate invoice received'"
        " with priority 2 and close the new ticket at once, since billing has fixed it."
    )
    kept = (
        "Please open a ticket titled 'Duplicate invoice received' with priority 2 and close the"
        " new ticket at once, since billing has fixed it already."
    )
    rejection = only_rejection(tmp_path, parent, added)
    assert (
        rejection.code is RejectionCode.EVOLVE_MEANING_CHANGED
        and "'Because the invoice came in twice'" in rejection.message
    )
    assert_kept(tmp_path, parent, kept)


def test_paraphrase_that_adds_an_action_is_rejected(tmp_path: Path) -> None:
    """Run llm30: "Find it among my tickets and close it" as "Find my own Open ticket, open it
    and close it"; no call opens it. Rewording a verb adds no action."""
    parent = seed(("tickets", "77607f8fb4b992ba"))  # I have a single Open ticket of my own ...
    rejection = only_rejection(tmp_path, parent, "Find my own Open ticket, open it and close it.")
    assert rejection.code is RejectionCode.EVOLVE_MEANING_CHANGED and "'open'" in rejection.message
    kept = "Look through my tickets for my single Open one and shut it."
    assert_kept(tmp_path, parent, kept)


def test_paraphrase_that_drops_which_values_are_required_is_rejected(tmp_path: Path) -> None:
    """Run llm30: "..., requiring 'id' and 'total'" dropped; 'id' and 'total' are still in the
    request (as field types), but no longer as the required fields."""
    parent = seed(("data_format", "5ff5513d201cc2e2"))
    schema = "a schema where 'id' is an integer, 'total' is a number, and 'paid' is a boolean"
    dropped = (
        f"List all documents I have stored, open the first one, and check it against {schema}."
    )
    rejection = only_rejection(tmp_path, parent, dropped)
    assert (
        rejection.code is RejectionCode.EVOLVE_MEANING_CHANGED
        and "'required' of validate_record" in rejection.message
    )
    # run llm33: "requires" kept, but over every field, so which are required is lost
    lost = (
        "List all the documents I have stored, open the first one, and verify it against a"
        " schema. The schema requires fields such as 'id' to be an integer, 'total' to be a"
        " number, and 'paid' to be a boolean."
    )
    assert "'required' of validate_record" in only_rejection(tmp_path, parent, lost).message
    # run llm33 too: a condition added and left unnamed
    vague = dropped.replace("the first one,", "the first one that meets a certain criteria,")
    vague = vague.replace(f"{schema}.", f"{schema}, with 'id' and 'total' required.")
    rejection = only_rejection(tmp_path, parent, vague)
    assert "'certain criteria'" in rejection.message
    kept = (
        "Show me which documents I keep, load the first of them and validate it: 'id' should be"
        " an integer, 'total' a number and 'paid' a boolean, with 'id' and 'total' required."
    )
    assert_kept(tmp_path, parent, kept)


def test_paraphrase_that_drops_a_choice_is_rejected(tmp_path: Path) -> None:
    """Run llm31: "Release the parking brake, ..." as "To ensure the parking brake is fully
    engaged, ..."; the call still releases it. Any case or form of the choice keeps it."""
    parent = seed(("vehicle", "0f0bbcda74e11673"))  # Release the parking brake, press ...
    rest = "push the brake pedal down halfway (position 0.5) and then tell me its status."
    rejection = only_rejection(
        tmp_path, parent, f"To ensure the parking brake is fully engaged, {rest}"
    )
    assert (
        rejection.code is RejectionCode.EVOLVE_MEANING_CHANGED
        and "'release', the mode of activateParkingBrake" in rejection.message
    )
    kept = f"Take off the parking brake (release it), {rest}"
    assert_kept(tmp_path, parent, kept)


def test_paraphrase_accepted_when_reworded_with_literals_kept(tmp_path: Path) -> None:
    parent = seed(MAYA)
    question = (
        "Sign me in as maya_codes using the password Tr33house!, publish 'Shipping the new"
        " release today!' tagged #release and #devlife, and then leave the comment 'Changelog"
        " is in the README.' under that new post."
    )
    made, rejected, _ = evolve(
        tmp_path, parent, "paraphrase", scripted(paraphrase={"question": question})
    )
    assert rejected == []
    assert [(t.lineage.operator, t.question) for t in made] == [("paraphrase", question)]


@pytest.mark.parametrize(
    ("operator", "answer"),
    [
        # the 1.5B model appended the tickets example's clause to a data-management request
        ("paraphrase", {"question": "Add 3.5 and 4.25, then multiply that sum by 2, and close"
                                    " that new ticket straight away."}),
        ("deepen", {"new_calls": [call("square_root", number=15.5, precision=2)],
                    "question": "Add 3.5 and 4.25, multiply that sum by 2, and give me the"
                                " square root of the product to 2 decimal places so I can"
                                " check that it is closed."}),
    ],
)  # fmt: skip
def test_a_request_that_copies_the_worked_example_is_rejected(
    tmp_path: Path, operator: str, answer: dict[str, Any]
) -> None:
    """The maths parent is shown the tickets example: a clause of it in the new request asks
    for something no call does, so it is rejected whatever the calls are."""
    parent = seed(ADD_THEN_MULTIPLY)
    made, rejected, _ = evolve(
        tmp_path, parent, operator, scripted(**{operator: answer}), "--no-repair"
    )
    assert made == []
    assert [r.code for r in rejected] == [RejectionCode.QUESTION_TEMPLATE_ARTEFACT]
    assert "from the worked example" in rejected[0].message
    assert rejected[0].raw is not None and answer["question"] in rejected[0].raw


def test_a_quoted_value_in_other_case_is_ungrounded_in_any_new_task(tmp_path: Path) -> None:
    """The same rule in validation, for a deepen whose question has no parent wording to keep."""
    parent = seed(MAYA)
    answer = {
        "question": "Log me in as maya_codes with password Tr33house!, post 'shipping the new"
        " release today!' with the tags #release and #devlife, comment 'Changelog is in the"
        " README.' on that new post, and show me the comments on it.",
        "new_calls": [call("get_tweet_comments", tweet_id=5)],
    }
    made, rejected, _ = evolve(tmp_path, parent, "deepen", scripted(deepen=answer), "--no-repair")
    assert made == []
    assert [r.code for r in rejected] == [RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT]
    assert "quotes it as 'shipping the new release today!'" in rejected[0].message


# --- near-copies and ids -------------------------------------------------------------------------


def test_near_copies_of_parent_or_sibling_are_rejected_and_no_id_is_both(tmp_path: Path) -> None:
    parent = seed(ADD_THEN_MULTIPLY)
    question = (
        "Add 3.5 and 4.25, multiply that sum by 2, and give me the square root of the product"
        " to 2 decimal places."
    )
    added = call("square_root", number=15.5, precision=2)
    deeper = {"new_calls": [added], "question": question}
    same_as_deeper = {"question": question, "calls": [*parent_calls(parent), added]}
    answers = scripted(
        deepen=deeper, broaden=same_as_deeper, paraphrase={"question": parent.question}
    )
    made, rejected, _ = evolve(tmp_path, parent, "deepen,broaden,paraphrase", answers)
    assert [t.lineage.operator for t in made] == ["deepen"]
    codes = {r.sample_id: r.code for r in rejected}
    assert codes == {
        f"{parent.id}:broaden": RejectionCode.EVOLVE_NEAR_COPY,  # the deepen sibling, verbatim
        f"{parent.id}:paraphrase": RejectionCode.EVOLVE_NEAR_COPY,  # the parent, verbatim
    }
    accepted_ids = {t.id for t in read_records(tmp_path / "runs/r/evolved.jsonl", Task)}
    assert accepted_ids.isdisjoint(codes), "a task id is never both accepted and rejected"
    assert "a sibling" in next(r.message for r in rejected if r.sample_id.endswith("broaden"))


def test_a_repair_is_held_to_its_operator(tmp_path: Path) -> None:
    """A rejected deepen sent to repair must still come back deeper than the parent."""
    parent = seed(ADD_THEN_MULTIPLY)
    broken = {
        "new_calls": [call("square_root", number=99.0, precision=2)],
        "question": "Add 3.5 and 4.25, multiply that sum by 2, and give me the square root of"
        " the product to 2 decimal places.",
    }
    back_to_parent = {"give_up": False, "reason": "dropped the bad call",
                      "question": parent.question, "calls": parent_calls(parent)}  # fmt: skip
    made, rejected, _ = evolve(
        tmp_path, parent, "deepen", scripted(deepen=broken, repair=back_to_parent)
    )
    assert made == []
    codes = sorted(r.code.value for r in rejected)
    assert codes == ["evolve.near_copy", "grounding.ungrounded_argument"]

    other = tmp_path / "other"
    other.mkdir()
    good_calls = [*parent_calls(parent), call("square_root", number=15.5, precision=2)]
    fixed = {**back_to_parent, "question": broken["question"], "calls": good_calls}
    made, _, _ = evolve(other, parent, "deepen", scripted(deepen=broken, repair=fixed))
    assert [t.lineage.operator for t in made] == ["repair"]


# --- what the model is sent ----------------------------------------------------------------------


def _user(body: dict[str, Any]) -> str:
    return str(next(m["content"] for m in body["messages"] if m["role"] == "user"))


def _schema(body: dict[str, Any]) -> dict[str, Any]:
    response_format = body["response_format"]
    schema = response_format.get("json_schema", {}).get("schema") or response_format["schema"]
    assert isinstance(schema, dict)
    return schema


def test_prompts_are_built_for_a_small_model(tmp_path: Path) -> None:
    parent = seed(MAYA)
    answer = {"question": "x", "calls": [call("list_all_following")]}  # content irrelevant
    deeper = {"new_calls": [call("list_all_following")], "question": "x"}
    _, _, server = evolve(
        tmp_path,
        parent,
        "deepen,broaden,paraphrase",
        scripted(deepen=deeper, broaden=answer, paraphrase={"question": "x"}),
        "--no-repair",
    )
    bodies = {operator_of(body): body for body in server.bodies}
    assert set(bodies) == {"deepen", "broaden", "paraphrase"}
    deepen, broaden, paraphrase = bodies["deepen"], bodies["broaden"], bodies["paraphrase"]

    # calls are objects whose tool the schema limits to the task's environments
    for body, calls in ((deepen, "new_calls"), (broaden, "calls")):
        schema = _schema(body)
        branches = schema["properties"][calls]["items"]["oneOf"]
        tools = [_branch(schema, ref)["properties"]["tool"]["const"] for ref in branches]
        assert tools == list(ENVIRONMENTS["posting"].tool_specs())
        assert schema["properties"][calls]["maxItems"] <= 8
        # each tool's arguments exactly: a grammar cannot add, drop or mistype one
        post = _branch(schema, branches[tools.index("post_tweet")])["properties"]["arguments"]
        assert post["additionalProperties"] is False and post["required"] == ["content"]
        assert {"type": "array", "items": {"type": "string"}} in post["properties"]["tags"]["anyOf"]

    text = _user(deepen)
    assert '{"tool": "post_tweet", "arguments": {"content": "Shipping' in text
    assert "post_tweet(" not in text, "no call strings"
    # the parent's real results: the new post's id that the comment uses
    assert 'returned: {"id":5,"username":"maya_codes"' in text
    # bookkeeping fields stay out; the state the user could know stays in
    for body in (deepen, broaden, paraphrase):
        everything = json.dumps(body["messages"])
        assert "tweet_counter" not in everything and "random_seed" not in everything
    assert '"following_list":["alice","bob"]' in text
    # worked examples from another environment (posting's own is never shown), before the
    # task, so the task is what the model reads last
    assert text.count("Example from another app") == 1
    assert text.index("Duplicate invoice received") < text.index("Request: Log me in as maya")
    assert "Great panel on open data" not in _user(paraphrase)  # the posting example: not here
    assert "Duplicate invoice received" in _user(paraphrase)
    # the paraphrase is asked with the values it must keep, and without the tools or state
    assert "- maya_codes\n- Tr33house!\n" in _user(paraphrase)
    assert "Tools (" not in _user(paraphrase) and "Starting state" not in _user(paraphrase)
    # a reworded request keeps the order of its actions (the 1.5B model, told to reorder the
    # clauses, opened a document before the edit the calls make first)
    assert "keep the actions in the order the request gives them" in _user(paraphrase)
    # shared context first, the operator's part last: deepen and broaden share a prefix that
    # holds the whole task, and each ends with its instruction
    assert deepen["messages"][0] == broaden["messages"][0]
    shared = os.path.commonprefix([_user(deepen), _user(broaden)])
    assert shared.startswith("Example from another app")
    assert "A deeper version: " in shared and "A different task for the same state: " in shared
    assert "Tools (a call names one of them" in shared
    assert 'returned: {"comment_status"' in shared
    # a menu of returned values the tool graph lets another tool take: the new post's id, not
    # the tags the user stated
    menu = shared.split("Returned values another tool can take (tool and argument):\n")[1]
    assert menu.startswith("- 5 (call 2, id): retweet (tweet_id), comment (tweet_id),")
    assert "#release" not in menu.split("\n\n")[0]
    assert shared == _user(deepen).split("Your job:")[0] + "Your job: ", "only the job differs"
    for body in (deepen, broaden, paraphrase):
        assert _user(body).rstrip().splitlines()[-1].endswith(("{...}}.", "request."))
        assert "Your job:" in _user(body).rsplit("\n\n", 1)[-1]
    # a completion budget per operator: a paraphrase needs far fewer tokens than new calls
    assert deepen["max_tokens"] == MAX_TOKENS["deepen"] < broaden["max_tokens"]
    assert broaden["max_tokens"] == MAX_TOKENS["broaden"]
    assert paraphrase["max_tokens"] == MAX_TOKENS["paraphrase"] < MAX_TOKENS["deepen"]


def test_each_parent_gets_the_example_of_another_environment(tmp_path: Path) -> None:
    parent = seed(TICKET)  # the first paraphrase example is a tickets task: skipped here
    _, _, server = evolve(
        tmp_path, parent, "paraphrase", scripted(paraphrase={"question": "x"}), "--no-repair"
    )
    (body,) = server.bodies
    assert "Great panel on open data today." in _user(body)
    assert _user(body).count("Request: ") == 2  # the example's and the task's


@pytest.mark.parametrize("operator", ["deepen", "broaden"])
def test_worked_examples_pass_the_checks_they_teach(operator: str) -> None:
    """Every example answer is a valid task that its operator's rule accepts."""
    from pipeline.dependencies import infer_dependencies
    from pipeline.evolve.novelty import NoveltyCheck

    examples = example_answers(operator)
    assert len({parent.envs[0] for parent, _ in examples}) >= 2, "an example for every parent"
    for parent, answer in examples:
        envs = tuple(parent.envs)
        if operator == "deepen":
            new = deepen_model(envs).model_validate(answer)
            proposed = [(c.function, c.arguments) for c in parent.calls]
            proposed += [(c.tool, c.arguments) for c in new.new_calls]
            question = new.question
        else:
            output = evolved_model(envs).model_validate(answer)
            proposed = [(c.tool, c.arguments) for c in output.calls]
            question = output.question
        calls = [
            Call(id=f"s{i}", tool=f"{parent.envs[0]}.{tool}", arguments=arguments)
            for i, (tool, arguments) in enumerate(proposed, 1)
        ]
        calls = infer_dependencies(parent.envs, parent.initial_config, calls, question)
        task = parent.model_copy(update={"question": question, "calls": calls})
        verdict = validate_task(task.with_content_id())
        assert verdict.task is not None, verdict.rejection
        checked_parent = validate_task(parent).task
        assert checked_parent is not None
        admitted = NoveltyCheck([checked_parent]).admit(operator, parent.id, verdict.task)
        assert isinstance(admitted, Task), admitted


def test_a_lower_configured_token_cap_wins_over_the_operator_budget(tmp_path: Path) -> None:
    config = tmp_path / "llm.toml"
    config.write_text("[llm]\nmax_tokens = 100\n")
    answer = {"new_calls": [call("add", a=1, b=2)], "question": "x"}
    _, _, server = evolve(
        tmp_path, seed(ADD_THEN_MULTIPLY), "deepen", scripted(deepen=answer),
        "--no-repair", "--llm-config", str(config),
    )  # fmt: skip
    assert [body["max_tokens"] for body in server.bodies] == [100]


@pytest.mark.parametrize(
    "reply",
    [
        # the old format: calls as code strings
        {"question": "Add 3.5 and 4.25.", "ground_truth": ["add(a=3.5, b=4.25)"]},
        # a call string where an object belongs
        {"new_calls": ["add(a=3.5, b=4.25)"], "question": "Add 3.5 and 4.25."},
        # a tool of another environment
        {"new_calls": [call("send_message", receiver_id="USR002", message="hi")],
         "question": "Message Bob."},
    ],
)  # fmt: skip
def test_answers_outside_the_schema_are_rejected_with_the_raw_text(
    tmp_path: Path, reply: dict[str, Any]
) -> None:
    """What the grammar rules out on llama.cpp, a server without one may still send."""
    parent = seed(ADD_THEN_MULTIPLY)
    server = FakeOpenAIServer(answer=scripted(deepen=reply), faults=FaultMix.llama_cpp())
    os.chdir(tmp_path)
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(parent.model_dump_json() + "\n", encoding="utf-8")
    with server as url:
        argv = [
            "evolve", "--inline", "--output", str(tmp_path), "--run-id", "r", "--seeds",
            str(seeds), "--rounds", "1", "--operators", "deepen", "--llm-base-url", url,
            "--llm-model", "fake-model", "--no-repair", "--free-steps",
        ]  # fmt: skip
        assert main(argv) == 0
    (rejection,) = read_records(tmp_path / "runs/r/evolve_rejected.jsonl", Rejection)
    assert rejection.code is RejectionCode.PARSE_MALFORMED
    assert rejection.raw is not None and reply["question"] in rejection.raw
    # llama.cpp got the schema as a grammar: json_object with the tool names as an enum
    answered = [body for body in server.bodies if body["response_format"]["type"] == "json_object"]
    assert answered, "the client settles on json_object with the schema"
    schema = answered[0]["response_format"]["schema"]
    branches = schema["properties"]["new_calls"]["items"]["oneOf"]
    tools = {_branch(schema, ref)["properties"]["tool"]["const"] for ref in branches}
    assert "send_message" not in tools and "add" in tools
    # ... while the prompt shows calls compactly, tool names and an arguments object: the
    # per-tool schema would double a small model's prompt, and the grammar enforces it anyway
    described = answered[0]["messages"][0]["content"]
    assert "oneOf" not in described and '"enum":["absolute_value","add",' in described


def _branch(schema: dict[str, Any], ref: dict[str, str]) -> dict[str, Any]:
    branch: dict[str, Any] = schema["$defs"][ref["$ref"].rsplit("/", 1)[-1]]
    return branch


def test_paraphrase_that_keeps_the_order_in_other_words_is_accepted(tmp_path: Path) -> None:
    """The tie-break for tools sharing a word ("comment", "comments") looks at where the
    comment's own text sits, not at which tool's word comes first."""
    question = (
        "On tweet 6, comment 'Congrats to the whole team!', then list all the comments on"
        " that tweet."
    )
    assert_kept(tmp_path, seed(CONGRATS), question)
    # the read stays last behind step words, though its words ("brake pedal") are the press's
    brakes = seed(("vehicle", "0f0bbcda74e11673"))
    stepped = (
        "To begin, release the parking brake. Next, push the brake pedal down to the halfway"
        " point (position 0.5), and after that display the status of the brake pedal."
    )
    assert_kept(tmp_path, brakes, stepped)


def test_paraphrase_that_calls_a_stated_ticket_new_is_rejected(tmp_path: Path) -> None:
    """Run llm73: "Rename ticket 1207 ... and then show me the ticket" as "... display that
    new ticket's details"; ticket 1207 was there before, only its title changed."""
    parent = seed(("tickets", "4d456fbf05abad64"))
    made_new = (
        "Change the title of ticket 1207 to 'Payroll export fails on CSV' and then display"
        " that new ticket's details."
    )
    assert_rejected(
        tmp_path, parent, made_new, RejectionCode.EVOLVE_MEANING_CHANGED, "'new ticket'"
    )
    kept = (
        "Change the title of ticket 1207 to 'Payroll export fails on CSV', then show me the"
        " ticket with its new title."
    )
    assert_kept(tmp_path, parent, kept)


def test_paraphrase_that_gives_a_value_as_another_field_is_rejected(tmp_path: Path) -> None:
    """Run llm89 (both readers): "... with the description 'Follow-up: ...'" as "Open a new
    ticket with the title 'Follow-up: ...'", where the title is the one copied from ticket
    2210. Moving the value within the request keeps its field."""
    parent = seed(("tickets", "6567d37e89ea7da8"))  # Look up ticket 2210 and open a new ...
    swapped = (
        "Open a new ticket with the title 'Follow-up: the first fix did not hold.' at priority"
        " 5, and link it to ticket number 2210."
    )
    assert_rejected(
        tmp_path,
        parent,
        swapped,
        RejectionCode.EVOLVE_MEANING_CHANGED,
        "as the title of create_ticket",
    )
    kept = (
        "Fetch ticket 2210, then create a priority 5 ticket that reuses its exact title and has"
        " the description 'Follow-up: the first fix did not hold.'"
    )
    assert_kept(tmp_path, parent, kept)


def test_paraphrase_that_keeps_a_step_only_as_its_purpose_is_rejected(tmp_path: Path) -> None:
    """Run llm89 (both readers): "How far is it from Silverpine to Oakendale? Look up the zip
    code of each city and estimate the driving distance" as "To find the distance between
    Silverpine and Oakendale, please provide the zip codes of both cities": the distance is
    only why, and the request reads as the assistant asking the user."""
    parent = seed(("vehicle", "263b22865c0b5148"))
    purpose = (
        "To find the distance between Silverpine and Oakendale, please provide the zip codes of"
        " both cities."
    )
    assert_rejected(
        tmp_path,
        parent,
        purpose,
        RejectionCode.EVOLVE_STEP_UNASKED,
        "estimate_distance only as a purpose",
    )
    # a purpose whose steps are still asked for outside it ("zip codes" for get_zipcode...)
    kept = (
        "To plan my drive from Silverpine to Oakendale, get the zip codes of both cities and"
        " estimate how far apart they are by road."
    )
    assert_kept(tmp_path, parent, kept)


def test_paraphrase_that_names_another_data_format_is_rejected(tmp_path: Path) -> None:
    """Run llm101 (both readers): a conversion to CSV reworded to "return the resulting
    Markdown table" asks for an output no call makes. A format the parent named may be
    written in another case."""
    parent = seed(("data_format", "e07f8fddfcab7ee4"))  # Convert the CSV text ... to JSON ...
    other_format = (
        "Please convert the CSV text 'name,age\nAda,36\nGrace,45' to JSON shown as a Markdown"
        " table, and after that check those records against a schema in which 'name' must be"
        " a string while 'age' must be an integer."
    )
    assert_rejected(
        tmp_path, parent, other_format, RejectionCode.EVOLVE_MEANING_CHANGED, "'markdown'"
    )
    kept = (
        "Please convert the csv text 'name,age\nAda,36\nGrace,45' to JSON, and after that"
        " check those records against a schema in which 'name' must be a string while 'age'"
        " must be an integer."
    )
    assert_kept(tmp_path, parent, kept)


def test_paraphrase_that_states_a_name_once_for_two_roles_is_rejected(tmp_path: Path) -> None:
    """Run llm103 (both readers): "I'm Priya Raman" dropped, the name written only as the
    cardholder's, so nothing says whose name logs in."""
    parent = seed(("travel", "619d1fd47e44564b"))  # Log me into the travel service ... my card
    once = (
        "Sign me in to the travel service using client id 'cli_88213', client secret"
        " 'Sx9!trav', refresh token 'rf_55120' and read and write access. Next, register my"
        " card 4539 1488 0343 6467 (expiry 09/2029, cardholder Priya Raman, CVV 412) and pay"
        " with it for an economy flight from SFO to ORD on 2026-04-14."
    )
    assert_rejected(
        tmp_path, parent, once, RejectionCode.EVOLVE_MEANING_CHANGED, "fewer times than the roles"
    )
    twice = once.replace("read and write access.", "read and write access; I'm Priya Raman.")
    assert_kept(tmp_path, parent, twice)


def test_paraphrase_that_calls_a_thing_new_that_no_call_makes_is_rejected(tmp_path: Path) -> None:
    """Both llm107 readers: "Log me in to my brokerage account ..." as "Open a new brokerage
    account ...": a log-in makes nothing. "the new balance" the deposit returns stays."""
    parent = seed(("trading", "8f92a6f79b95ad82"))  # Log me in to my brokerage account ...
    opened = (
        "Open a new brokerage account with username 'jdoe' and password 'Tr4de!2024', then"
        " deposit $2500 into it, and tell me the new balance."
    )
    assert_rejected(
        tmp_path, parent, opened, RejectionCode.EVOLVE_MEANING_CHANGED, "'new brokerage account'"
    )
    kept = (
        "Sign in to my brokerage account as 'jdoe' using the password 'Tr4de!2024', put $2500"
        " into it, and let me know what the new balance is."
    )
    assert_kept(tmp_path, parent, kept)


def test_paraphrase_that_moves_a_steps_numbers_to_another_step_is_rejected(
    tmp_path: Path,
) -> None:
    """Run llm131 (a reader: mismatch): "Raise 2 to the power of 10, then take the base-2
    logarithm of the result ..." as "Take the base-2 logarithm of 10, ...": both numbers are
    still said, but for the logarithm; nothing asks to raise 2 to a power."""
    assert_tells_apart(
        tmp_path,
        seed(("maths", "e258c82b5e6b326a")),
        "Take the base-2 logarithm of 10, rounded to four decimal places.",
        RejectionCode.EVOLVE_STEP_UNASKED,
        "no longer asks for power",
        "Compute 2 to the power of 10 and then find the base-2 logarithm of that number, with"
        " 4 digits of precision.",
    )


def test_paraphrase_that_no_longer_picks_an_entry_is_rejected(tmp_path: Path) -> None:
    """Run llm131 (a reader: mismatch): "... find the lines of meeting_notes.txt that mention
    'Action' and write the first of them into ..." as "... copy those lines into a new file"
    asks for every line where the calls write one. "the first of those lines" still picks it."""
    every = (
        "In my documents folder, locate the lines of 'meeting_notes.txt' that contain 'Action',"
        " and then copy those lines into a new file named 'next_step.txt' in the same folder."
    )
    assert_tells_apart(
        tmp_path,
        seed(("filesystem", "f6bb4340e769ce52")),
        every,
        RejectionCode.EVOLVE_MEANING_CHANGED,
        "no longer picks the first",
        every.replace("copy those lines", "copy the first of those lines"),
    )


def test_paraphrase_that_speaks_to_the_recipient_is_rejected(tmp_path: Path) -> None:
    """Run llm139 (both readers): "Find Daniel's user id and send him the message '...'" as
    "Daniel, please send the message '...'" speaks to Daniel and names no recipient."""
    assert_tells_apart(
        tmp_path,
        seed(("messaging", "b9279f0ec4320861")),
        "Daniel, please send the message 'The build is green again.'",
        RejectionCode.EVOLVE_MEANING_CHANGED,
        "speaks to 'Daniel'",
        "Get the user id for Daniel, then message him: 'The build is green again.'",
    )
