"""Data formats: JSON, CSV, key/value and Markdown tables, records, the document store."""

from __future__ import annotations

import json
from typing import Any

import pytest
from envcheck import refusal

from pipeline.envs.data_format import DataFormat
from pipeline.seeds import load_seeds

PEOPLE_CSV = 'name,age,city\nAda,36,London\nGrace, 45 ,"New York, NY"\nLinus,,Helsinki'
PEOPLE = [
    {"name": "Ada", "age": 36, "city": "London"},
    {"name": "Grace", "age": 45, "city": "New York, NY"},
    {"name": "Linus", "age": None, "city": "Helsinki"},
]
KEYVALUE = """# a customer
name: Ada Lovelace
age: 36
address:
  city: London
  zip: "01234"
tags: ["maths", "poetry"]
meta.created: 1843
nickname:
active: true"""


def env(**documents: tuple[str, str]) -> DataFormat:
    state = {"documents": {n: {"format": f, "content": c} for n, (f, c) in documents.items()}}
    built = DataFormat.from_state(state)
    assert isinstance(built, DataFormat)
    return built


def call(tool: str, state: DataFormat | None = None, **arguments: Any) -> Any:
    return (state or env()).invoke(tool, arguments)


def data(content: str, source_format: str) -> Any:
    return call("parse_data", content=content, source_format=source_format)["data"]


def refused(tool: str, state: DataFormat | None = None, **arguments: Any) -> str:
    """The message of a call that must be refused and leave the state as it was (how fast the
    hostile ones end is measured by bench/hostile_inputs.py)."""
    return refusal(state or env(), tool, arguments)


# ----- reading the formats ------------------------------------------------------------------


def test_csv_cells_are_typed() -> None:
    assert data(PEOPLE_CSV, "csv") == PEOPLE
    assert data("code,ok,ratio,note\n007,false,0.25,-\n", "csv") == [
        {"code": "007", "ok": False, "ratio": 0.25, "note": "-"}
    ]


def test_keyvalue_format() -> None:
    assert data(KEYVALUE, "keyvalue") == {
        "name": "Ada Lovelace",
        "age": 36,
        "address": {"city": "London", "zip": "01234"},
        "tags": ["maths", "poetry"],
        "meta": {"created": 1843},
        "nickname": None,
        "active": True,
    }
    nested = "a:\n    b:\n        c: 1\n    d: 2\ne: 3"
    assert data(nested, "keyvalue") == {"a": {"b": {"c": 1}, "d": 2}, "e": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\n  b: 2", "indentation"),
        ("a: 1\na: 2", "given twice"),
        ("a: 1\na.b: 2", "already holds"),
        ("a:\n\tb: 1", "tabs"),
        ("just words", "expected 'key: value'"),
        ("url:http://x", "expected 'key: value'"),
        ("a..b: 1", "empty key"),
        ("x: [1, 2", "malformed inline JSON"),
        ("# only a comment", "no 'key: value'"),
    ],
)
def test_malformed_keyvalue(text: str, message: str) -> None:
    assert message in refused("parse_data", content=text, source_format="keyvalue")


