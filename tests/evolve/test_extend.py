"""The ``extend`` operator's rules: what an appended call may take, make and be asked for."""

from __future__ import annotations

import random
from typing import Any

import pytest

from pipeline.envs import ENVIRONMENTS
from pipeline.evolve.extend import (
    Produced,
    _argument_options,
    _try,
    extend,
    produced_values,
    session_values,
)
from pipeline.evolve.verbalise import Verbaliser
from pipeline.models import Call, Task
from pipeline.replay import replay
from pipeline.semantics import Sem


@pytest.fixture(scope="module")
def verbaliser() -> Verbaliser:
    return Verbaliser()


def _task(env: str, config: dict[str, Any], calls: list[Call]) -> Task:
    task = Task(
        id="t",
        category=env,  # type: ignore[arg-type]
        envs=[env],  # type: ignore[list-item]
        question="Do the steps.",
        initial_config={env: config},
        calls=calls,
    )
    assert replay(task).ok
    return task


def _extensions(task: Task, verbaliser: Verbaliser, tries: int = 40) -> list[Task]:
    found = [extend(task, random.Random(seed), verbaliser) for seed in range(tries)]
    return [task for task in found if task is not None]


def _attempt(task: Task, tool: str, arguments: dict[str, Any]) -> Task | None:
    """``_try`` of one candidate call appended to ``task``."""
    parent = replay(task)
    env_name, _, name = tool.partition(".")
    spec = ENVIRONMENTS[env_name].tool_specs()[name]
    outputs = [outcome.result for outcome in parent.outcomes]
    return _try(task, parent.final_state, outputs, env_name, spec, arguments)


# --- 1. a document's format is the one it was loaded with --------------------------------------

_TABLE = "| name | role |\n| --- | --- |\n| Ines | lead |\n| Omar | designer |"
_DOCUMENTS = {
    "documents": {
        "team": {"format": "markdown", "content": _TABLE},
        "budget": {"format": "csv", "content": "month,amount\njan,1200\nfeb,950"},
        "config": {"format": "json", "content": '{"theme": "dark", "size": 14}'},
    }
}


def test_format_choices_are_the_observed_formats() -> None:
    spec = ENVIRONMENTS["data_format"].tool_specs()["parse_data"]
    produced = [Produced(_TABLE, Sem.DATA_TEXT), Produced("markdown", Sem.FORMAT)]
    options = dict(
        (choices[0][0], [value for _, value in choices])
        for choices in _argument_options("data_format.parse_data", spec, produced)
    )
    assert options["source_format"] == ["markdown"]  # never csv, json or keyvalue


def test_extension_reads_a_document_in_its_own_format(verbaliser: Verbaliser) -> None:
    task = _task(
        "data_format",
        _DOCUMENTS,
        [
            Call(id="s1", tool="data_format.load_document", arguments={"name": "team"}),
            Call(id="s2", tool="data_format.load_document", arguments={"name": "budget"}),
        ],
    )
    formats = {"s1": "markdown", "s2": "csv"}
    checked = 0
    for extended in _extensions(task, verbaliser):
        added = extended.calls[-1]
        source = added.bindings.get("content", "")
        if "source_format" in added.arguments and source:
            assert added.arguments["source_format"] == formats[source.split(".")[0]], added
            checked += 1
    assert checked, "no extension read a loaded document"
    # the table loaded in s1 is never read as CSV, the format of the document s2 loaded
    misread = {"content": _TABLE, "source_format": "csv"}
    assert _attempt(task, "data_format.parse_data", misread) is None


# --- 2. an extension acts on the entity its value names, never makes a namesake ---------------

_FOLDERS = {
    "root": {
        "alice": {
            "type": "directory",
            "contents": {
                "report.txt": {"type": "file", "content": "q1 figures"},
                "archive": {"type": "directory", "contents": {}},
            },
        }
    },
    "cwd": [],
}


def test_no_new_file_named_after_a_listed_entry() -> None:
    task = _task(
        "filesystem",
        _FOLDERS,
        [
            Call(id="s1", tool="filesystem.ls"),
            Call(id="s2", tool="filesystem.cd", arguments={"folder": "archive"}),
        ],
    )
    # a new, empty "report.txt" in archive/ would act on nothing the listing showed
    assert _attempt(task, "filesystem.touch", {"file_name": "report.txt"}) is None


_TICKETS = {
    "ticket_queue": [
        {"id": 4521, "title": "Cannot log in", "description": "Password rejected.",
         "status": "Open", "priority": 3, "created_by": "kwong"},
    ],
    "ticket_counter": 4522,
    "current_user": "helpdesk",
}  # fmt: skip


