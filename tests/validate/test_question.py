"""The question checks (``pipeline/validate/question.py``), through the real validation chain.

Each case is a small task that runs cleanly (its calls execute, its dependencies are right), so
the question is what decides: a flawed question must be rejected with its ``question.*`` code,
a sound one must pass ``check_question`` and must not be rejected at the question stage.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.models import Call, RejectionCode, Stage, Task
from pipeline.seeds import load_seeds
from pipeline.validate.chain import validate_task
from pipeline.validate.context import Reject, ValidationContext
from pipeline.validate.question import check_question

_FILESYSTEM = {
    "filesystem": {
        "long_context": False,
        "root": {
            "alice": {
                "type": "directory",
                "contents": {
                    "workspace": {
                        "type": "directory",
                        "contents": {
                            "notes.txt": {"type": "file", "content": "buy milk"},
                            "archive": {"type": "directory", "contents": {}},
                        },
                    }
                },
            }
        },
        "cwd": [],
    }
}
_POSTING = {
    "posting": {
        "username": "ann",
        "password": "pw-1",
        "authenticated": False,
        "tweets": {},
        "comments": {},
        "retweets": {},
        "following_list": [],
        "tweet_counter": 0,
    }
}
_TRADING = {
    "trading": {
        "random_seed": 1053520,
        "rng_words": 0,
        "orders": {},
        "account_info": {"account_id": 77120, "balance": 15000.0, "binding_card": 5105105105105100},
        "authenticated": True,
        "market_status": "Open",
        "order_counter": 3001,
        "stocks": {
            "MSFT": {
                "price": 310.23,
                "percent_change": 0.09,
                "volume": 3.234,
                "MA(5)": 309.88,
                "MA(20)": 310.11,
            }
        },
        "watch_list": ["MSFT"],
        "transaction_history": [],
        "long_context": False,
        "now": "2024-09-01 10:30:00",
    }
}


def _task(question: str, envs: list[str], calls: list[dict[str, Any]], config: Any) -> Task:
    return Task(
        id="pending",
        category=envs[0],
        envs=envs,
        question=question,
        initial_config=config,
        calls=[Call.model_validate(call) for call in calls],
    ).with_content_id()


def copy_task(question: str, source: str = "notes.txt") -> Task:
    """Go into workspace, copy a file into its archive folder."""
    return _task(
        question,
        ["filesystem"],
        [
            {"id": "s1", "tool": "filesystem.cd", "arguments": {"folder": "workspace"}},
            {
                "id": "s2",
                "tool": "filesystem.cp",
                "arguments": {"source": source, "destination": "archive"},
                "depends_on": ["s1"],
            },
        ],
        _FILESYSTEM,
    )


def post_task(question: str, tags: list[str] | None = None) -> Task:
    """Log in as ann and post 'Launch day!' mentioning @kim (and with ``tags``)."""
    arguments: dict[str, Any] = {"content": "Launch day!", "mentions": ["@kim"]}
    if tags:
        arguments["tags"] = tags
    return _task(
        question,
        ["posting"],
        [
            {
                "id": "s1",
                "tool": "posting.authenticate_twitter",
                "arguments": {"username": "ann", "password": "pw-1"},
            },
            {
                "id": "s2",
                "tool": "posting.post_tweet",
                "arguments": arguments,
                "depends_on": ["s1"],
            },
        ],
        _POSTING,
    )


def order_task(question: str) -> Task:
    """Buy 20 MSFT at 310.23, then read the new order."""
    return _task(
        question,
        ["trading"],
        [
            {
                "id": "s1",
                "tool": "trading.place_order",
                "arguments": {
                    "order_type": "Buy",
                    "symbol": "MSFT",
                    "price": 310.23,
                    "amount": 20,
                },
            },
            {
                "id": "s2",
                "tool": "trading.get_order_details",
                "arguments": {"order_id": 3001},
                "depends_on": ["s1"],
                "bindings": {"order_id": "s1.order_id"},
            },
        ],
        _TRADING,
    )


def shop_task(question: str, conditional: bool = False) -> Task:
    """Check the tyres, then look up the nearest tyre shop (after the check when
    ``conditional``)."""
    return _task(
        question,
        ["vehicle"],
        [
            {"id": "s1", "tool": "vehicle.check_tire_pressure", "arguments": {}},
            {
                "id": "s2",
                "tool": "vehicle.find_nearest_tire_shop",
                "arguments": {},
                "depends_on": ["s1"] if conditional else [],
            },
        ],
        {"vehicle": {}},
    )


FLAWED: list[tuple[str, Task, RejectionCode]] = [
    # -- a request worded for a tool that no call uses
    (
        "guided to a shop with no navigation",
        shop_task("Check my tyre pressure, then find the nearest tyre shop and guide me there."),
        RejectionCode.QUESTION_UNSERVED_REQUEST,
    ),
    (
        "taken to a shop with no navigation",
        shop_task("Check my tyre pressure. Find the nearest tyre shop and take me to it."),
        RejectionCode.QUESTION_UNSERVED_REQUEST,
    ),
    (
        "the condition acted on (the shop looked up), the navigation left out",
        shop_task(
            "Check my tyre pressure; if any tyre is under 30 PSI, find the nearest tyre shop "
            "and guide me there.",
            conditional=True,
        ),
        RejectionCode.QUESTION_UNSERVED_REQUEST,
    ),
    (
        "a file's presence asked for, none looked up before copying it",
        copy_task(
            "Go into workspace and look for any presence of 'notes.txt'. Copy it to archive."
        ),
        RejectionCode.QUESTION_UNSERVED_REQUEST,
    ),
    (
        "directions asked for, none set",
        shop_task("Check my tyre pressure and give me directions to the nearest tyre shop."),
        RejectionCode.QUESTION_UNSERVED_REQUEST,
    ),
    # -- something called new that the state already holds (no call creates it)
    (
        "a new directory that exists",
        copy_task("Go into workspace and copy notes.txt into a new directory 'archive'."),
        RejectionCode.QUESTION_FALSE_PREMISE,
    ),
    (
        "a new folder called ...",
        copy_task('Go into workspace; copy notes.txt to the new folder called "archive".'),
        RejectionCode.QUESTION_FALSE_PREMISE,
    ),
    (
        "the name before 'as a new directory'",
        copy_task("Go into workspace and copy notes.txt into 'archive' as a new directory."),
        RejectionCode.QUESTION_FALSE_PREMISE,
    ),
    # -- a quoted name or value that no step uses
    (
        "a folder no step enters",
        copy_task(
            "In the 'Documentation' folder, go into workspace and copy notes.txt to archive."
        ),
        RejectionCode.QUESTION_UNUSED_VALUE,
    ),
    (
        "a search asked for but never made",
        copy_task(
            "Find 'budget analysis' first, then go into workspace and copy notes.txt to archive."
        ),
        RejectionCode.QUESTION_UNUSED_VALUE,
    ),
    (
        "a handle written without quotes that no step uses",
        post_task(
            "Log me in as 'ann' with password 'pw-1' and post 'Launch day!' mentioning "
            "@kim, then tell @lena_m."
        ),
        RejectionCode.QUESTION_UNUSED_VALUE,
    ),
    (
        "a company that no step looks up",
        order_task("Buy 20 shares of 'Zeta Corp' (MSFT) at 310.23, then show me the order."),
        RejectionCode.QUESTION_UNUSED_VALUE,
    ),
    # -- the question leans on a conversation that is not there
    (
        "a demonstrative after a statement that never introduced its noun",
        copy_task(
            "The folder is workspace. Copy notes.txt from that list to archive, in workspace."
        ),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    (
        "starts mid-sentence",
        copy_task("latest notes that I keep in workspace. Copy notes.txt into archive."),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    (
        "opens with a state reached in a turn that is not there",
        copy_task("With the folder tidied up, go into workspace and copy notes.txt to archive."),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    (
        "opens after an event it never asked for",
        copy_task("After the file transfer, go into workspace and copy notes.txt to archive."),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    (
        "praise for work the question has not seen",
        copy_task("Go into workspace. Wonderful, with that done, copy notes.txt into archive."),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    (
        "a correction of an earlier request",
        copy_task(
            "Go into workspace and copy notes.txt. Oh I should have been more clear: into archive."
        ),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    (
        "opens with a connective",
        copy_task("Furthermore, go into workspace and copy notes.txt into the archive folder."),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    (
        "a later sentence continues although nothing was asked",
        copy_task("I keep my notes in workspace. Lastly, copy notes.txt into its archive folder."),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    (
        "a demonstrative with nothing to point at",
        copy_task("Copy that file into the archive folder of workspace."),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    (
        "a bare 'it' as the first object",
        copy_task("I need it copied into the archive folder in workspace."),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    (
        "refers to an earlier conversation",
        copy_task("As I mentioned, go into workspace and copy notes.txt into the archive folder."),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    (
        "a number of shares of a stock it never names",
        order_task("I want 20 shares at $310.23 each. Then show me the details of the order."),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    # -- nothing is asked
    (
        "a statement only",
        copy_task("The directory is named 'archive'."),
        RejectionCode.QUESTION_NO_REQUEST,
    ),
    (
        "two statements",
        copy_task("My notes are in notes.txt. The workspace folder has an archive folder."),
        RejectionCode.QUESTION_NO_REQUEST,
    ),
    (
        "a statement about an order",
        order_task("The order is for 20 MSFT shares at $310.23, and its details matter."),
        RejectionCode.QUESTION_NO_REQUEST,
    ),
    # -- generator leftovers
    (
        "a doubled phrase",
        copy_task("Go into workspace and copy the file the file notes.txt into archive."),
        RejectionCode.QUESTION_TEMPLATE_ARTEFACT,
    ),
    (
        "a doubled word",
        copy_task("Go into workspace and copy notes.txt into the the archive folder."),
        RejectionCode.QUESTION_TEMPLATE_ARTEFACT,
    ),
    (
        "an unfilled slot",
        copy_task("Go into workspace and copy {file_name} into the archive folder."),
        RejectionCode.QUESTION_TEMPLATE_ARTEFACT,
    ),
    (
        "a quote that never closes",
        copy_task("Go into workspace and copy 'notes.txt into the archive folder."),
        RejectionCode.QUESTION_TEMPLATE_ARTEFACT,
    ),
    (
        "glued quotes",
        post_task("Log me in as ann' 'pw-1' and post 'Launch day!' mentioning @kim."),
        RejectionCode.QUESTION_TEMPLATE_ARTEFACT,
    ),
    (
        "doubled punctuation",
        copy_task("Go into workspace,, then copy notes.txt into the archive folder."),
        RejectionCode.QUESTION_TEMPLATE_ARTEFACT,
    ),
    # -- a literal's format is lost
    (
        "a mention without its @",
        post_task("Log me in as 'ann' with password 'pw-1' and post 'Launch day!' mentioning kim."),
        RejectionCode.QUESTION_FORMAT_LOST,
    ),
    (
        "a hashtag without its #",
        post_task(
            "Log me in as 'ann' with password 'pw-1' and post 'Launch day!' mentioning @kim, "
            "with the tag launch.",
            tags=["#launch"],
        ),
        RejectionCode.QUESTION_FORMAT_LOST,
    ),
    (
        "a file name without its extension",
        copy_task("Go into workspace and copy the file named notes into the archive folder."),
        RejectionCode.QUESTION_FORMAT_LOST,
    ),
    (
        "a tag the question writes with its # passed without it (run llm26: '@alice', 'alice')",
        post_task(
            "Log me in as 'ann' with password 'pw-1' and post 'Launch day!' mentioning @kim, "
            "tagged #release.",
            tags=["release"],
        ),
        RejectionCode.QUESTION_FORMAT_LOST,
    ),
]

SOUND: list[tuple[str, Task]] = [
    (
        "a file's presence checked by a listing before the copy",
        _task(
            "Go into workspace and look for any presence of 'notes.txt'. Copy it to archive.",
            ["filesystem"],
            [
                {"id": "s1", "tool": "filesystem.cd", "arguments": {"folder": "workspace"}},
                {"id": "s2", "tool": "filesystem.ls", "arguments": {}, "depends_on": ["s1"]},
                {
                    "id": "s3",
                    "tool": "filesystem.cp",
                    "arguments": {"source": "notes.txt", "destination": "archive"},
                    "depends_on": ["s2"],
                },
            ],
            _FILESYSTEM,
        ),
    ),
    (
        "a navigation that a false condition leaves out with the rest of its sentence",
        _task(
            "Check my tyre pressure and show me the fuel level; if any tyre is under 20 PSI, "
            "find the nearest tyre shop and guide me there.",
            ["vehicle"],
            [
                {"id": "s1", "tool": "vehicle.check_tire_pressure", "arguments": {}},
                {"id": "s2", "tool": "vehicle.displayCarStatus", "arguments": {"option": "fuel"}},
            ],
            {"vehicle": {}},
        ),
    ),
    (
        "a navigation the user waives",
        shop_task("Check my tyre pressure and find the nearest tyre shop; no need to guide me."),
    ),
    (
        "'new' for a file the call writes, beside an existing folder",
        copy_task(
            "Go into workspace and copy notes.txt to a new file 'notes_copy.txt'.",
        ).model_copy(
            update={
                "calls": [
                    Call(id="s1", tool="filesystem.cd", arguments={"folder": "workspace"}),
                    Call(
                        id="s2",
                        tool="filesystem.cp",
                        arguments={"source": "notes.txt", "destination": "notes_copy.txt"},
                        depends_on=["s1"],
                    ),
                ]
            }
        ),
    ),
    (
        "a request in lower case",
        copy_task("please go into workspace and copy notes.txt into archive."),
    ),
    (
        "a condition on the state, opened by 'with' and a participle inside the request",
        copy_task("Go into workspace and, with the folder opened, copy notes.txt into archive."),
    ),
    # context: earlier steps give later references their referent
    (
        "steps in order, then 'that file'",
        copy_task("Go into workspace, find notes.txt and copy that file into the archive folder."),
    ),
    (
        "'that' as a conjunction",
        copy_task("Make sure that you are in workspace, then copy notes.txt into archive."),
    ),
    (
        "First ... then ... Finally",
        order_task("First buy 20 MSFT shares at $310.23 each. Finally, show me that new order."),
    ),
    # requests in several forms
    ("a question mark", copy_task("Can you go into workspace and copy notes.txt into archive?")),
    (
        "a request marker without a question mark",
        copy_task("I'd like notes.txt from workspace copied into its archive folder."),
    ),
    ("an imperative after a scene", copy_task("I'm in my home folder. Copy notes.txt there.")),
    # quoted values are not prose: repetition and odd punctuation inside them are fine
    (
        "repetition inside a quoted message",
        post_task(
            "Log me in as 'ann' with password 'pw-1' and post 'Launch day!' mentioning @kim; "
            "no 'ha ha' in it."
        ),
    ),
    (
        "a possessive and an apostrophe",
        copy_task("Go into Ann's workspace and copy the users' notes.txt into archive."),
    ),
    # formats kept
    (
        "the mention with its @",
        post_task(
            "Log me in as 'ann' with password 'pw-1' and post 'Launch day!' mentioning @kim."
        ),
    ),
    (
        "the hashtag with its #",
        post_task(
            "Log me in as 'ann' with password 'pw-1' and post 'Launch day!' with #launch, "
            "mentioning @kim.",
            tags=["#launch"],
        ),
    ),
    (
        "an ordinary word that is also the file's stem",
        copy_task("Go into workspace and copy my notes, notes.txt, into the archive folder."),
    ),
]


@pytest.mark.parametrize(("label", "task", "code"), FLAWED, ids=[case[0] for case in FLAWED])
def test_flawed_questions_are_rejected_with_their_code(
    label: str, task: Task, code: RejectionCode
) -> None:
    verdict = validate_task(task)
    assert verdict.rejection is not None, f"{label}: accepted"
    assert verdict.rejection.code is code, f"{label}: {verdict.rejection.message}"
    assert verdict.rejection.evidence.output, "the offending span is kept as evidence"


@pytest.mark.parametrize(("label", "task"), SOUND, ids=[case[0] for case in SOUND])
def test_sound_questions_pass(label: str, task: Task) -> None:
    try:
        check_question(ValidationContext(task))
    except Reject as failure:
        pytest.fail(f"{label}: {failure.code.value}: {failure.message}")
    rejection = validate_task(task).rejection
    assert rejection is None or rejection.stage is not Stage.QUESTION, (
        f"{label}: {rejection.message if rejection else ''}"
    )


def test_every_code_has_enough_cases() -> None:
    codes = [code for code in RejectionCode if code.stage is Stage.QUESTION]
    for code in codes:
        assert sum(1 for case in FLAWED if case[2] is code) >= 3, code


def test_other_failures_are_kept_as_evidence() -> None:
    verdict = validate_task(copy_task("Furthermore, the the directory is named 'archive'."))
    assert verdict.rejection is not None
    assert verdict.rejection.code is RejectionCode.QUESTION_TEMPLATE_ARTEFACT
    also = verdict.rejection.evidence.also_failed
    assert set(also) == {"question.context_dependent", "question.no_request"}


def test_format_lost_names_the_step_and_the_value() -> None:
    verdict = validate_task(
        post_task("Log me in as 'ann' with password 'pw-1' and post 'Launch day!' mentioning kim.")
    )
    assert verdict.rejection is not None
    assert verdict.rejection.evidence.step_id == "s2"
    assert verdict.rejection.evidence.output == {
        "argument": "mentions",
        "value": "@kim",
        "span": "kim",
    }


@pytest.mark.parametrize("seed", load_seeds(), ids=lambda seed: seed.id)
def test_every_seed_passes_the_question_checks(seed: Task) -> None:
    check_question(ValidationContext(seed))