def test_markdown_tables() -> None:
    table = call(
        "convert_format", content=PEOPLE_CSV, source_format="csv", target_format="markdown"
    )
    assert table["content"] == (
        "| name  | age | city         |\n"
        "| ----- | --- | ------------ |\n"
        "| Ada   | 36  | London       |\n"
        "| Grace | 45  | New York, NY |\n"
        "| Linus |     | Helsinki     |"
    )
    assert data(table["content"], "markdown") == PEOPLE
    piped = json.dumps([{"expr": "a|b", "path": "C:\\tmp"}])
    written = call("convert_format", content=piped, source_format="json", target_format="markdown")
    assert "a\\|b" in written["content"]
    assert data(written["content"], "markdown") == json.loads(piped)
    assert data("name | n\n:--- | ---:\nx | 1", "markdown") == [{"name": "x", "n": 1}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("| a |", "header row and a separator"),
        ("| a | b |\n| x | y |", "separator row"),
        ("| a | b |\n| --- |", "separator row"),
        ("| a | b |\n| --- | --- |\n| 1 |", "row 1 has 1 cells"),
        ("| a | a |\n| --- | --- |", "repeats column 'a'"),
    ],
)
def test_malformed_markdown(text: str, message: str) -> None:
    assert message in refused("parse_data", content=text, source_format="markdown")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('a,b\n"unclosed,2', "malformed CSV"),
        ("a,b\n1,2,3", "row 1 has 3 cells but the header has 2"),
        ("a,a\n1,2", "repeats column 'a'"),
        ("a,,c\n1,2,3", "empty column name"),
        ("   \n  ", "empty"),
    ],
)
def test_malformed_csv(text: str, message: str) -> None:
    assert message in refused("parse_data", content=text, source_format="csv")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1,}', "malformed JSON: Expecting property name"),
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": 1e999}', "out of range"),
        ('{"a": ' + "9" * 5000 + "}", "more than 100 digits"),
        ("[" * 100_000, "nested more than 20 levels"),
        ('{"a": "' + "x" * 100_000 + '"}', "too long"),
    ],
)
def test_malformed_or_hostile_json(text: str, message: str) -> None:
    assert message in refused("parse_data", content=text, source_format="json")


# ----- conversions --------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["json", "markdown"])
def test_table_round_trips(target: str) -> None:
    there = call("convert_format", content=PEOPLE_CSV, source_format="csv", target_format=target)
    back = call(
        "convert_format", content=there["content"], source_format=target, target_format="csv"
    )
    assert (
        back["content"] == 'name,age,city\nAda,36,London\nGrace,45,"New York, NY"\nLinus,,Helsinki'
    )


@pytest.mark.parametrize(
    "value", ["42", "true", "", " padded", "#tag", "null", "[x", "two\nlines", '"q"', "007", 1.5]
)
def test_keyvalue_writes_values_that_read_back_the_same(value: Any) -> None:
    record = {"key": value, "nested": {"inner": value}}
    written = call(
        "convert_format", content=json.dumps(record), source_format="json", target_format="keyvalue"
    )
    assert data(written["content"], "keyvalue") == record


def test_keyvalue_round_trip_through_json() -> None:
    as_json = call(
        "convert_format", content=KEYVALUE, source_format="keyvalue", target_format="json"
    )
    back = call(
        "convert_format", content=as_json["content"], source_format="json", target_format="keyvalue"
    )
    assert data(back["content"], "keyvalue") == data(KEYVALUE, "keyvalue")
    assert back["content"].startswith("name: Ada Lovelace\nage: 36\naddress:\n  city: London\n")


def test_conversions_that_cannot_be_written() -> None:
    nested = json.dumps({"a": {"b": 1}})
    assert "flatten" in refused(
        "convert_format", content=nested, source_format="json", target_format="csv"
    )
    assert "lists cannot be cells" in refused(
        "convert_format", content='[{"a": [1]}]', source_format="json", target_format="markdown"
    )
    assert "one non-empty record" in refused(
        "convert_format", content="[1, 2]", source_format="json", target_format="keyvalue"
    )
    assert "cannot be written" in refused(
        "convert_format", content='{"a:b": 1}', source_format="json", target_format="keyvalue"
    )
    assert "line break" in refused(
        "convert_format", content='[{"a": "x\\ny"}]', source_format="json", target_format="markdown"
    )
    assert "already JSON" in refused(
        "convert_format", content="{}", source_format="json", target_format="json"
    )
    assert "list of records" in refused(
        "convert_format", content="[1]", source_format="json", target_format="csv"
    )


def test_pretty_print() -> None:
    text = '{"b": 1, "a": [1, 2]}'
    assert call("pretty_print_json", content=text)["content"] == (
        '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}'
    )
    assert call("pretty_print_json", content=text, indent=0, sort_keys=True) == {
        "content": '{"a":[1,2],"b":1}'
    }
    assert "between 0 and 8" in refused("pretty_print_json", content=text, indent=9)
    wide = json.dumps([[[[1] * 10] * 10] * 10] * 10)
    assert "too long" in refused("pretty_print_json", content=wide, indent=8)


# ----- records ------------------------------------------------------------------------------