def test_no_new_ticket_titled_like_an_existing_one(verbaliser: Verbaliser) -> None:
    task = _task(
        "tickets",
        _TICKETS,
        [Call(id="s1", tool="tickets.get_ticket", arguments={"ticket_id": 4521})],
    )
    assert _attempt(task, "tickets.create_ticket", {"title": "Cannot log in"}) is None
    # acting on the ticket itself is still an extension
    closed = _attempt(task, "tickets.close_ticket", {"ticket_id": 4521})
    assert closed is not None and closed.calls[-1].bindings == {"ticket_id": "s1.id"}
    assert all(e.calls[-1].tool != "tickets.create_ticket" for e in _extensions(task, verbaliser))


# --- 3. logging in is not something done to a user from an earlier step -----------------------

_CONTACTS = {
    "user_count": 11,
    "user_map": {"Tom": "USR010", "Grace": "USR011"},
    "inbox": [],
    "message_count": 0,
    "current_user": "USR010",
}


def test_no_login_as_a_user_from_an_earlier_step(verbaliser: Verbaliser) -> None:
    task = _task(
        "messaging",
        _CONTACTS,
        [Call(id="s1", tool="messaging.add_contact", arguments={"user_name": "Priya Nair"})],
    )
    new_id = replay(task).outcomes[0].result["user_id"]
    assert _attempt(task, "messaging.message_login", {"user_id": new_id}) is None
    tools = {e.calls[-1].tool for e in _extensions(task, verbaliser)}
    assert "messaging.message_login" not in tools


# --- 4. the acting user is not another user to act on -----------------------------------------

_POSTS = {
    "username": "maya_codes",
    "password": "Tr33house!",
    "authenticated": False,
    "tweets": {},
    "following_list": ["alice"],
    "tweet_counter": 0,
}


def test_own_name_is_no_source_for_actions_on_users(verbaliser: Verbaliser) -> None:
    task = _task(
        "posting",
        _POSTS,
        [
            Call(
                id="s1",
                tool="posting.authenticate_twitter",
                arguments={"username": "maya_codes", "password": "Tr33house!"},
            ),
            Call(id="s2", tool="posting.post_tweet", arguments={"content": "Shipping today!"}),
        ],
    )
    parent = replay(task)
    outputs = [outcome.result for outcome in parent.outcomes]
    assert outputs[1]["username"] == "maya_codes"  # the author of one's own post
    produced = produced_values(task, outputs, session_values(parent.final_state))
    assert "maya_codes" not in [p.value for p in produced]
    for extended in _extensions(task, verbaliser):
        assert "s2.username" not in extended.calls[-1].bindings.values(), extended.question


def test_a_tickets_creator_who_is_the_acting_user_is_no_source() -> None:
    config = dict(_TICKETS, current_user="kwong")
    task = _task(
        "tickets", config, [Call(id="s1", tool="tickets.get_ticket", arguments={"ticket_id": 4521})]
    )
    parent = replay(task)
    outputs = [outcome.result for outcome in parent.outcomes]
    produced = produced_values(task, outputs, session_values(parent.final_state))
    assert "kwong" not in [p.value for p in produced]


# --- 5. references read like a person wrote them ----------------------------------------------


def test_references_name_documents_and_found_values_in_words(verbaliser: Verbaliser) -> None:
    calls = [
        Call(id="s1", tool="data_format.load_document", arguments={"name": "team"}),
        Call(
            id="s2",
            tool="data_format.extract_field",
            arguments={"content": _TABLE, "path": "0.role", "source_format": "markdown"},
            depends_on=["s1"],
            bindings={"content": "s1.content", "source_format": "s1.format"},
        ),
        Call(
            id="s3",
            tool="data_format.set_field",
            arguments={"name": "team", "path": "1.role", "value": "lead"},
            depends_on=["s2"],
            bindings={"value": "s2.value"},
        ),
    ]
    question = verbaliser.question(calls)
    assert "get the value at '0.role' in the document's text from the previous step;" in question
    assert "set '1.role' to the value found in the previous step" in question
    for jargon in ("data text", "field value", "in the format from"):
        assert jargon not in question, question


def test_a_format_from_another_step_is_still_named(verbaliser: Verbaliser) -> None:
    calls = [
        Call(id="s1", tool="data_format.load_document", arguments={"name": "team"}),
        Call(id="s2", tool="data_format.load_document", arguments={"name": "budget"}),
        Call(
            id="s3",
            tool="data_format.parse_data",
            arguments={"content": _TABLE, "source_format": "csv"},
            depends_on=["s1", "s2"],
            bindings={"content": "s1.content", "source_format": "s2.format"},
        ),
    ]
    question = verbaliser.question(calls)
    assert "the document's text from the first step (in the format from the previous step)" in (
        question
    )


