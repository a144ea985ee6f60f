"""The data_management environment: typed tables, safe filters, analysis, joins, bounds."""

from __future__ import annotations

from typing import Any

import pytest
from envcheck import refusal

from pipeline.envs import ToolError
from pipeline.envs.data_management import (
    MAX_INSERT,
    MAX_RESULT,
    MAX_TEXT,
    DataManagement,
)

STAFF: dict[str, Any] = {
    "columns": {"name": "text", "team": "text", "salary": "integer", "remote": "boolean"},
    "rows": [
        {"id": 1, "name": "Ana", "team": "Core", "salary": 70000, "remote": False},
        {"id": 2, "name": "Ben", "team": "Sales", "salary": 50000, "remote": True},
        {"id": 3, "name": "Cy", "team": "Core", "salary": None, "remote": True},
        {"id": 4, "name": "Dee", "team": "Ops", "salary": 61000, "remote": False},
    ],
}


def make(**tables: dict[str, Any]) -> DataManagement:
    env = DataManagement.from_state({"tables": tables})
    assert isinstance(env, DataManagement)
    return env


def call(env: DataManagement, tool: str, **args: Any) -> Any:
    return env.invoke(tool, args)


# --- tables and rows ----------------------------------------------------------------------------


def test_create_insert_select_chain_with_deterministic_ids() -> None:
    env = make()
    assert call(
        env, "create_table", table="tasks", columns={"title": "text", "prio": "integer"}
    ) == {
        "created": True,
        "column_count": 3,
    }
    first = call(
        env, "insert_rows", table="tasks", rows=[{"title": "a", "prio": 3}, {"title": "b"}]
    )
    assert first == {"inserted_ids": [1, 2], "row_count": 2}
    assert env.snapshot()["tables"]["tasks"]["rows"][1] == {"id": 2, "title": "b", "prio": None}
    deleted = call(
        env, "delete_rows", table="tasks", where_column="id", where_op="equals", where_value=2
    )
    assert deleted == {"deleted_ids": [2], "row_count": 1}
    # ids are never reused: the counter keeps going after a delete
    assert call(env, "insert_rows", table="tasks", rows=[{"title": "c", "prio": 1}])[
        "inserted_ids"
    ] == [3]
    # the id from one call feeds the next
    found = call(env, "select_rows", table="tasks", where_column="title", where_value="c")
    row_id = found["rows"][0]["id"]
    call(
        env,
        "update_rows",
        table="tasks",
        set_column="prio",
        set_value=9,
        where_column="id",
        where_value=row_id,
    )
    assert call(
        env,
        "select_rows",
        table="tasks",
        where_column="prio",
        where_op="greater_than",
        where_value=5,
    ) == {
        "rows": [{"id": 3, "title": "c", "prio": 9}],
        "count": 1,
    }


def test_initial_state_is_normalised_and_checked() -> None:
    env = make(t={"columns": {"a": "text", "b": "integer"}, "rows": [{"id": 5, "a": "x"}]})
    table = env.snapshot()["tables"]["t"]
    assert table["rows"] == [{"id": 5, "a": "x", "b": None}]
    assert table["next_id"] == 6
    bad_states = [
        {"t": {"columns": {"a": "text"}, "rows": [{"a": "x"}]}},  # no id
        {"t": {"columns": {"a": "text"}, "rows": [{"id": 1}, {"id": 1}]}},  # duplicate id
        {"t": {"columns": {"a": "integer"}, "rows": [{"id": 1, "a": "x"}]}},  # wrong type
        {"t": {"columns": {"a": "text"}, "rows": [{"id": 1, "z": 1}]}},  # unknown column
        {"t": {"columns": {"id": "text"}, "rows": []}},  # id declared
        {"bad name": {"columns": {"a": "text"}, "rows": []}},
        {"t": {"columns": {"a": "text"}, "rows": [{"id": 4}], "next_id": 2}},
        {"t": {"columns": {"a": "text"}, "rows": [{"id": 1, "a": "x" * (MAX_TEXT + 1)}]}},
    ]
    for tables in bad_states:
        with pytest.raises(ValueError):
            DataManagement.from_state({"tables": tables})