def test_validate_record() -> None:
    types = {"name": "string", "age": "integer", "score": "number", "tags": "array"}
    ok = call(
        "validate_record",
        content='{"name": "Ada", "age": 36, "score": 7, "tags": [], "extra": null}',
        field_types=types,
    )
    assert ok == {"valid": True, "errors": [], "error_count": 0}
    bad = call(
        "validate_record",
        content='[{"name": "Ada", "age": "36"}, {"age": true}, 5]',
        field_types=types,
        required=["name"],
    )
    assert bad == {
        "valid": False,
        "errors": [
            "record 0: field 'age' should be integer, got string",
            "record 1: missing required field 'name'",
            "record 1: field 'age' should be integer, got boolean",
            "record 2: expected an object, got integer",
        ],
        "error_count": 4,
    }
    missing = call("validate_record", content="{}", field_types={"id": "integer"})
    assert missing["errors"] == ["missing required field 'id'"]
    assert "not in the schema" in refused(
        "validate_record", content="{}", field_types={"id": "integer"}, required=["name"]
    )
    assert "no fields" in refused("validate_record", content="{}", field_types={})
    assert "invalid arguments" in refused(
        "validate_record", content="{}", field_types={"id": "int"}
    )


def test_flatten_and_unflatten_chain() -> None:
    nested = '{"user": {"id": 7, "name": {"first": "Kim"}}, "tags": ["a"], "empty": {}}'
    flat = call("flatten_record", content=nested)
    assert json.loads(flat["content"]) == {
        "user.id": 7,
        "user.name.first": "Kim",
        "tags": ["a"],
        "empty": {},
    }
    back = call("unflatten_record", content=flat["content"])
    assert json.loads(back["content"]) == json.loads(nested)
    rows = call("flatten_record", content='[{"a": {"b": 1}}, {"a": {"b": 2}}]', separator="__")
    assert json.loads(rows["content"]) == [{"a__b": 1}, {"a__b": 2}]
    table = call(
        "convert_format", content=rows["content"], source_format="json", target_format="csv"
    )
    assert table == {"content": "a__b\n1\n2"}
    assert "twice" in refused("flatten_record", content='{"a.b": 1, "a": {"b": 2}}')
    assert "conflicts" in refused("unflatten_record", content='{"a.b": 1, "a": 2}')
    assert "conflicts" in refused("unflatten_record", content='{"a": 2, "a.b": 1}')
    assert "empty part" in refused("unflatten_record", content='{"a..b": 1}')
    assert "deeper" in refused("unflatten_record", content=json.dumps({".".join("k" * 30): 1}))
    assert "only objects" in refused("flatten_record", content="[1]")
    assert "separator" in refused("flatten_record", content="{}", separator="")


def test_extract_field() -> None:
    assert call("extract_field", content='{"a": [{"b": 5}]}', path="a.0.b") == {"value": 5}
    assert call("extract_field", content='{"a": [1, 2]}', path="a.-1") == {"value": 2}
    assert call("extract_field", content=PEOPLE_CSV, path="1.city", source_format="csv") == {
        "value": "New York, NY"
    }
    assert call("extract_field", content=KEYVALUE, path="address", source_format="keyvalue") == {
        "value": {"city": "London", "zip": "01234"}
    }
    assert "no field 'x'" in refused("extract_field", content='{"a": 1}', path="x")
    assert "not an index" in refused("extract_field", content='{"a": [1]}', path="a.3")
    assert "has no field" in refused("extract_field", content='{"a": 1}', path="a.b")
    assert "empty part" in refused("extract_field", content='{"a": 1}', path="a.")


# ----- the document store -------------------------------------------------------------------