def test_an_aggregate_is_named_by_its_function(verbaliser: Verbaliser) -> None:
    calls = [
        Call(
            id="s1",
            tool="data_management.aggregate_column",
            arguments={"table": "scores", "function": "max", "column": "score"},
        ),
        Call(
            id="s2",
            tool="data_management.select_rows",
            arguments={"table": "scores", "where_column": "score", "where_value": 97},
            depends_on=["s1"],
            bindings={"where_value": "s1.value"},
        ),
    ]
    question = verbaliser.question(calls)
    assert "the maximum from the previous step" in question, question
    assert "field value" not in question


# --- writes act on what the task made or named, and never take back an earlier step -----------


def test_no_write_on_an_entry_picked_by_position_from_a_listing() -> None:
    task = _task(
        "data_format",
        _DOCUMENTS,
        [
            Call(id="s1", tool="data_format.list_documents", arguments={}),
            Call(id="s2", tool="data_format.load_document", arguments={"name": "team"}),
        ],
    )
    # overwriting the second listed document with another one's text
    assert (
        _attempt(
            task, "data_format.save_document",
            {"name": "config", "content": _TABLE, "source_format": "markdown"},
        )
        is None
    )  # fmt: skip


def test_no_step_that_takes_back_an_earlier_one() -> None:
    from pipeline.evolve.extend import _undoes_a_step

    task = _task(
        "trading",
        {"watch_list": ["NVDA"]},
        [
            Call(id="s1", tool="trading.get_stock_info", arguments={"symbol": "AAPL"}),
            Call(id="s2", tool="trading.add_to_watchlist", arguments={"stock": "AAPL"}),
        ],
    )
    final = replay(task).final_state["trading"]
    taken_back = {**final, "watch_list": ["NVDA"]}
    assert _undoes_a_step(task, "trading", taken_back)
    assert not _undoes_a_step(task, "trading", {**final, "watch_list": ["NVDA", "AAPL", "MSFT"]})


def _ancestors(task: Task) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for call in task.calls:
        found[call.id] = set(call.depends_on).union(*(found[p] for p in call.depends_on))
    return found


def test_no_step_combines_a_value_with_one_computed_from_it(verbaliser: Verbaliser) -> None:
    """'Subtract the doubled sum from the sum' or 'add the rounded quotient to the quotient'
    counts one value twice: no user asks for it (blind reads called it nonsensical)."""
    from pipeline.seeds import load_seeds

    children = []
    for task in load_seeds():
        if task.category in ("maths", "data_generation"):
            for seed in range(8):
                child = extend(task, random.Random(seed), verbaliser)
                if child is not None:
                    children.append(child)
    assert len(children) > 40  # the rule leaves plenty of extensions
    for child in children:
        ancestors = _ancestors(child)
        producers = {source.split(".", 1)[0] for source in child.calls[-1].bindings.values()}
        assert not any(p in ancestors[q] for p in producers for q in producers), child.question


def test_no_comparison_of_a_text_file_with_an_image() -> None:
    files = {
        "root": {
            "home": {
                "type": "directory",
                "contents": {
                    "notes.txt": {"type": "file", "content": "a\nb"},
                    "draft.txt": {"type": "file", "content": "a\nc"},
                    "photo.jpg": {"type": "file", "content": "\xff\xd8"},
                },
            }
        },
        "cwd": [],
    }
    task = _task("filesystem", files, [Call(id="s1", tool="filesystem.ls", arguments={})])
    # both names come from the listing; only files of one kind are compared
    assert (
        _attempt(task, "filesystem.diff", {"file_name1": "notes.txt", "file_name2": "photo.jpg"})
        is None
    )
    kept = _attempt(task, "filesystem.diff", {"file_name1": "notes.txt", "file_name2": "draft.txt"})
    assert kept is not None and kept.calls[-1].tool == "filesystem.diff"


def test_no_round_trip_back_to_a_text_already_known() -> None:
    flat = '{"server.host": "db.local", "server.port": 5432, "debug": false}'
    task = _task(
        "data_format",
        {},
        [
            Call(id="s1", tool="data_format.unflatten_record", arguments={"content": flat}),
            Call(
                id="s2",
                tool="data_format.pretty_print_json",
                arguments={"content": flat, "indent": 4, "sort_keys": True},
            ),
        ],
    )
    nested = replay(task).outcomes[0].result["content"]
    # flattening what step 1 unflattened gives back the user's own text (keys in any order)
    assert _attempt(task, "data_format.flatten_record", {"content": nested}) is None