def test_filters_are_typed_and_null_never_matches() -> None:
    env = make(staff=STAFF)

    def names(**where: Any) -> list[str]:
        rows = call(env, "select_rows", table="staff", **where)["rows"]
        return [row["name"] for row in rows]

    assert names(where_column="salary", where_op="greater_or_equal", where_value=61000) == [
        "Ana",
        "Dee",
    ]
    assert names(where_column="salary", where_op="less_than", where_value=60000.5) == ["Ben"]
    assert names(where_column="salary", where_op="not_equals", where_value=50000) == ["Ana", "Dee"]
    assert names(where_column="salary", where_op="less_or_equal", where_value=50000) == ["Ben"]
    assert names(where_column="team", where_op="contains", where_value="o") == [
        "Ana",
        "Cy",
    ]  # case-sensitive
    assert names(where_column="name", where_op="starts_with", where_value="D") == ["Dee"]
    assert names(where_column="remote", where_value=True) == ["Ben", "Cy"]
    assert names() == ["Ana", "Ben", "Cy", "Dee"]
    limited = call(env, "select_rows", table="staff", columns=["name"], limit=1)
    assert limited == {"rows": [{"id": 1, "name": "Ana"}], "count": 4}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"where_column": "salary", "where_value": "high"}, "expects a number"),
        ({"where_column": "team", "where_value": 3}, "expects text"),
        (
            {"where_column": "salary", "where_op": "contains", "where_value": 5},
            "only applies to text",
        ),
        ({"where_column": "remote", "where_op": "greater_than", "where_value": True}, "boolean"),
        ({"where_column": "salary"}, "needs a where_value"),
        ({"where_value": 3}, "needs a where_column"),
        ({"where_column": "age", "where_value": 3}, "no column 'age'"),
        ({"columns": ["name", "nope"]}, "no column 'nope'"),
        ({"limit": 0}, "limit"),
    ]
    for args, text in cases:
        refusal(env, "select_rows", {"table": "staff", **args}, text)
    refusal(env, "select_rows", {"table": "people"}, "no table named 'people'")


def test_update_and_delete_leave_state_unchanged_on_misuse() -> None:
    env = make(staff=STAFF)
    result = call(
        env,
        "update_rows",
        table="staff",
        set_column="remote",
        set_value=True,
        where_column="team",
        where_value="Core",
    )
    assert result == {"updated_ids": [1, 3], "count": 2}
    assert call(
        env,
        "update_rows",
        table="staff",
        set_column="salary",
        set_value=None,
        where_column="id",
        where_value=4,
    ) == {
        "updated_ids": [4],
        "count": 1,
    }
    refusal(
        env,
        "update_rows",
        {"table": "staff", "set_column": "id", "set_value": 9},
        "cannot be changed",
    )
    refusal(
        env,
        "update_rows",
        {"table": "staff", "set_column": "salary", "set_value": 1.5},
        "whole number",
    )
    refusal(
        env,
        "update_rows",
        {
            "table": "staff",
            "set_column": "name",
            "set_value": "x",
            "where_column": "salary",
            "where_value": "a",
        },
        "number",
    )
    refusal(
        env,
        "delete_rows",
        {"table": "staff", "where_column": "team", "where_op": "equals", "where_value": None},
        "where_value",
    )
    assert call(
        env,
        "delete_rows",
        table="staff",
        where_column="team",
        where_op="equals",
        where_value="Nobody",
    ) == {
        "deleted_ids": [],
        "row_count": 4,
    }


def test_sort_puts_nulls_last_and_keeps_ties_in_id_order() -> None:
    env = make(staff=STAFF)
    ascending = call(env, "sort_rows", table="staff", by="salary")["rows"]
    assert [row["name"] for row in ascending] == ["Ben", "Dee", "Ana", "Cy"]
    descending = call(env, "sort_rows", table="staff", by="salary", descending=True, limit=2)[
        "rows"
    ]
    assert [row["name"] for row in descending] == ["Ana", "Dee"]
    by_team = call(env, "sort_rows", table="staff", by="team")["rows"]
    assert [row["name"] for row in by_team] == ["Ana", "Cy", "Dee", "Ben"]
    refusal(env, "sort_rows", {"table": "staff", "by": "age"}, "no column")


def test_aggregates_and_groups() -> None:
    env = make(staff=STAFF)

    def agg(function: str, column: str, **where: Any) -> Any:
        return call(
            env, "aggregate_column", table="staff", function=function, column=column, **where
        )

    assert agg("avg", "salary") == {"value": 60333.333333, "rows": 4}
    assert agg("sum", "salary") == {"value": 181000, "rows": 4}
    assert agg("count", "salary") == {"value": 3, "rows": 4}
    assert agg("min", "name") == {"value": "Ana", "rows": 4}
    assert agg("max", "salary", where_column="team", where_value="Core") == {
        "value": 70000,
        "rows": 2,
    }
    assert agg("avg", "salary", where_column="team", where_value="None") == {
        "value": None,
        "rows": 0,
    }
    refusal(
        env, "aggregate_column", {"table": "staff", "function": "sum", "column": "name"}, "numeric"
    )
    refusal(
        env,
        "aggregate_column",
        {"table": "staff", "function": "max", "column": "remote"},
        "boolean",
    )
    groups = call(
        env, "group_rows", table="staff", group_by="team", function="avg", column="salary"
    )
    assert groups == {
        "groups": [
            {"team": "Core", "avg_salary": 70000.0},
            {"team": "Ops", "avg_salary": 61000.0},
            {"team": "Sales", "avg_salary": 50000.0},
        ]
    }
    # the top group feeds a filter
    top = groups["groups"][0]["team"]
    assert (
        call(env, "select_rows", table="staff", where_column="team", where_value=top)["count"] == 2
    )
    counts = call(
        env, "group_rows", table="staff", group_by="remote", function="count", descending=False
    )
    assert counts == {"groups": [{"remote": False, "count": 2}, {"remote": True, "count": 2}]}
    renamed = call(
        env, "group_rows", table="staff", group_by="team", function="count", column="team"
    )
    assert renamed["groups"][0] == {"team": "Core", "count_team": 2}
    refusal(
        env,
        "group_rows",
        {"table": "staff", "group_by": "team", "function": "sum"},
        "needs a column",
    )