def test_document_lifecycle_and_chaining() -> None:
    store = env()
    assert call("save_document", store, name="people", content=PEOPLE_CSV, source_format="csv") == {
        "saved": True,
        "size": len(PEOPLE_CSV),
    }
    converted = call(
        "convert_document", store, name="people", target_format="json", new_name="people_json"
    )
    assert json.loads(converted["content"]) == PEOPLE
    assert call("set_field", store, name="people_json", path="2.age", value=52) == {
        "previous": None
    }
    assert call("set_field", store, name="people", path="0.city", value="Paris") == {
        "previous": "London"
    }
    loaded = call("load_document", store, name="people")
    assert loaded == {
        "content": 'name,age,city\nAda,36,Paris\nGrace,45,"New York, NY"\nLinus,,Helsinki',
        "format": "csv",
    }
    assert call("list_documents", store) == {"names": ["people", "people_json"]}
    call("convert_document", store, name="people", target_format="markdown")
    assert store.state.documents["people"].format == "markdown"
    assert call("delete_document", store, name="people") == {"deleted": True}
    assert call("list_documents", store) == {"names": ["people_json"]}
    assert json.loads(store.state.documents["people_json"].content)[2]["age"] == 52


def test_set_field_in_keyvalue_document() -> None:
    store = env(settings=("keyvalue", "theme: dark\nfont:\n  size: 12"))
    assert call("set_field", store, name="settings", path="font.size", value=14) == {"previous": 12}
    assert call("set_field", store, name="settings", path="font.family", value="Inter") == {
        "previous": None
    }
    assert store.state.documents["settings"].content == (
        "theme: dark\nfont:\n  size: 14\n  family: Inter"
    )


def test_store_misuse_leaves_state_unchanged() -> None:
    store = env(people=("csv", PEOPLE_CSV), config=("json", '{"a": {"b": 1}}'))
    assert "no document named 'nope'" in refused("load_document", store, name="nope")
    assert "malformed CSV" in refused(
        "save_document", store, name="x", content='a\n"open', source_format="csv"
    )
    assert "invalid document name" in refused(
        "save_document", store, name="a/b", content="{}", source_format="json"
    )
    assert "already CSV" in refused("convert_document", store, name="people", target_format="csv")
    assert "flatten" in refused("convert_document", store, name="config", target_format="csv")
    assert "no field 'zz'" in refused("set_field", store, name="config", path="zz.b", value=1)
    assert "not an index" in refused("set_field", store, name="people", path="9.age", value=1)
    assert "goes through" in refused("set_field", store, name="config", path="a.b.c", value=1)
    assert "no document" in refused("delete_document", store, name="nope")
    full = env(**{f"d{i}": ("json", "{}") for i in range(50)})
    assert "already 50 documents" in refused(
        "save_document", full, name="more", content="{}", source_format="json"
    )


def test_initial_documents_are_checked() -> None:
    with pytest.raises(ValueError, match="invalid document name"):
        DataFormat.from_state({"documents": {"": {"format": "json", "content": "{}"}}})
    with pytest.raises(ValueError, match="invalid initial state"):
        DataFormat.from_state({"documents": {"x": {"format": "yaml", "content": "a: 1"}}})


# ----- hostile sizes are refused (bench/hostile_inputs.py times them) --------------------------


def test_bounded_sizes() -> None:
    many_rows = "n\n" + "1\n" * 5_001
    assert "at most 5000 rows" in refused("parse_data", content=many_rows, source_format="csv")
    wide = ",".join(f"c{i}" for i in range(101)) + "\n" + ",".join("1" * 101)
    assert "at most 100 columns" in refused("parse_data", content=wide, source_format="csv")
    pipes = "|" * 99_000 + "\n| --- |"
    assert "cells" in refused("parse_data", content=pipes, source_format="markdown")
    deep_kv = "\n".join(" " * (2 * i) + "k:" for i in range(40)) + "\n" + " " * 80 + "v: 1"
    assert "deeper than 20" in refused("parse_data", content=deep_kv, source_format="keyvalue")
    dotted = ".".join(["a"] * 5_000) + ": 1"
    assert "deeper than 20" in refused("parse_data", content=dotted, source_format="keyvalue")
    rows = json.dumps([{"k": "x" * 40, "v": "y" * 40} for _ in range(1_200)])
    assert "too long" in refused(
        "convert_format", content=rows, source_format="json", target_format="markdown"
    )


# ----- seeds --------------------------------------------------------------------------------


def test_seeds_use_the_conversion_and_record_tools() -> None:
    seeds = [task for task in load_seeds() if task.category == "data_format"]
    tools = {call.function for task in seeds for call in task.calls}
    assert {"convert_format", "validate_record", "flatten_record", "set_field"} <= tools
