"""One task per label of ../shared/validity/RUBRIC.md, built from its examples, each rejected by
the validation chain with the code that stands for that label; and a valid twin accepted."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.models import Call, RejectionCode, Task
from pipeline.validate.chain import validate_task


def _task(
    question: str,
    envs: list[str],
    calls: list[dict[str, Any]],
    config: dict[str, Any] | None = None,
) -> Task:
    return Task(
        id="pending",
        category=envs[0],
        envs=envs,
        question=question,
        initial_config=config or {},
        calls=[Call.model_validate(call) for call in calls],
    ).with_content_id()


_FS = {
    "filesystem": {
        "root": {
            "home": {
                "type": "directory",
                "contents": {
                    "workspace": {
                        "type": "directory",
                        "contents": {
                            "notes.txt": {"type": "file", "content": "buy milk"},
                            "Violet": {"type": "directory", "contents": {}},
                        },
                    }
                },
            }
        },
        "cwd": [],
    }
}

_TICKETS = {"tickets": {"ticket_queue": [], "ticket_counter": 58, "current_user": "bmartin"}}

_TRAVEL = {
    "travel": {
        "credit_card_list": {
            "card_7": {
                "card_number": "4111111111111111",
                "expiration_date": "12/2030",
                "cardholder_name": "Ann Lee",
                "card_verification_number": 123,
                "balance": 500.0,
            },
            "card_8": {
                "card_number": "5500000000000004",
                "expiration_date": "01/2031",
                "cardholder_name": "Ann Lee",
                "card_verification_number": 456,
                "balance": 80.0,
            },
        },
        "access_token": "tok-hidden-991",
        "token_type": "Bearer",
        "token_expires_in": 3600,
        "token_scope": "read_write",
        "user_first_name": "Ann",
        "user_last_name": "Lee",
    }
}


def _nested_check(flatten_first: bool) -> Task:
    """Check a record with a nested address against 'address.city': the flattened record has
    that field, the nested one does not."""
    nested = '{"name": "Ada", "address": {"city": "London"}}'
    flat = '{"name": "Ada", "address.city": "London"}'
    checked = "the flattened record" if flatten_first else "the record I gave you"
    return _task(
        f"Flatten the JSON record '{nested}' into dotted keys, then check {checked} against"
        " the schema where 'name' and 'address.city' are strings.",
        ["data_format"],
        [
            {"id": "s1", "tool": "data_format.flatten_record", "arguments": {"content": nested}},
            {
                "id": "s2",
                "tool": "data_format.validate_record",
                "arguments": {
                    "content": flat if flatten_first else nested,
                    "field_types": {"name": "string", "address.city": "string"},
                },
                "depends_on": ["s1"] if flatten_first else [],
                "bindings": {"content": "s1.content"} if flatten_first else {},
            },
        ],
    )


CASES: list[tuple[str, Task, RejectionCode]] = [
    (
        "nonsensical: a percent change deposited as money",
        _task(
            "Look up NVDA and deposit its percent change into my account.",
            ["trading"],
            [
                {"id": "s1", "tool": "trading.get_stock_info", "arguments": {"symbol": "NVDA"}},
                {
                    "id": "s2",
                    "tool": "trading.fund_account",
                    "arguments": {"amount": 0.17},
                    "depends_on": ["s1"],
                    "bindings": {"amount": "s1.percent_change"},
                },
            ],
            {"trading": {"authenticated": True}},
        ),
        RejectionCode.DEPENDENCY_TYPE_MISMATCH,
    ),
    (
        "ungrounded: an access token only the hidden state holds",
        _task(
            "What are the balances of my cards card_7 and card_8?",
            ["travel"],
            [
                {
                    "id": "s1",
                    "tool": "travel.get_credit_card_balance",
                    "arguments": {"access_token": "tok-hidden-991", "card_id": "card_7"},
                },
                {
                    "id": "s2",
                    "tool": "travel.get_credit_card_balance",
                    "arguments": {"access_token": "tok-hidden-991", "card_id": "card_8"},
                },
            ],
            _TRAVEL,
        ),
        RejectionCode.GROUNDING_HIDDEN_STATE,
    ),
    (
        "under-specified: a statement, no request, and a file it never names",
        _task(
            "The directory is named 'Violet'.",
            ["filesystem"],
            [
                {"id": "s1", "tool": "filesystem.cd", "arguments": {"folder": "workspace"}},
                {
                    "id": "s2",
                    "tool": "filesystem.cp",
                    "arguments": {"source": "notes.txt", "destination": "Violet"},
                    "depends_on": ["s1"],
                },
            ],
            _FS,
        ),
        RejectionCode.QUESTION_NO_REQUEST,
    ),
    (
        "context-dependent: opens as if continuing a conversation",
        _task(
            "Furthermore, go into workspace and copy notes.txt into the Violet folder.",
            ["filesystem"],
            [
                {"id": "s1", "tool": "filesystem.cd", "arguments": {"folder": "workspace"}},
                {
                    "id": "s2",
                    "tool": "filesystem.cp",
                    "arguments": {"source": "notes.txt", "destination": "Violet"},
                    "depends_on": ["s1"],
                },
            ],
            _FS,
        ),
        RejectionCode.QUESTION_CONTEXT_DEPENDENT,
    ),
    (
        "unnatural-language: a template's doubled phrase",
        _task(
            "Go into workspace, then copy notes.txt into the the Violet folder.",
            ["filesystem"],
            [
                {"id": "s1", "tool": "filesystem.cd", "arguments": {"folder": "workspace"}},
                {
                    "id": "s2",
                    "tool": "filesystem.cp",
                    "arguments": {"source": "notes.txt", "destination": "Violet"},
                    "depends_on": ["s1"],
                },
            ],
            _FS,
        ),
        RejectionCode.QUESTION_TEMPLATE_ARTEFACT,
    ),
    (
        "unnatural-language: a mention that lost its @",
        _task(
            "Log me in as 'ann' with password 'pw-1' and post 'Launch day!' mentioning kim.",
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
                    "arguments": {"content": "Launch day!", "mentions": ["@kim"]},
                    "depends_on": ["s1"],
                },
            ],
            {
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
            },
        ),
        RejectionCode.QUESTION_FORMAT_LOST,
    ),
    (
        "wrong-dependency: 'before' in the question, no order in depends_on",
        _task(
            "Engage the parking brake before you check my tyre pressure.",
            ["vehicle"],
            [
                {
                    "id": "s1",
                    "tool": "vehicle.activateParkingBrake",
                    "arguments": {"mode": "engage"},
                },
                {"id": "s2", "tool": "vehicle.check_tire_pressure", "arguments": {}},
            ],
        ),
        RejectionCode.DEPENDENCY_UNDECLARED,
    ),
    (
        "wrong-dependency: a conditional step that depends on nothing",
        _task(
            "Check my tyre pressure, and if any tyre is under 35 PSI, find the nearest tyre shop.",
            ["vehicle"],
            [
                {"id": "s1", "tool": "vehicle.check_tire_pressure", "arguments": {}},
                {"id": "s2", "tool": "vehicle.find_nearest_tire_shop", "arguments": {}},
            ],
        ),
        RejectionCode.DEPENDENCY_CONDITION_UNLINKED,
    ),
    (
        "wrong-dependency: the conditioned step is unlinked though another read has a dependent",
        _task(
            "Convert 20 liters to gallons and add that much fuel. Check my tyre pressure, and "
            "should any tyre be under 35 PSI, find the nearest tyre shop.",
            ["vehicle"],
            [
                {"id": "s1", "tool": "vehicle.liter_to_gallon", "arguments": {"liter": 20}},
                {
                    "id": "s2",
                    "tool": "vehicle.fillFuelTank",
                    "arguments": {"fuelAmount": 5.283440000000001},
                    "depends_on": ["s1"],
                    "bindings": {"fuelAmount": "s1.gallon"},
                },
                {"id": "s3", "tool": "vehicle.check_tire_pressure", "arguments": {}},
                {"id": "s4", "tool": "vehicle.find_nearest_tire_shop", "arguments": {}},
            ],
        ),
        RejectionCode.DEPENDENCY_CONDITION_UNLINKED,
    ),
    (
        "wrong-dependency: a value passed on rounded without depending on its producer",
        _task(
            "Convert 38 liters to gallons, then fill the tank with that amount rounded to two "
            "decimals.",
            ["vehicle"],
            [
                {"id": "s1", "tool": "vehicle.liter_to_gallon", "arguments": {"liter": 38}},
                {"id": "s2", "tool": "vehicle.fillFuelTank", "arguments": {"fuelAmount": 10.04}},
            ],
        ),
        RejectionCode.DEPENDENCY_UNDECLARED,
    ),
    (
        "nonsensical: a distance in km passed as miles, without a binding",
        _task(
            "Estimate the distance between zip codes 83214 and 74532, then tell me whether my "
            "car can make a trip of that distance.",
            ["vehicle"],
            [
                {
                    "id": "s1",
                    "tool": "vehicle.estimate_distance",
                    "arguments": {"cityA": "83214", "cityB": "74532"},
                },
                {
                    "id": "s2",
                    "tool": "vehicle.estimate_drive_feasibility_by_mileage",
                    "arguments": {"distance": 750.0},
                },
            ],
        ),
        RejectionCode.DEPENDENCY_TYPE_MISMATCH,
    ),
    (
        "under-specified: the question names a folder no step enters",
        _task(
            "In the 'Documentation' folder, go into 'workspace' and show me the last line of "
            "'notes.txt'.",
            ["filesystem"],
            [
                {"id": "s1", "tool": "filesystem.cd", "arguments": {"folder": "workspace"}},
                {
                    "id": "s2",
                    "tool": "filesystem.tail",
                    "arguments": {"file_name": "notes.txt", "lines": 1},
                    "depends_on": ["s1"],
                },
            ],
            _FS,
        ),
        RejectionCode.QUESTION_UNUSED_VALUE,
    ),
    (
        "ungrounded: 'fill the tank' as the tank's documented capacity, no level read",
        _task(
            "Fill my car's fuel tank up to full, then show me the fuel level.",
            ["vehicle"],
            [
                {"id": "s1", "tool": "vehicle.fillFuelTank", "arguments": {"fuelAmount": 50}},
                {
                    "id": "s2",
                    "tool": "vehicle.displayCarStatus",
                    "arguments": {"option": "fuel"},
                    "depends_on": ["s1"],
                },
            ],
            {"vehicle": {"fuelLevel": 0.0}},
        ),
        RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT,
    ),
    (
        "ungrounded: 'the last lines' as 1, the length of a one-item listing",
        _task(
            "List what is here, go into 'workspace' and show me the last lines of 'notes.txt'.",
            ["filesystem"],
            [
                {"id": "s1", "tool": "filesystem.ls", "arguments": {}},
                {
                    "id": "s2",
                    "tool": "filesystem.cd",
                    "arguments": {"folder": "workspace"},
                    "depends_on": ["s1"],
                },
                {
                    "id": "s3",
                    "tool": "filesystem.tail",
                    "arguments": {"file_name": "notes.txt", "lines": 1},
                    "depends_on": ["s2"],
                },
            ],
            _FS,
        ),
        RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT,
    ),
    (
        "ungrounded: a number derived from two numbers of the documentation only",
        _task(
            "Log me in to the ticket system as 'tomas' with password 'SecurePass123', then open "
            "a ticket titled 'Unsatisfactory support'.",
            ["tickets"],
            [
                {
                    "id": "s1",
                    "tool": "tickets.ticket_login",
                    "arguments": {"username": "tomas", "password": "SecurePass123"},
                },
                {
                    "id": "s2",
                    "tool": "tickets.create_ticket",
                    "arguments": {"title": "Unsatisfactory support", "priority": 4},
                    "depends_on": ["s1"],
                },
            ],
        ),
        RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT,
    ),
    (
        "under-specified: a condition on a value that no step reads",
        _task(
            "Should any tyre be under 40 PSI, find the nearest tire shop and set the navigation "
            "to it.",
            ["vehicle"],
            [
                {"id": "s1", "tool": "vehicle.find_nearest_tire_shop", "arguments": {}},
                {
                    "id": "s2",
                    "tool": "vehicle.set_navigation",
                    "arguments": {"destination": "456 Oakwood Avenue, Rivermist, 83214"},
                    "depends_on": ["s1"],
                    "bindings": {"destination": "s1.shopLocation"},
                },
            ],
        ),
        RejectionCode.DEPENDENCY_CONDITION_UNLINKED,
    ),
    (
        "ungrounded: a level no step shows, taken from the question's refill",
        _task(
            "I've just put 13.2 gallons of fuel in my car. Top the tank up to the maximum "
            "it holds, then show me the fuel level.",
            ["vehicle"],
            [
                {"id": "s1", "tool": "vehicle.fillFuelTank", "arguments": {"fuelAmount": 36.8}},
                {
                    "id": "s2",
                    "tool": "vehicle.displayCarStatus",
                    "arguments": {"option": "fuel"},
                    "depends_on": ["s1"],
                },
            ],
            {"vehicle": {"fuelLevel": 13.2}},
        ),
        RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT,
    ),
    (
        "mismatch: a call that does nothing the question asks for",
        _task(
            "Go into workspace, list what is there and tell me the current path.",
            ["filesystem"],
            [
                {"id": "s1", "tool": "filesystem.cd", "arguments": {"folder": "workspace"}},
                {"id": "s2", "tool": "filesystem.ls", "arguments": {}, "depends_on": ["s1"]},
                {"id": "s3", "tool": "filesystem.pwd", "arguments": {}, "depends_on": ["s1"]},
                {"id": "s4", "tool": "filesystem.ls", "arguments": {}, "depends_on": ["s1"]},
            ],
            _FS,
        ),
        RejectionCode.MINIMALITY_REDUNDANT_CALL,
    ),
    (
        "mismatch: a later sentence asks for 'ls' again and no call does it",
        _task(
            "Go to 'workspace' and list its files. Then go into 'Violet' and list what it "
            "holds using 'ls'.",
            ["filesystem"],
            [
                {"id": "s1", "tool": "filesystem.cd", "arguments": {"folder": "workspace"}},
                {"id": "s2", "tool": "filesystem.ls", "arguments": {}, "depends_on": ["s1"]},
                {
                    "id": "s3",
                    "tool": "filesystem.cd",
                    "arguments": {"folder": "Violet"},
                    "depends_on": ["s2"],
                },
            ],
            _FS,
        ),
        RejectionCode.QUESTION_UNUSED_VALUE,
    ),
    (
        "mismatch: a directory called new that already exists (no call creates it)",
        _task(
            "Go into workspace and move notes.txt into a new directory 'Violet'.",
            ["filesystem"],
            [
                {"id": "s1", "tool": "filesystem.cd", "arguments": {"folder": "workspace"}},
                {
                    "id": "s2",
                    "tool": "filesystem.mv",
                    "arguments": {"source": "notes.txt", "destination": "Violet"},
                    "depends_on": ["s1"],
                },
            ],
            _FS,
        ),
        RejectionCode.QUESTION_FALSE_PREMISE,
    ),
    (
        "wrong-dependency: 'then log me out' with the log-out free to run first",
        _task(
            "Create a ticket titled 'Printer jam' with priority 2, change its description to "
            "'Tray 2 is stuck.', and then log me out.",
            ["tickets"],
            [
                {
                    "id": "s1",
                    "tool": "tickets.create_ticket",
                    "arguments": {"title": "Printer jam", "priority": 2},
                },
                {
                    "id": "s2",
                    "tool": "tickets.edit_ticket",
                    "arguments": {"ticket_id": 58, "updates": {"description": "Tray 2 is stuck."}},
                    "depends_on": ["s1"],
                    "bindings": {"ticket_id": "s1.id"},
                },
                {"id": "s3", "tool": "tickets.logout", "arguments": {}, "depends_on": ["s1"]},
            ],
            _TICKETS,
        ),
        RejectionCode.DEPENDENCY_UNDECLARED,
    ),
    (
        "nonsensical: JSON text saved under a .csv name (run llm32)",
        _task(
            "Save the JSON text '{\"name\": \"Ada\"}' as the document 'people.csv', then "
            "list my documents.",
            ["data_format"],
            [
                {
                    "id": "s1",
                    "tool": "data_format.save_document",
                    "arguments": {
                        "name": "people.csv",
                        "content": '{"name": "Ada"}',
                        "source_format": "json",
                    },
                },
                {
                    "id": "s2",
                    "tool": "data_format.list_documents",
                    "arguments": {},
                    "depends_on": ["s1"],
                },
            ],
        ),
        RejectionCode.STATIC_NAME_FORMAT_MISMATCH,
    ),
    (
        "nonsensical: a flattened field name checked on the nested record (run llm73)",
        _nested_check(flatten_first=False),
        RejectionCode.STATIC_NAME_FORMAT_MISMATCH,
    ),
]


def test_a_flattened_field_name_on_the_flattened_record_is_accepted() -> None:
    verdict = validate_task(_nested_check(flatten_first=True))
    assert verdict.accepted, verdict.rejection


def test_a_log_out_after_every_step_of_its_service_is_accepted_and_inferred() -> None:
    from pipeline.dependencies import infer_dependencies

    case = next(task for label, task, _ in CASES if "log me out" in label)
    calls = [c.model_copy(update={"depends_on": [], "bindings": {}}) for c in case.calls]
    inferred = infer_dependencies(case.envs, case.initial_config, calls, case.question)
    assert inferred[2].depends_on == ["s2"]
    fixed = case.model_copy(update={"calls": inferred}).with_content_id()
    verdict = validate_task(fixed)
    assert verdict.accepted, verdict.rejection


@pytest.mark.parametrize(("label", "task", "code"), CASES, ids=[case[0] for case in CASES])
def test_each_rubric_label_is_rejected_with_its_code(
    label: str, task: Task, code: RejectionCode
) -> None:
    verdict = validate_task(task)
    assert verdict.rejection is not None, f"{label}: accepted"
    assert verdict.rejection.code is code, f"{label}: {verdict.rejection.message}"
    assert verdict.rejection.message


def test_the_conditional_task_with_its_dependency_is_accepted() -> None:
    task = _task(
        "Check my tyre pressure, and if any tyre is under 35 PSI, find the nearest tyre shop.",
        ["vehicle"],
        [
            {"id": "s1", "tool": "vehicle.check_tire_pressure", "arguments": {}},
            {
                "id": "s2",
                "tool": "vehicle.find_nearest_tire_shop",
                "arguments": {},
                "depends_on": ["s1"],
            },
        ],
    )
    # the shop lookup behaves the same without the check, so only the condition justifies
    # the edge: the spurious-dependency check must accept a conditioned step
    verdict = validate_task(task)
    assert verdict.accepted, verdict.rejection


def test_the_token_stated_in_the_question_is_grounded() -> None:
    task = _task(
        "Using my access token tok-hidden-991, tell me the balance of card card_7, then log "
        "the same balance check again for card card_7 after that.",
        ["travel"],
        [
            {
                "id": "s1",
                "tool": "travel.get_credit_card_balance",
                "arguments": {"access_token": "tok-hidden-991", "card_id": "card_7"},
            },
        ],
        _TRAVEL,
    )
    verdict = validate_task(task)
    assert verdict.rejection is not None
    assert verdict.rejection.code is RejectionCode.STATIC_TOO_FEW_CALLS  # grounded, just short


def _litres_task(text: str) -> Task:
    return _task(
        "Read my buffer 'fuel' and add 1 to the number of litres it holds.",
        ["string_manipulation", "maths"],
        [
            {"id": "s1", "tool": "string_manipulation.read_buffer", "arguments": {"name": "fuel"}},
            {"id": "s2", "tool": "maths.add", "arguments": {"a": 35, "b": 1}},
        ],
        {"string_manipulation": {"buffers": {"fuel": text}}},
    )


def test_a_number_inside_a_long_returned_text_grounds_nothing() -> None:
    """A long status blob holds so many numbers that one matches by chance; a short text's
    number is what it says."""
    short = validate_task(_litres_task("Fuel in the tank: 35 litres."))
    assert short.rejection is None or short.rejection.stage.value != "grounding"
    blob = "Fuel in the tank: 35 litres. " + "A log line without any digit in it. " * 20
    long = validate_task(_litres_task(blob))
    assert long.rejection is not None
    assert long.rejection.code is RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT


_POSTING = {
    "posting": {
        "username": "ann", "password": "pw-1", "authenticated": True, "tweets": {},
        "comments": {}, "retweets": {}, "following_list": [], "tweet_counter": 0,
    }
}  # fmt: skip


def _verdict_post(content: str) -> Task:
    return _task(
        "Check the pressure of my tyres, then post 'healthy' or 'not healthy' depending on "
        "what the check says.",
        ["vehicle", "posting"],
        [
            {"id": "s1", "tool": "vehicle.check_tire_pressure", "arguments": {}},
            {
                "id": "s2",
                "tool": "posting.post_tweet",
                "arguments": {"content": content},
                "depends_on": ["s1"],
            },
        ],
        _POSTING,
    )


def test_the_alternative_the_read_decides_is_the_one_passed() -> None:
    """'healthy' or 'not healthy': the check returns healthy_tire_pressure true, so posting
    'not healthy' is nonsensical; posting 'healthy' is valid (the unused alternative is no
    unused value)."""
    assert validate_task(_verdict_post("healthy")).accepted
    wrong = validate_task(_verdict_post("not healthy")).rejection
    assert wrong is not None and wrong.code is RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT
    assert "says 'healthy'" in wrong.message


def test_the_sentence_asking_for_ls_with_its_call_is_accepted() -> None:
    task = _task(
        "Go to 'workspace' and list its files. Then go into 'Violet' and list what it holds "
        "using 'ls'.",
        ["filesystem"],
        [
            {"id": "s1", "tool": "filesystem.cd", "arguments": {"folder": "workspace"}},
            {"id": "s2", "tool": "filesystem.ls", "arguments": {}, "depends_on": ["s1"]},
            {
                "id": "s3",
                "tool": "filesystem.cd",
                "arguments": {"folder": "Violet"},
                "depends_on": ["s2"],
            },
            {"id": "s4", "tool": "filesystem.ls", "arguments": {}, "depends_on": ["s3"]},
        ],
        _FS,
    )
    verdict = validate_task(task)
    assert verdict.accepted, verdict.rejection


def test_filling_the_room_a_level_read_shows_is_grounded() -> None:
    task = _task(
        "Show me my fuel level, then fill the tank up to full.",
        ["vehicle"],
        [
            {"id": "s1", "tool": "vehicle.displayCarStatus", "arguments": {"option": "fuel"}},
            {
                "id": "s2",
                "tool": "vehicle.fillFuelTank",
                "arguments": {"fuelAmount": 40.0},
                "depends_on": ["s1"],
            },
        ],
        {"vehicle": {"fuelLevel": 10.0}},
    )
    verdict = validate_task(task)
    assert verdict.accepted, verdict.rejection


def test_a_document_named_for_its_format_is_accepted() -> None:
    """The twin of the .csv case: 'people.json' holds JSON."""
    case = next(task for label, task, _ in CASES if "under a .csv name" in label)
    renamed = [
        call.model_copy(update={"arguments": {**call.arguments, "name": "people.json"}})
        if call.id == "s1"
        else call
        for call in case.calls
    ]
    task = case.model_copy(
        update={"calls": renamed, "question": case.question.replace("people.csv", "people.json")}
    ).with_content_id()
    verdict = validate_task(task)
    assert verdict.accepted, verdict.rejection