def test_join_inner_and_left_with_prefixed_clashes() -> None:
    env = make(
        staff=STAFF,
        teams={
            "columns": {"team": "text", "floor": "integer"},
            "rows": [{"id": 1, "team": "Core", "floor": 3}, {"id": 2, "team": "Ops", "floor": 1}],
        },
    )
    inner = call(env, "join_tables", left_table="staff", right_table="teams", left_column="team")
    assert inner["count"] == 3
    assert inner["rows"][0] == {
        "id": 1,
        "name": "Ana",
        "team": "Core",
        "salary": 70000,
        "remote": False,
        "teams_id": 1,
        "teams_team": "Core",
        "floor": 3,
    }
    left = call(
        env, "join_tables", left_table="staff", right_table="teams", left_column="team", how="left"
    )
    assert [row["floor"] for row in left["rows"]] == [3, None, 3, 1]
    reverse = call(env, "join_tables", left_table="teams", right_table="staff", left_column="team")
    assert [row["name"] for row in reverse["rows"]] == ["Ana", "Cy", "Dee"]
    refusal(
        env,
        "join_tables",
        {
            "left_table": "staff",
            "right_table": "teams",
            "left_column": "name",
            "right_column": "floor",
        },
        "cannot match",
    )
    refusal(
        env,
        "join_tables",
        {"left_table": "staff", "right_table": "teams", "left_column": "salary"},
        "no column 'salary'",
    )


def test_export_formats_and_catalogue() -> None:
    env = make(staff=STAFF)
    records = call(env, "export_table", table="staff")["records"]
    assert records[2] == {"id": 3, "name": "Cy", "team": "Core", "salary": None, "remote": True}
    columns = call(env, "export_table", table="staff", format="columns")["columns"]
    assert columns["salary"] == [70000, 50000, None, 61000]
    csv_text = call(env, "export_table", table="staff", format="csv")["csv"]
    assert csv_text.splitlines()[:2] == ["id,name,team,salary,remote", "1,Ana,Core,70000,false"]
    assert csv_text.splitlines()[3] == "3,Cy,Core,,true"
    assert call(env, "describe_table", table="staff") == {
        "columns": {
            "id": "integer",
            "name": "text",
            "team": "text",
            "salary": "integer",
            "remote": "boolean",
        },
        "row_count": 4,
        "next_id": 5,
    }
    assert call(
        env, "add_column", table="staff", column="level", column_type="integer", default=2
    ) == {"added": True, "rows_filled": 4}
    assert (
        call(env, "select_rows", table="staff", where_column="level", where_value=2)["count"] == 4
    )
    refusal(
        env,
        "add_column",
        {"table": "staff", "column": "level", "column_type": "text"},
        "already has",
    )
    refusal(
        env,
        "add_column",
        {"table": "staff", "column": "x", "column_type": "boolean", "default": 1},
        "true or false",
    )
    assert call(env, "list_tables") == {"tables": {"staff": 4}}
    assert call(env, "drop_table", table="staff") == {"dropped": True, "rows_removed": 4}
    assert call(env, "list_tables") == {"tables": {}}
    refusal(env, "drop_table", {"table": "staff"}, "no table")


def test_results_do_not_alias_the_state() -> None:
    env = make(staff=STAFF)
    before = env.snapshot()
    for tool, args in [
        ("select_rows", {}),
        ("sort_rows", {"by": "name"}),
        ("export_table", {}),
        ("export_table", {"format": "columns"}),
        ("join_tables", {"right_table": "staff", "left_column": "id"}),
    ]:
        key = "left_table" if tool == "join_tables" else "table"
        result = env.invoke(tool, {key: "staff", **args})
        assert isinstance(result, dict)
        for value in result.values():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                value[0]["name"] = "changed"
            elif isinstance(value, dict):
                value.clear()
    assert env.snapshot() == before


