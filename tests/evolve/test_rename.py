"""The ``rename`` operator renames only names, keeps their format, and yields valid tasks."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.evolve.rename import candidates, rename
from pipeline.jsonl import read_records
from pipeline.models import Call, Task
from pipeline.semantics import RENAMEABLE_TYPES, Sem
from pipeline.validate.chain import validate_task

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
RNG_SEEDS = range(4)


def _seeds() -> list[Task]:
    return [task for path in sorted(SEEDS.glob("*.jsonl")) for task in read_records(path, Task)]


SEED_TASKS = _seeds()


def _seed(question_start: str) -> Task:
    found = [task for task in SEED_TASKS if task.question.startswith(question_start)]
    assert len(found) == 1, f"no single seed starts with {question_start!r}"
    return found[0]


def _task(env: str, question: str, state: dict[str, Any], calls: list[dict[str, Any]]) -> Task:
    return Task(
        id="hand",
        category=env,
        envs=[env],
        question=question,
        initial_config={env: state},
        calls=[Call(id=f"s{n}", **call) for n, call in enumerate(calls, 1)],
    ).with_content_id()


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}.{index}")
    else:
        yield path, value


def _arguments(task: Task) -> dict[str, Any]:
    return {
        f"{call.id}{path}": leaf for call in task.calls for path, leaf in _leaves(call.arguments)
    }


def _home(task: Task) -> dict[str, Any]:
    """The entries of the folder ``home`` of a handcrafted filesystem task."""
    root: Any = task.initial_config["filesystem"]["root"]
    contents: dict[str, Any] = root["home"]["contents"]
    return contents


def _renamings(task: Task, rng_seeds: range = RNG_SEEDS) -> Iterator[Task]:
    for number in rng_seeds:
        renamed = rename(task, random.Random(number))
        if renamed is not None:
            yield renamed


def _mapping(before: Task, after: Task) -> dict[str, str]:
    """Old -> new of every argument that changed as a whole."""
    old, new = _arguments(before), _arguments(after)
    return {old[key]: new[key] for key in old if old[key] != new[key]}


# --- small handcrafted tasks ---------------------------------------------------------------

MENTION = _task(
    "posting",
    "Post 'Kimchi night at 8!' tagged #food and mentioning @kim, then show me the posts of my "
    "account ellie_b.",
    {
        "username": "ellie_b", "password": "pw", "authenticated": True, "tweets": {},
        "comments": {}, "retweets": {}, "following_list": ["kim"], "tweet_counter": 1,
    },
    [
        {"tool": "posting.post_tweet", "arguments": {
            "content": "Kimchi night at 8!", "tags": ["#food"], "mentions": ["@kim"]}},
        {"tool": "posting.get_user_tweets", "arguments": {"username": "ellie_b"},
         "depends_on": ["s1"]},
    ],
)  # fmt: skip

HASHTAG_FOLDER = _task(
    "filesystem",
    "Make a folder called #drafts and move notes.txt into #drafts.",
    {
        "long_context": False,
        "root": {"home": {"type": "directory", "contents": {
            "notes.txt": {"type": "file", "content": "see #drafts"},
        }}},
        "cwd": [],
    },
    [
        {"tool": "filesystem.mkdir", "arguments": {"dir_name": "#drafts"}},
        {"tool": "filesystem.mv", "arguments": {"source": "notes.txt", "destination": "#drafts"},
         "depends_on": ["s1"]},
    ],
)  # fmt: skip

FILES = _task(
    "filesystem",
    "Go into the art folder, start a new file called Budget_2024.xlsx and write 'cart: 3' "
    "into a file named party_plan.md there.",
    {
        "long_context": False,
        "root": {"home": {"type": "directory", "contents": {
            "art": {"type": "directory", "contents": {}},
            "smart": {"type": "directory", "contents": {}},
        }}},
        "cwd": [],
    },
    [
        {"tool": "filesystem.cd", "arguments": {"folder": "art"}},
        {"tool": "filesystem.touch", "arguments": {"file_name": "Budget_2024.xlsx"},
         "depends_on": ["s1"]},
        {"tool": "filesystem.echo",
         "arguments": {"content": "cart: 3", "file_name": "party_plan.md"},
         "depends_on": ["s1"]},
    ],
)  # fmt: skip

UPPER_BUFFER = _task(
    "string_manipulation",
    "Append 'call the bank' to my buffer 'TODO' and then read 'TODO'.",
    {"buffers": {"TODO": "pay rent"}},
    [
        {"tool": "string_manipulation.append_to_buffer",
         "arguments": {"name": "TODO", "text": "call the bank"}},
        {"tool": "string_manipulation.read_buffer", "arguments": {"name": "TODO"},
         "depends_on": ["s1"]},
    ],
)  # fmt: skip


@pytest.mark.parametrize("task", [MENTION, HASHTAG_FOLDER, FILES, UPPER_BUFFER])
def test_handcrafted_tasks_are_valid(task: Task) -> None:
    assert validate_task(task).accepted, validate_task(task).rejection


def test_a_mention_keeps_its_at_sign() -> None:
    renamings = list(_renamings(MENTION, range(8)))
    assert renamings
    for renamed in renamings:
        mention = renamed.calls[0].arguments["mentions"][0]  # type: ignore[index]
        assert isinstance(mention, str) and re.fullmatch(r"@[a-z]+", mention), mention
        assert mention != "@kim" and f"{mention}," in renamed.question
        # the longer word "Kimchi" and the quoted post text are not touched
        assert "'Kimchi night at 8!'" in renamed.question
        assert renamed.calls[0].arguments["content"] == "Kimchi night at 8!"
        # the hashtag is no name: it stays, with its '#'
        assert renamed.calls[0].arguments["tags"] == ["#food"]
        assert validate_task(renamed).accepted, validate_task(renamed).rejection


def test_a_hashtag_name_keeps_its_hash() -> None:
    folders = set()
    for renamed in _renamings(HASHTAG_FOLDER, range(8)):
        folder = renamed.calls[0].arguments["dir_name"]
        assert isinstance(folder, str) and re.fullmatch(r"#[a-z]+", folder), folder
        assert renamed.calls[1].arguments["destination"] == folder
        assert renamed.question.count(folder) == 2 and "#drafts" not in renamed.question
        # the same token inside a file's content changes with it
        files = _home(renamed)
        assert f"see {folder}" in [entry["content"] for entry in files.values()]
        assert validate_task(renamed).accepted, validate_task(renamed).rejection
        folders.add(folder)
    assert len(folders) > 1


def test_a_file_keeps_its_extension_and_case_pattern() -> None:
    for renamed in _renamings(FILES, range(8)):
        mapping = _mapping(FILES, renamed)
        assert mapping, renamed.question
        for old, new in mapping.items():
            if old == "Budget_2024.xlsx":
                assert re.fullmatch(r"[A-Z][a-z]+_2024\.xlsx", new), new
            elif old == "party_plan.md":
                assert re.fullmatch(r"[a-z]+_[a-z]+\.md", new), new
            else:
                assert old == "art" and re.fullmatch(r"[a-z]+", new), (old, new)
        assert validate_task(renamed).accepted, validate_task(renamed).rejection


def test_no_rename_inside_a_longer_word() -> None:
    for renamed in _renamings(FILES, range(8)):
        # "start", "cart" and the folder "smart" contain "art"; none of them changes
        assert "start a new file" in renamed.question
        assert "'cart: 3'" in renamed.question
        assert renamed.calls[2].arguments["content"] == "cart: 3"
        assert "smart" in _home(renamed)


def test_upper_case_stays_upper_case() -> None:
    renamed = rename(UPPER_BUFFER, random.Random(0))
    assert renamed is not None
    name = renamed.calls[0].arguments["name"]
    assert isinstance(name, str) and name.isupper() and name != "TODO"
    assert renamed.initial_config["string_manipulation"]["buffers"] == {name: "pay rent"}
    assert (
        renamed.question == f"Append 'call the bank' to my buffer '{name}' and then read '{name}'."
    )


# --- table-driven cases on the seeds -------------------------------------------------------

#: (start of a seed's question, names that may change, values that never change)
SEED_CASES: list[tuple[str, set[str], set[str]]] = [
    ("Post 'Coffee meetup", {"@jo", "@kim", "ellie_b"}, {"Coffee meetup at 10, who is in?"}),
    ("Log me in as maya_codes", {"maya_codes"}, {"#release", "#devlife", "Tr33house!"}),
    ("Rename the folder old_photos", {"old_photos", "photos_2019", "archive"}, set()),
    ("Create a folder named 2024", {"invoices.csv"}, {"2024", "l"}),
    ("Raise ticket 88", set(), {"Escalated"}),
    ("Sign in as tnguyen", {"tnguyen"}, {"Open", "blue-Falcon-7"}),
    ("Add Priya Nair to my contacts", set(), {"Priya Nair", "Welcome aboard, Priya!"}),
    ("Create a table named 'tasks'", {"tasks"}, {"title", "priority", "greater_or_equal"}),
    ("Find Daniel's user id", {"Daniel"}, {"USR004", "The build is green again."}),
    ("Sign me in to the travel service", {"Tom", "Becker"}, {"app-3321", "read"}),
    ("Book an economy flight from RMS", set(), {"RMS", "SBK", "2026-08-01", "mc_3310"}),
    ("I'm in Rivermist", set(), {"Rivermist", "Stonebrook"}),
    ("What's the ticker symbol for Omega", set(), {"Omega Industries", "OMEG"}),
    ("Generate 8 random customer records", set(), {"2024-01-01", "basic", "pro", "team"}),
    ("In the text 'Invoice dated", set(), {"Invoice dated 2024-03-15, due 2024-04-14"}),
    ("Convert 26.2 miles", set(), {"miles", "km"}),
]


@pytest.mark.parametrize(("start", "may_change", "never"), SEED_CASES)
def test_seed_renames_touch_only_names(start: str, may_change: set[str], never: set[str]) -> None:
    seed = _seed(start)
    renamings = list(_renamings(seed, range(8)))
    if not may_change:
        assert not renamings and rename(seed, random.Random(0)) is None
    for renamed in renamings:
        mapping = _mapping(seed, renamed)
        assert mapping and set(mapping) <= may_change, mapping
        for old in mapping:
            # the name is gone from the question (a plain word may stay where it is prose)
            assert f"'{old}'" not in renamed.question
            if not (old.isalpha() and old.islower()):
                assert not re.search(rf"(?<![\w@#]){re.escape(old)}(?!\w)", renamed.question)
        arguments = _arguments(renamed)
        for value in never:
            if value in _arguments(seed).values():
                assert value in arguments.values(), value
        # numbers and flags never change
        old_arguments = _arguments(seed)
        for key, value in old_arguments.items():
            if not isinstance(value, str):
                assert arguments[key] == value, key


def test_names_of_people_fit_the_question() -> None:
    seed = _seed("Find Daniel's user id")  # "... send him the message ..."
    names = set()
    for renamed in _renamings(seed, range(12)):
        name = renamed.calls[0].arguments["user"]
        assert isinstance(name, str) and re.fullmatch(r"[A-Z][a-z]+", name)
        assert renamed.question.startswith(f"Find {name}'s user id")
        names.add(name)
    assert len(names) > 3
    assert not names & {"Alice", "Priya", "Zofia", "Vera", "Chloe"}, names
    travel = _seed("Sign me in to the travel service")
    for renamed in _renamings(travel, range(6)):
        first = renamed.calls[0].arguments["user_first_name"]
        last = renamed.calls[0].arguments["user_last_name"]
        assert f"name {first} {last})" in renamed.question


def test_unquoted_prose_word_is_not_the_name() -> None:
    seed = _seed("Create a table named 'tasks'")
    for renamed in _renamings(seed):
        new = _mapping(seed, renamed)["tasks"]
        assert f"show me the tasks in '{new}'" in renamed.question


def test_lookup_tables_are_never_renamed() -> None:
    for task in SEED_TASKS:
        if task.category in {"vehicle", "trading", "maths", "data_generation"}:
            assert not [c for c in candidates(task) if c.kind not in {Sem.USER_NAME}], task.question
        for candidate in candidates(task):
            assert candidate.kind in RENAMEABLE_TYPES


def test_new_names_are_fresh_and_deterministic() -> None:
    for task in SEED_TASKS[::3]:
        first = rename(task, random.Random(7))
        again = rename(task, random.Random(7))
        assert first == again
        if first is None:
            continue
        assert first.lineage.operator == "rename" and first.lineage.parents == [task.id]
        assert first.lineage.round == task.lineage.round + 1 and first.expected is None
        assert first.id == first.content_id() != task.id
        before = task.model_dump_json().lower()
        for new in _mapping(task, first).values():
            for word in re.findall(r"[a-z]{3,}", new.lower()):
                if word not in {"txt", "csv", "xlsx", "log", "md"}:
                    assert word not in before, (word, task.question)


def test_nothing_to_rename_gives_none() -> None:
    maths = _seed("Add 3.5 and 4.25")
    assert candidates(maths) == [] and rename(maths, random.Random(0)) is None


def test_renamed_seeds_stay_valid() -> None:
    """Every seed under several generators: renamed tasks of valid seeds pass validation."""
    renamed_count, failures = 0, []
    for task in SEED_TASKS:
        if not validate_task(task).accepted:
            continue
        for renamed in _renamings(task):
            renamed_count += 1
            verdict = validate_task(renamed)
            if not verdict.accepted:
                assert verdict.rejection is not None
                failures.append(f"{verdict.rejection.code.value}: {renamed.question[:100]}")
    assert renamed_count > 150
    assert len(failures) <= renamed_count // 50, failures
