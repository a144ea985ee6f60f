"""Data management: an in-memory table store (create, insert, select, update, delete, sort, group,
join, export).

Tables have named, typed columns (``text``, ``integer``, ``number``, ``boolean``; every cell may
be null) and an implicit integer ``id`` column filled from the table's own counter, so ids are
deterministic and never reused. Rows are filtered with a small safe filter language: one column,
an operator from a fixed set and a value of the column's type (nothing is evaluated). Results
carry the values later calls need (row ids, aggregates, group keys) and never echo the table name
back, so a later call's dependency on an earlier one is always a real data or state dependency.

Latencies (seconds) model a hosted SQL database behind a REST API: catalogue look-ups are cached
(0.15); an indexed select or sort is one round trip plus a scan (0.25-0.3); aggregates and
groupings scan the whole table (0.4); a join reads two tables (0.6); row writes commit a
transaction (0.35-0.4); schema changes take a lock and rewrite the catalogue (0.8); an export
serialises the whole table (0.5).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, model_validator

from pipeline.envs.base import Environment, EnvState, ToolError, ToolKind, tool
from pipeline.semantics import Sem

_CATALOGUE = 0.15
_SELECT = 0.25
_SORT = 0.3
_AGGREGATE = 0.4
_JOIN = 0.6
_WRITE_ROWS = 0.35
_UPDATE_ROWS = 0.4
_SCHEMA = 0.8
_EXPORT = 0.5

MAX_TABLES = 20
MAX_COLUMNS = 24
MAX_ROWS = 1_000
MAX_TOTAL_CELLS = 20_000
MAX_INSERT = 500
MAX_TEXT = 200
MAX_NAME = 40
MAX_INT = 10**15
MAX_RESULT = 2_000

ColumnType = Literal["text", "integer", "number", "boolean"]
Cell = str | int | float | bool | None
FilterOp = Literal[
    "equals",
    "not_equals",
    "greater_than",
    "greater_or_equal",
    "less_than",
    "less_or_equal",
    "contains",
    "starts_with",
]
Aggregate = Literal["count", "sum", "avg", "min", "max"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ORDERED_OPS = {"greater_than", "greater_or_equal", "less_than", "less_or_equal"}
_TEXT_OPS = {"contains", "starts_with"}


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _name_problem(name: str, what: str) -> str | None:
    if not name or len(name) > MAX_NAME or not _NAME.match(name):
        return (
            f"{what} {_shown(name)} is not a valid name: use a letter followed by letters, "
            f"digits or underscores, at most {MAX_NAME} characters"
        )
    return None


def _check_name(name: str, what: str) -> str:
    problem = _name_problem(name, what)
    if problem:
        raise ToolError(problem)
    return name


def _cell_problem(value: Any, kind: str) -> str | None:
    """Why ``value`` cannot be stored in a column of type ``kind`` (None when it can)."""
    if value is None:
        return None
    if kind == "text":
        if not isinstance(value, str):
            return f"expects text, got {_shown(value)}"
        if len(value) > MAX_TEXT:
            return f"takes text of at most {MAX_TEXT} characters"
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else f"expects true or false, got {_shown(value)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expects a number, got {_shown(value)}"
    if kind == "integer" and not isinstance(value, int):
        return f"expects a whole number, got {_shown(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return "expects a finite number"
    if abs(value) > MAX_INT:
        return f"takes numbers of magnitude at most {MAX_INT}"
    return None


class Table(EnvState):
    """A table: its columns in order (``id`` is implicit), its rows and the next id to assign.

    Rows always hold ``id`` and every column (missing ones are filled with null on load).
    """

    columns: dict[str, ColumnType] = Field(default_factory=dict)
    rows: list[dict[str, Cell]] = Field(default_factory=list)
    next_id: int | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Table:
        if len(self.columns) > MAX_COLUMNS:
            raise ValueError(f"a table has at most {MAX_COLUMNS} columns")
        for column in self.columns:
            problem = _name_problem(column, "column")
            if problem or column == "id":
                raise ValueError(problem or "'id' is implicit and cannot be declared")
        if len(self.rows) > MAX_ROWS:
            raise ValueError(f"a table holds at most {MAX_ROWS} rows")
        seen: set[int] = set()
        normalised: list[dict[str, Cell]] = []
        for row in self.rows:
            row_id = row.get("id")
            if not isinstance(row_id, int) or isinstance(row_id, bool) or row_id < 1:
                raise ValueError(f"every row needs a positive integer id, got {_shown(row_id)}")
            if row_id in seen:
                raise ValueError(f"row id {row_id} appears twice")
            seen.add(row_id)
            unknown = set(row) - {"id", *self.columns}
            if unknown:
                raise ValueError(f"row {row_id} has unknown columns {sorted(unknown)}")
            clean: dict[str, Cell] = {"id": row_id}
            for column, kind in self.columns.items():
                value = row.get(column)
                problem = _cell_problem(value, kind)
                if problem:
                    raise ValueError(f"row {row_id}: column {column!r} {problem}")
                clean[column] = value
            normalised.append(clean)
        self.rows = normalised
        smallest = max(seen, default=0) + 1
        if self.next_id is None:
            self.next_id = smallest
        elif self.next_id < smallest:
            raise ValueError(f"next_id must be above every row id (at least {smallest})")
        return self


class DataManagementState(EnvState):
    """Tables by name."""

    tables: dict[str, Table] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _bounded(self) -> DataManagementState:
        if len(self.tables) > MAX_TABLES:
            raise ValueError(f"at most {MAX_TABLES} tables")
        for name in self.tables:
            problem = _name_problem(name, "table")
            if problem:
                raise ValueError(problem)
        cells = sum(len(t.rows) * (len(t.columns) + 1) for t in self.tables.values())
        if cells > MAX_TOTAL_CELLS:
            raise ValueError(f"the store holds at most {MAX_TOTAL_CELLS} cells in all")
        return self


def _sorted_rows(
    rows: list[dict[str, Cell]], key: Callable[[dict[str, Cell]], Cell], descending: bool
) -> list[dict[str, Cell]]:
    """Rows ordered by ``key``; nulls always last; ties keep their order (stable)."""
    present = [row for row in rows if key(row) is not None]
    missing = [row for row in rows if key(row) is None]
    present.sort(key=key, reverse=descending)  # type: ignore[arg-type]
    return present + missing


class DataManagement(Environment[DataManagementState]):
    name = "data_management"
    state_model = DataManagementState

    # ----- helpers --------------------------------------------------------------------
    def _table(self, name: str) -> Table:
        table = self.state.tables.get(name)
        if table is None:
            known = ", ".join(sorted(self.state.tables)) or "none"
            raise ToolError(f"no table named {_shown(name)}; tables: {known}")
        return table

    @staticmethod
    def _column_type(table: Table, table_name: str, column: str) -> ColumnType:
        if column == "id":
            return "integer"
        kind = table.columns.get(column)
        if kind is None:
            known = ", ".join(["id", *table.columns])
            raise ToolError(
                f"table {table_name!r} has no column {_shown(column)}; columns: {known}"
            )
        return kind

    def _filter(
        self,
        table: Table,
        table_name: str,
        column: str | None,
        op: str,
        value: Cell,
    ) -> Callable[[dict[str, Cell]], bool]:
        """The row predicate of a (column, operator, value) filter; no column keeps every row."""
        if column is None:
            if value is not None:
                raise ToolError("where_value needs a where_column to compare with")
            return lambda row: True
        if value is None:
            raise ToolError(f"filtering on {_shown(column)} needs a where_value")
        kind = self._column_type(table, table_name, column)
        if op in _TEXT_OPS and kind != "text":
            raise ToolError(f"{op} only applies to text columns; {column!r} is {kind}")
        if op in _ORDERED_OPS and kind == "boolean":
            raise ToolError(f"{op} does not apply to the boolean column {column!r}")
        problem = _cell_problem(value, "number" if kind == "integer" else kind)
        if problem:
            raise ToolError(f"where_value for column {column!r} {problem}")
        compare: dict[str, Callable[[Any, Any], bool]] = {
            "equals": lambda a, b: bool(a == b),
            "not_equals": lambda a, b: bool(a != b),
            "greater_than": lambda a, b: bool(a > b),
            "greater_or_equal": lambda a, b: bool(a >= b),
            "less_than": lambda a, b: bool(a < b),
            "less_or_equal": lambda a, b: bool(a <= b),
            "contains": lambda a, b: b in a,
            "starts_with": lambda a, b: bool(a.startswith(b)),
        }
        test = compare[op]
        return lambda row: row[column] is not None and test(row[column], value)

    def _total_cells(self) -> int:
        return sum(len(t.rows) * (len(t.columns) + 1) for t in self.state.tables.values())

    @staticmethod
    def _project(
        table: Table, table_name: str, rows: list[dict[str, Cell]], columns: list[str] | None
    ) -> list[dict[str, Cell]]:
        if columns is None:
            return [dict(row) for row in rows]
        if not columns or len(columns) > MAX_COLUMNS + 1:
            raise ToolError(f"columns must list between 1 and {MAX_COLUMNS + 1} names")
        for column in columns:
            DataManagement._column_type(table, table_name, column)
        wanted = ["id", *[c for c in dict.fromkeys(columns) if c != "id"]]
        return [{c: row[c] for c in wanted} for row in rows]

    @staticmethod
    def _limited(rows: list[dict[str, Cell]], limit: int | None) -> list[dict[str, Cell]]:
        if limit is None:
            return rows
        if not 1 <= limit <= MAX_RESULT:
            raise ToolError(f"limit must be between 1 and {MAX_RESULT}")
        return rows[:limit]

    # ----- catalogue ------------------------------------------------------------------
    @tool(ToolKind.READ, _CATALOGUE, returns={"tables.*": Sem.COUNT})
    def list_tables(self) -> dict[str, JsonValue]:
        """List the tables in the store with their number of rows."""
        return {"tables": {name: len(t.rows) for name, t in sorted(self.state.tables.items())}}

    @tool(
        ToolKind.READ,
        _CATALOGUE,
        returns={"columns.*": Sem.OPTION, "row_count": Sem.COUNT, "next_id": Sem.RECORD_ID},
    )
    def describe_table(self, table: Annotated[str, Sem.TABLE_NAME]) -> dict[str, JsonValue]:
        """Show a table's columns with their types, its row count and the next row id.

        Args:
            table: Name of the table.
        """
        found = self._table(table)
        columns: dict[str, JsonValue] = {"id": "integer", **found.columns}
        return {"columns": columns, "row_count": len(found.rows), "next_id": found.next_id}

    @tool(ToolKind.WRITE, _SCHEMA, returns={"created": Sem.FLAG, "column_count": Sem.COUNT})
    def create_table(
        self,
        table: Annotated[str, Sem.TABLE_NAME],
        columns: Annotated[dict[str, ColumnType], Sem.SCHEMA],
    ) -> dict[str, JsonValue]:
        """Create an empty table with typed columns; an integer 'id' column is added implicitly.

        Args:
            table: Name of the new table (a letter, then letters, digits or underscores).
            columns: Column name -> type ('text', 'integer', 'number' or 'boolean'), in order.
        """
        _check_name(table, "table")
        if table in self.state.tables:
            raise ToolError(f"a table named {table!r} already exists")
        if len(self.state.tables) >= MAX_TABLES:
            raise ToolError(f"the store holds at most {MAX_TABLES} tables")
        if not columns or len(columns) > MAX_COLUMNS:
            raise ToolError(f"a table needs between 1 and {MAX_COLUMNS} columns")
        for column in columns:
            _check_name(column, "column")
            if column == "id":
                raise ToolError("'id' is added implicitly; choose another column name")
        self.state.tables[table] = Table(columns=dict(columns), rows=[], next_id=1)
        return {"created": True, "column_count": len(columns) + 1}

    @tool(ToolKind.WRITE, _SCHEMA, returns={"dropped": Sem.FLAG, "rows_removed": Sem.COUNT})
    def drop_table(self, table: Annotated[str, Sem.TABLE_NAME]) -> dict[str, JsonValue]:
        """Delete a table and all its rows.

        Args:
            table: Name of the table to delete.
        """
        found = self._table(table)
        del self.state.tables[table]
        return {"dropped": True, "rows_removed": len(found.rows)}

    @tool(ToolKind.WRITE, _SCHEMA, returns={"added": Sem.FLAG, "rows_filled": Sem.COUNT})
    def add_column(
        self,
        table: Annotated[str, Sem.TABLE_NAME],
        column: Annotated[str, Sem.COLUMN_NAME],
        column_type: Annotated[ColumnType, Sem.OPTION],
        default: Annotated[Cell, Sem.FIELD_VALUE] = None,
    ) -> dict[str, JsonValue]:
        """Add a typed column to a table, filling existing rows with a default value.

        Args:
            table: Name of the table.
            column: Name of the new column.
            column_type: Type of the new column: 'text', 'integer', 'number' or 'boolean'.
            default: Value given to every existing row (null when omitted).
        """
        found = self._table(table)
        _check_name(column, "column")
        if column == "id" or column in found.columns:
            raise ToolError(f"table {table!r} already has a column {column!r}")
        if len(found.columns) >= MAX_COLUMNS:
            raise ToolError(f"a table has at most {MAX_COLUMNS} columns")
        problem = _cell_problem(default, column_type)
        if problem:
            raise ToolError(f"default for a {column_type} column {problem}")
        if self._total_cells() + len(found.rows) > MAX_TOTAL_CELLS:
            raise ToolError(f"the store holds at most {MAX_TOTAL_CELLS} cells in all")
        found.columns[column] = column_type
        for row in found.rows:
            row[column] = default
        return {"added": True, "rows_filled": len(found.rows)}

    # ----- rows -----------------------------------------------------------------------
    @tool(
        ToolKind.WRITE,
        _WRITE_ROWS,
        returns={"inserted_ids.*": Sem.RECORD_ID, "row_count": Sem.COUNT},
    )
    def insert_rows(
        self,
        table: Annotated[str, Sem.TABLE_NAME],
        rows: Annotated[list[dict[str, Cell]], Sem.RECORD],
    ) -> dict[str, JsonValue]:
        """Insert rows into a table; each gets the next id, omitted columns are null.

        Args:
            table: Name of the table.
            rows: The rows to insert, each a mapping of column name -> value (no 'id').
        """
        found = self._table(table)
        if not rows:
            raise ToolError("rows is empty; give at least one row")
        if len(rows) > MAX_INSERT:
            raise ToolError(f"at most {MAX_INSERT} rows per insert")
        if len(found.rows) + len(rows) > MAX_ROWS:
            raise ToolError(f"a table holds at most {MAX_ROWS} rows")
        if self._total_cells() + len(rows) * (len(found.columns) + 1) > MAX_TOTAL_CELLS:
            raise ToolError(f"the store holds at most {MAX_TOTAL_CELLS} cells in all")
        assert found.next_id is not None
        new_rows: list[dict[str, Cell]] = []
        for position, row in enumerate(rows, 1):
            if "id" in row:
                raise ToolError(f"row {position}: ids are assigned by the table; leave out 'id'")
            unknown = [c for c in row if c not in found.columns]
            if unknown:
                raise ToolError(
                    f"row {position}: table {table!r} has no column {_shown(unknown[0])}; "
                    f"columns: {', '.join(found.columns)}"
                )
            clean: dict[str, Cell] = {"id": found.next_id + position - 1}
            for column, kind in found.columns.items():
                value = row.get(column)
                problem = _cell_problem(value, kind)
                if problem:
                    raise ToolError(f"row {position}: column {column!r} {problem}")
                clean[column] = value
            new_rows.append(clean)
        found.rows.extend(new_rows)
        found.next_id += len(new_rows)
        return {"inserted_ids": [row["id"] for row in new_rows], "row_count": len(found.rows)}

    @tool(ToolKind.READ, _SELECT, returns={"rows.*.*": Sem.FIELD_VALUE, "count": Sem.COUNT})
    def select_rows(
        self,
        table: Annotated[str, Sem.TABLE_NAME],
        where_column: Annotated[str | None, Sem.COLUMN_NAME] = None,
        where_op: Annotated[FilterOp, Sem.OPTION] = "equals",
        where_value: Annotated[Cell, Sem.FIELD_VALUE] = None,
        columns: Annotated[list[str] | None, Sem.COLUMN_NAME] = None,
        limit: Annotated[int | None, Sem.COUNT] = None,
    ) -> dict[str, JsonValue]:
        """Select the rows of a table that match a filter, in id order.

        Args:
            table: Name of the table.
            where_column: Column to filter on (omit to select every row).
            where_op: How to compare the column with where_value (equals by default); null
                cells never match.
            where_value: The value to compare with, of the column's type.
            columns: Columns to return besides 'id' (all when omitted).
            limit: Return at most this many rows (the count still covers every match).
        """
        found = self._table(table)
        keep = self._filter(found, table, where_column, where_op, where_value)
        matching = [row for row in found.rows if keep(row)]
        shown = self._project(found, table, self._limited(matching, limit), columns)
        return {"rows": shown, "count": len(matching)}  # type: ignore[dict-item]

    @tool(
        ToolKind.WRITE,
        _UPDATE_ROWS,
        returns={"updated_ids.*": Sem.RECORD_ID, "count": Sem.COUNT},
    )
    def update_rows(
        self,
        table: Annotated[str, Sem.TABLE_NAME],
        set_column: Annotated[str, Sem.COLUMN_NAME],
        set_value: Annotated[Cell, Sem.FIELD_VALUE],
        where_column: Annotated[str | None, Sem.COLUMN_NAME] = None,
        where_op: Annotated[FilterOp, Sem.OPTION] = "equals",
        where_value: Annotated[Cell, Sem.FIELD_VALUE] = None,
    ) -> dict[str, JsonValue]:
        """Set one column to a value in the rows that match a filter (every row without one).

        Args:
            table: Name of the table.
            set_column: The column to change ('id' cannot be changed).
            set_value: The new value, of the column's type (null clears the cell).
            where_column: Column to filter on (omit to update every row).
            where_op: How to compare the column with where_value (equals by default); null
                cells never match.
            where_value: The value to compare with, of the column's type.
        """
        found = self._table(table)
        if set_column == "id":
            raise ToolError("row ids cannot be changed")
        kind = self._column_type(found, table, set_column)
        problem = _cell_problem(set_value, kind)
        if problem:
            raise ToolError(f"set_value for column {set_column!r} {problem}")
        keep = self._filter(found, table, where_column, where_op, where_value)
        updated: list[JsonValue] = []
        for row in found.rows:
            if keep(row):
                row[set_column] = set_value
                updated.append(row["id"])
        return {"updated_ids": updated, "count": len(updated)}

    @tool(
        ToolKind.WRITE,
        _WRITE_ROWS,
        returns={"deleted_ids.*": Sem.RECORD_ID, "row_count": Sem.COUNT},
    )
    def delete_rows(
        self,
        table: Annotated[str, Sem.TABLE_NAME],
        where_column: Annotated[str, Sem.COLUMN_NAME],
        where_op: Annotated[FilterOp, Sem.OPTION],
        where_value: Annotated[Cell, Sem.FIELD_VALUE],
    ) -> dict[str, JsonValue]:
        """Delete the rows of a table that match a filter.

        Args:
            table: Name of the table.
            where_column: Column to filter on.
            where_op: How to compare the column with where_value; null cells never match.
            where_value: The value to compare with, of the column's type.
        """
        found = self._table(table)
        if where_value is None:
            raise ToolError("deleting needs a where_value to compare with")
        keep = self._filter(found, table, where_column, where_op, where_value)
        deleted: list[JsonValue] = [row["id"] for row in found.rows if keep(row)]
        found.rows = [row for row in found.rows if not keep(row)]
        return {"deleted_ids": deleted, "row_count": len(found.rows)}

    @tool(ToolKind.READ, _SORT, returns={"rows.*.*": Sem.FIELD_VALUE})
    def sort_rows(
        self,
        table: Annotated[str, Sem.TABLE_NAME],
        by: Annotated[str, Sem.COLUMN_NAME],
        descending: Annotated[bool, Sem.FLAG] = False,
        limit: Annotated[int | None, Sem.COUNT] = None,
    ) -> dict[str, JsonValue]:
        """List a table's rows ordered by a column (nulls last, ties in id order).

        Args:
            table: Name of the table.
            by: The column to order by.
            descending: Largest first when true; smallest first by default.
            limit: Return only the first this many rows of the ordering.
        """
        found = self._table(table)
        self._column_type(found, table, by)
        ordered = _sorted_rows(found.rows, lambda row: row[by], descending)
        rows: list[JsonValue] = [dict(row) for row in self._limited(ordered, limit)]
        return {"rows": rows}

    # ----- analysis -------------------------------------------------------------------
    def _aggregate(
        self, function: str, kind: ColumnType, column: str, values: list[Cell]
    ) -> int | float | str | None:
        present = [v for v in values if v is not None]
        if function == "count":
            return len(present)
        if function in ("sum", "avg") and kind not in ("integer", "number"):
            raise ToolError(f"{function} needs a numeric column; {column!r} is {kind}")
        if function in ("min", "max") and kind == "boolean":
            raise ToolError(f"{function} does not apply to the boolean column {column!r}")
        if function == "sum":
            if all(isinstance(v, int) for v in present):
                return sum(v for v in present if isinstance(v, int))
            return math.fsum(float(v) for v in present if isinstance(v, int | float))
        if not present:
            return None
        if function == "avg":
            numbers = [float(v) for v in present if isinstance(v, int | float)]
            return round(math.fsum(numbers) / len(numbers), 6)
        chosen = min(present) if function == "min" else max(present)
        assert not isinstance(chosen, bool)
        return chosen

    @tool(ToolKind.READ, _AGGREGATE, returns={"value": Sem.FIELD_VALUE, "rows": Sem.COUNT})
    def aggregate_column(
        self,
        table: Annotated[str, Sem.TABLE_NAME],
        function: Annotated[Aggregate, Sem.OPTION],
        column: Annotated[str, Sem.COLUMN_NAME],
        where_column: Annotated[str | None, Sem.COLUMN_NAME] = None,
        where_op: Annotated[FilterOp, Sem.OPTION] = "equals",
        where_value: Annotated[Cell, Sem.FIELD_VALUE] = None,
    ) -> dict[str, JsonValue]:
        """Compute count, sum, average, minimum or maximum of a column over matching rows.

        Args:
            table: Name of the table.
            function: The aggregate: count (non-null cells), sum, avg, min or max.
            column: The column to aggregate.
            where_column: Column to filter on (omit to use every row).
            where_op: How to compare the column with where_value (equals by default); null
                cells never match.
            where_value: The value to compare with, of the column's type.
        """
        found = self._table(table)
        kind = self._column_type(found, table, column)
        keep = self._filter(found, table, where_column, where_op, where_value)
        rows = [row for row in found.rows if keep(row)]
        value = self._aggregate(function, kind, column, [row[column] for row in rows])
        return {"value": value, "rows": len(rows)}

    @tool(ToolKind.READ, _AGGREGATE, returns={"groups.*.*": Sem.FIELD_VALUE})
    def group_rows(
        self,
        table: Annotated[str, Sem.TABLE_NAME],
        group_by: Annotated[str, Sem.COLUMN_NAME],
        function: Annotated[Aggregate, Sem.OPTION],
        column: Annotated[str | None, Sem.COLUMN_NAME] = None,
        descending: Annotated[bool, Sem.FLAG] = True,
    ) -> dict[str, JsonValue]:
        """Group a table's rows by a column and aggregate each group, ordered by the aggregate.

        Args:
            table: Name of the table.
            group_by: The column whose values form the groups.
            function: The aggregate per group: count, sum, avg, min or max.
            column: The column to aggregate (omit with count to count rows).
            descending: Largest aggregate first (the default); false for smallest first.
        """
        found = self._table(table)
        self._column_type(found, table, group_by)
        if column is None:
            if function != "count":
                raise ToolError(f"{function} needs a column to aggregate")
            kind: ColumnType = "integer"
            label = "count"
        else:
            kind = self._column_type(found, table, column)
            label = f"{function}_{column}"
        if label == group_by:
            label = "value"
        groups: dict[Cell, list[dict[str, Cell]]] = {}
        for row in found.rows:
            groups.setdefault(row[group_by], []).append(row)
        results: list[dict[str, Cell]] = []
        for key in _sorted_rows([{"k": k} for k in groups], lambda r: r["k"], False):
            members = groups[key["k"]]
            if column is None:
                value: Cell = len(members)
            else:
                value = self._aggregate(function, kind, column, [r[column] for r in members])
            results.append({group_by: key["k"], label: value})
        ordered = _sorted_rows(results, lambda r: r[label], descending)
        return {"groups": ordered}  # type: ignore[dict-item]

    @tool(ToolKind.READ, _JOIN, returns={"rows.*.*": Sem.FIELD_VALUE, "count": Sem.COUNT})
    def join_tables(
        self,
        left_table: Annotated[str, Sem.TABLE_NAME],
        right_table: Annotated[str, Sem.TABLE_NAME],
        left_column: Annotated[str, Sem.COLUMN_NAME],
        right_column: Annotated[str | None, Sem.COLUMN_NAME] = None,
        how: Annotated[Literal["inner", "left"], Sem.OPTION] = "inner",
    ) -> dict[str, JsonValue]:
        """Join two tables on matching column values; right-table columns whose names clash are
        prefixed with the right table's name and an underscore (e.g. 'customers_id').

        Args:
            left_table: The table whose rows lead (their order is kept).
            right_table: The table matched against it.
            left_column: The column of the left table to match on.
            right_column: The column of the right table to match on (defaults to left_column).
            how: 'inner' keeps only matched rows; 'left' keeps every left row (nulls if unmatched).
        """
        left = self._table(left_table)
        right = self._table(right_table)
        right_on = left_column if right_column is None else right_column
        left_kind = self._column_type(left, left_table, left_column)
        right_kind = self._column_type(right, right_table, right_on)
        numeric = {"integer", "number"}
        if left_kind != right_kind and not {left_kind, right_kind} <= numeric:
            raise ToolError(
                f"cannot match {left_kind} column {left_column!r} with {right_kind} column "
                f"{right_on!r}"
            )
        left_names = ["id", *left.columns]
        renamed: dict[str, str] = {}
        for column in ["id", *right.columns]:
            target = column if column not in left_names else f"{right_table}_{column}"
            if target in left_names or target in renamed.values():
                raise ToolError(f"joined column name {target!r} would clash; rename a column")
            renamed[column] = target
        index: dict[Cell, list[dict[str, Cell]]] = {}
        for row in right.rows:
            if row[right_on] is not None:
                index.setdefault(row[right_on], []).append(row)
        size = sum(
            max(len(index.get(row[left_column], [])), 1 if how == "left" else 0)
            for row in left.rows
            if row[left_column] is not None or how == "left"
        )
        if size > MAX_RESULT:
            raise ToolError(f"the join gives {size} rows, more than {MAX_RESULT}")
        width = len(left.columns) + len(right.columns) + 2
        if size * width > MAX_TOTAL_CELLS:
            raise ToolError(
                f"the join gives {size} rows of {width} columns, more than {MAX_TOTAL_CELLS} cells"
            )
        empty: dict[str, Cell] = {target: None for target in renamed.values()}
        rows: list[JsonValue] = []
        for row in left.rows:
            matches = index.get(row[left_column], []) if row[left_column] is not None else []
            for match in matches:
                rows.append({**row, **{renamed[c]: v for c, v in match.items()}})
            if not matches and how == "left":
                rows.append({**row, **empty})
        return {"rows": rows, "count": len(rows)}

    @tool(
        ToolKind.READ,
        _EXPORT,
        returns={
            "records.*.*": Sem.FIELD_VALUE,
            "columns.*.*": Sem.FIELD_VALUE,
            "csv": Sem.CSV_TEXT,
        },
    )
    def export_table(
        self,
        table: Annotated[str, Sem.TABLE_NAME],
        format: Annotated[Literal["records", "columns", "csv"], Sem.FORMAT] = "records",
    ) -> dict[str, JsonValue]:
        """Export a whole table as a list of records, as lists per column, or as CSV text.

        Args:
            table: Name of the table.
            format: 'records' (one object per row), 'columns' (column -> list of values) or
                'csv' (header line, then one line per row; null as an empty field).
        """
        found = self._table(table)
        names = ["id", *found.columns]
        if format == "records":
            return {"records": [dict(row) for row in found.rows]}
        if format == "columns":
            columns: dict[str, JsonValue] = {
                name: [row[name] for row in found.rows] for name in names
            }
            return {"columns": columns}
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for row in found.rows:
            writer.writerow([_csv_cell(row[name]) for name in names])
        return {"csv": buffer.getvalue()}


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