def test_create_table_misuse() -> None:
    env = make(staff=STAFF)
    refusal(env, "create_table", {"table": "staff", "columns": {"a": "text"}}, "already exists")
    refusal(env, "create_table", {"table": "t", "columns": {}}, "between 1 and")
    refusal(env, "create_table", {"table": "t", "columns": {"id": "text"}}, "implicitly")
    refusal(env, "create_table", {"table": "1t", "columns": {"a": "text"}}, "not a valid name")
    refusal(env, "create_table", {"table": "t", "columns": {"a b": "text"}}, "not a valid name")
    refusal(env, "create_table", {"table": "t", "columns": {"a": "date"}}, "invalid arguments")
    refusal(
        env, "insert_rows", {"table": "staff", "rows": [{"id": 9, "name": "x"}]}, "leave out 'id'"
    )
    refusal(
        env,
        "insert_rows",
        {"table": "staff", "rows": [{"name": "x"}, {"age": 3}]},
        "no column 'age'",
    )
    refusal(
        env, "insert_rows", {"table": "staff", "rows": [{"salary": float("nan")}]}, "whole number"
    )
    refusal(env, "insert_rows", {"table": "staff", "rows": [{"salary": 10**30}]}, "magnitude")
    refusal(env, "insert_rows", {"table": "staff", "rows": []}, "empty")
    call(env, "create_table", table="m", columns={"x": "number"})
    refusal(env, "insert_rows", {"table": "m", "rows": [{"x": float("inf")}]}, "finite")
    assert call(env, "insert_rows", table="m", rows=[{"x": 2}, {"x": 2.5}])["inserted_ids"] == [
        1,
        2,
    ]
    assert call(env, "aggregate_column", table="m", function="sum", column="x")["value"] == 4.5


# --- hostile input ends in ToolError (bench/hostile_inputs.py times it) ---------------------


def test_huge_inputs_are_refused() -> None:
    env = make(staff=STAFF)
    many_rows = [{"name": f"n{i}", "salary": i} for i in range(100_000)]
    assert len(many_rows) > MAX_INSERT
    refusal(env, "insert_rows", {"table": "staff", "rows": many_rows})
    refusal(env, "insert_rows", {"table": "staff", "rows": [{"name": "x" * 1_000_000}]})
    refusal(
        env,
        "select_rows",
        {"table": "staff", "where_column": "name", "where_value": "x" * 1_000_000},
    )
    refusal(
        env, "create_table", {"table": "t", "columns": {f"c{i}": "text" for i in range(10_000)}}
    )
    refusal(env, "create_table", {"table": "x" * 100_000, "columns": {"a": "text"}})
    refusal(env, "select_rows", {"table": "staff", "columns": ["name"] * 100_000})


def test_exploding_join_is_refused() -> None:
    rows = [{"id": i, "key": "same"} for i in range(1, 1001)]
    env = make(
        a={"columns": {"key": "text"}, "rows": rows}, b={"columns": {"key": "text"}, "rows": rows}
    )
    join = {"left_table": "a", "right_table": "b", "left_column": "key"}
    refusal(env, "join_tables", join, f"more than {MAX_RESULT}")


def test_wide_join_is_refused_by_its_cell_count() -> None:
    columns = {f"c{i}": "integer" for i in range(20)}
    left = [{"id": i, **{c: 1 for c in columns}} for i in range(1, 481)]
    right = [{"id": 1, **{c: 1 for c in columns}}]
    env = make(a={"columns": columns, "rows": left}, b={"columns": columns, "rows": right})
    with pytest.raises(ToolError, match="cells"):
        call(env, "join_tables", left_table="a", right_table="b", left_column="c0")
    assert call(env, "join_tables", left_table="b", right_table="a", left_column="id")["count"] == 1


def test_store_limits_hold() -> None:
    env = make()
    for index in range(20):
        call(env, "create_table", table=f"t{index}", columns={"a": "text"})
    with pytest.raises(ToolError, match="at most 20 tables"):
        call(env, "create_table", table="t20", columns={"a": "text"})
    big = make(t={"columns": {"a": "integer"}, "rows": [{"id": i, "a": i} for i in range(1, 1001)]})
    with pytest.raises(ToolError, match="at most 1000 rows"):
        call(big, "insert_rows", table="t", rows=[{"a": 1}])


# --- schema ----------------------------------------------------------------------------------


def test_filter_schema() -> None:
    specs = DataManagement.tool_specs()
    where_op = specs["select_rows"].parameters["properties"]["where_op"]
    assert where_op["default"] == "equals" and "greater_than" in where_op["enum"]
    assert specs["delete_rows"].parameters["required"] == [
        "table",
        "where_column",
        "where_op",
        "where_value",
    ]
