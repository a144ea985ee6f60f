"""Data formats: JSON, CSV, key/value and Markdown tables; parse, validate, pretty-print, flatten.

Four text formats, all read into plain JSON values and written back from them:

- ``json``: any JSON value (standard library ``json``; NaN, Infinity and numbers that overflow
  to infinity are refused).
- ``csv``: comma-separated, a header row naming the columns, then one row per record (read with
  the standard library ``csv``). Cells carry no types, so a cell reads as an integer or a
  decimal number when it is written as one (``42``, ``-3.5``; ``007`` stays text), as a boolean
  for ``true``/``false``, as null when it is empty, and as text otherwise. Surrounding spaces
  of a cell are dropped.
- ``keyvalue``: this project's YAML-like format for one record (an object)::

      # a comment
      name: Ada Lovelace
      age: 36
      address:
        city: London
        zip: "01234"
      tags: ["maths", "poetry"]
      meta.created: 1843

  One ``key: value`` per line. ``key:`` with nothing after it opens a nested object whose
  lines are indented further (two spaces per level when written; with no such lines the value
  is null). A dotted key
  (``meta.created``) is the same as nesting. A value is read as in CSV cells, except that one
  starting with ``"``, ``[`` or ``{`` is inline JSON (a quoted string, a list, an object) and
  ``null`` is null. Indentation is by spaces; duplicate keys are errors. When written, text that
  would read back as something else (``"42"``, ``"true"``, an empty string) is quoted.
- ``markdown``: a GitHub-style table: a header row, a separator row (``| --- |``), then one row
  per record; ``|`` inside a cell is written ``\\|``. Cells read as in CSV.

CSV and Markdown tables hold a list of flat records: nested objects must be flattened first
(dotted keys), and lists cannot be cells. Every size is bounded (text length, rows, columns,
nesting), so hostile input ends in a ``ToolError`` quickly.

The state is a small document store: named documents (text plus format) that tools save, load,
convert and edit in place.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import reprlib
from typing import Annotated, Literal, cast

from pydantic import Field, JsonValue, field_validator

from pipeline.envs.base import Environment, EnvState, ToolError, ToolKind, tool
from pipeline.semantics import Sem

# Latency (seconds), modelled on a data-conversion web service: pretty-printing is one round
# trip (0.15); parsing, validating and reshaping a record are small computations (0.2); a
# conversion between formats parses and serialises (0.3); the document store is a database:
# reads 0.25, writes 0.5 (a write is committed before it is acknowledged).
_PRETTY = 0.15
_PARSE = 0.2
_CONVERT = 0.3
_STORE_READ = 0.25
_STORE_WRITE = 0.5

_MAX_TEXT = 100_000  # characters of any input text
_MAX_OUTPUT = 200_000  # characters of any text a tool produces or stores
_MAX_DEPTH = 20  # nesting of objects and lists
_MAX_ROWS = 5_000
_MAX_COLUMNS = 100
_MAX_DOCUMENTS = 50
_MAX_SCHEMA_FIELDS = 100
_MAX_PATH = 300
_MAX_DIGITS = 100  # of an integer in JSON
_DOCUMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")

Format = Literal["json", "csv", "keyvalue", "markdown"]
FieldType = Literal["string", "integer", "number", "boolean", "array", "object", "null"]
Scalar = str | int | float | bool | None

_INTEGER = re.compile(r"^-?(?:0|[1-9][0-9]{0,17})$")
_DECIMAL = re.compile(r"^-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,17})?(?:[eE][-+]?[0-9]{1,3})?$")
_TABLE_SEPARATOR = re.compile(r"^:?-+:?$")
_FORMAT_NAMES = {"json": "JSON", "csv": "CSV", "keyvalue": "key/value", "markdown": "Markdown"}


def _values_under(prefix: str) -> dict[str, Sem]:
    """Result patterns typing every leaf of a JSON value of any allowed depth at ``prefix``."""
    return {".".join([prefix, *["*"] * depth]): Sem.FIELD_VALUE for depth in range(_MAX_DEPTH + 1)}


# ----- scalars ----------------------------------------------------------------------------


def _infer(text: str) -> Scalar:
    """A cell or bare value as a typed scalar (see the module docstring)."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    if _INTEGER.match(text):
        return int(text)
    if _DECIMAL.match(text):
        value = float(text)
        if math.isfinite(value):
            return value
    return text


def _cell(value: JsonValue, column: str) -> str:
    """A scalar as a CSV or Markdown cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return value
    kind = "an object" if isinstance(value, dict) else "a list"
    raise ToolError(
        f"column {column!r} holds {kind}; a table cell holds a single value "
        "(flatten nested records first; lists cannot be cells)"
    )


def _type_name(value: JsonValue) -> FieldType:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# ----- JSON -------------------------------------------------------------------------------


def _check_text(text: str, what: str = "content") -> str:
    if len(text) > _MAX_TEXT:
        raise ToolError(f"the {what} is too long ({len(text)} characters; at most {_MAX_TEXT})")
    if not text.strip():
        raise ToolError(f"the {what} is empty")
    return text


def _check_json_depth(text: str) -> None:
    """Refuse nesting deeper than the limit before ``json`` recurses into it."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > _MAX_DEPTH:
                raise ToolError(f"the JSON is nested more than {_MAX_DEPTH} levels deep")
        elif char in "]}":
            depth -= 1


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_DIGITS:
        raise ValueError(f"an integer has more than {_MAX_DIGITS} digits")
    return int(text)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _load_json(text: str, what: str = "JSON") -> JsonValue:
    _check_json_depth(text)
    try:
        value: JsonValue = json.loads(
            text, parse_float=_finite, parse_int=_bounded_int, parse_constant=_no_constant
        )
    except json.JSONDecodeError as error:
        raise ToolError(
            f"malformed {what}: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    except ValueError as error:
        raise ToolError(f"malformed {what}: {error}") from None
    return value


def _dump_json(value: JsonValue, indent: int | None = None, sort_keys: bool = False) -> str:
    if indent is None:
        text = json.dumps(value, ensure_ascii=False, sort_keys=sort_keys)
    elif indent == 0:
        text = json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, separators=(",", ":"))
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, indent=indent)
    return _check_output(text)


def _check_output(text: str) -> str:
    if len(text) > _MAX_OUTPUT:
        raise ToolError(f"the result would be too long (at most {_MAX_OUTPUT} characters)")
    return text


def _depth(value: JsonValue) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


# ----- tables (CSV and Markdown) ------------------------------------------------------------


def _records(data: JsonValue, target: str) -> tuple[list[str], list[dict[str, JsonValue]]]:
    """Columns (in first-seen order) and rows of data written as a table."""
    rows = [data] if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ToolError(f"{target} needs a list of records (objects), or one record")
    records = cast(list[dict[str, JsonValue]], rows)
    if not records:
        raise ToolError(f"there are no records to write as {target}")
    if len(records) > _MAX_ROWS:
        raise ToolError(f"at most {_MAX_ROWS} rows")
    columns: dict[str, None] = {}
    for record in records:
        for key in record:
            columns.setdefault(key, None)
    if len(columns) > _MAX_COLUMNS:
        raise ToolError(f"at most {_MAX_COLUMNS} columns")
    if not columns:
        raise ToolError(f"the records have no fields to write as {target}")
    return list(columns), records


def _table_rows(header: list[str], rows: list[list[str]], source: str) -> list[JsonValue]:
    names = [name.strip() for name in header]
    if any(not name for name in names):
        raise ToolError(f"the {source} header has an empty column name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ToolError(f"the {source} header repeats column {duplicates[0]!r}")
    if len(names) > _MAX_COLUMNS:
        raise ToolError(f"at most {_MAX_COLUMNS} columns")
    if len(rows) > _MAX_ROWS:
        raise ToolError(f"at most {_MAX_ROWS} rows")
    records: list[JsonValue] = []
    for number, row in enumerate(rows, start=1):
        if len(row) != len(names):
            raise ToolError(
                f"{source} row {number} has {len(row)} cells but the header has {len(names)}"
            )
        records.append({name: _infer(cell.strip()) for name, cell in zip(names, row)})
    return records


def _parse_csv(text: str) -> JsonValue:
    try:
        lines = [row for row in csv.reader(io.StringIO(text), strict=True) if row]
    except csv.Error as error:
        raise ToolError(f"malformed CSV: {error}") from None
    if not lines:
        raise ToolError("the CSV has no header row")
    return _table_rows(lines[0], lines[1:], "CSV")


def _write_csv(data: JsonValue) -> str:
    columns, records = _records(data, "CSV")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_cell(record.get(column), column) for column in columns])
    return _check_output(buffer.getvalue().rstrip("\n"))


def _split_markdown_row(line: str, number: int) -> list[str]:
    """The cells of one table line; the outer pipes are optional, ``\\|`` is a literal pipe."""
    text = line.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    cells: list[str] = []
    current: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char == "\\" and text[position + 1 : position + 2] == "|":
            current.append("|")
            position += 2
            continue
        if char == "|":
            cells.append("".join(current))
            current = []
        else:
            current.append(char)
        position += 1
    cells.append("".join(current))
    if len(cells) > _MAX_COLUMNS:
        raise ToolError(f"Markdown table line {number} has more than {_MAX_COLUMNS} cells")
    return cells


def _parse_markdown(text: str) -> JsonValue:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise ToolError("a Markdown table needs a header row and a separator row")
    if len(lines) > _MAX_ROWS + 2:
        raise ToolError(f"at most {_MAX_ROWS} rows")
    header = _split_markdown_row(lines[0], 1)
    separator = _split_markdown_row(lines[1], 2)
    if len(separator) != len(header) or not all(
        _TABLE_SEPARATOR.match(cell.strip()) for cell in separator
    ):
        raise ToolError(
            "line 2 of a Markdown table must be the separator row, such as | --- | --- |, "
            "with one cell per column"
        )
    rows = [_split_markdown_row(line, number) for number, line in enumerate(lines[2:], start=3)]
    return _table_rows(header, rows, "Markdown table")


def _write_markdown(data: JsonValue) -> str:
    columns, records = _records(data, "a Markdown table")
    cells = [[_cell(record.get(column), column) for column in columns] for record in records]
    for row in cells:
        for value in row:
            if "\n" in value or "\r" in value:
                raise ToolError("a Markdown table cell cannot hold a line break")
    table = [[name.replace("|", "\\|") for name in columns]]
    table += [[value.replace("|", "\\|") for value in row] for row in cells]
    widths = [max(3, *(len(row[i]) for row in table)) for i in range(len(columns))]
    lines = ["| " + " | ".join(v.ljust(w) for v, w in zip(table[0], widths)) + " |"]
    lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    lines += [
        "| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |" for row in table[1:]
    ]
    return _check_output("\n".join(lines))


# ----- the key/value format ---------------------------------------------------------------


def _kv_value(raw: str, number: int) -> JsonValue:
    if raw[0] in '"[{':
        return _load_json(raw, f"inline JSON on key/value line {number}")
    if raw == "null":
        return None
    return _infer(raw)


def _kv_set(target: dict[str, JsonValue], keys: list[str], value: JsonValue, number: int) -> None:
    node = target
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ToolError(f"key/value line {number}: {key!r} already holds a value")
        node = child
    if keys[-1] in node:
        raise ToolError(f"key/value line {number}: key {'.'.join(keys)!r} is given twice")
    node[keys[-1]] = value


def _parse_keyvalue(text: str) -> JsonValue:
    root: dict[str, JsonValue] = {}
    # open objects: (indentation of their keys, the object, whether a key opened it just now)
    stack: list[tuple[int, dict[str, JsonValue]]] = [(0, root)]
    opened: tuple[dict[str, JsonValue], str, int] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        body = line.lstrip(" ")
        if body.startswith("\t") or "\t" in line[: len(line) - len(body)]:
            raise ToolError(f"key/value line {number}: indent with spaces, not tabs")
        indent = len(line) - len(body)
        if opened is not None:
            parent, key, parent_indent = opened
            opened = None
            if indent > parent_indent:
                child: dict[str, JsonValue] = {}
                parent[key] = child
                stack.append((indent, child))
                if len(stack) > _MAX_DEPTH:
                    raise ToolError(f"key/value nesting deeper than {_MAX_DEPTH} levels")
        while stack and indent < stack[-1][0]:
            stack.pop()
        if not stack or indent != stack[-1][0]:
            raise ToolError(f"key/value line {number}: the indentation does not match any level")
        key_text, colon, raw = body.partition(":")
        if not colon or (raw and not raw[0].isspace()):
            raise ToolError(
                f"key/value line {number}: expected 'key: value', got {stripped[:60]!r}"
            )
        keys = [part.strip() for part in key_text.split(".")]
        if any(not key for key in keys):
            raise ToolError(f"key/value line {number}: empty key in {key_text.strip()!r}")
        if len(stack) + len(keys) > _MAX_DEPTH + 1:
            raise ToolError(f"key/value nesting deeper than {_MAX_DEPTH} levels")
        target = stack[-1][1]
        value_text = raw.strip()
        if value_text:
            _kv_set(target, keys, _kv_value(value_text, number), number)
        else:
            _kv_set(target, keys, None, number)
            node = target
            for key in keys[:-1]:
                node = cast(dict[str, JsonValue], node[key])
            opened = (node, keys[-1], indent)
    if not root:
        raise ToolError("the key/value text has no 'key: value' lines")
    if _depth(root) > _MAX_DEPTH:
        raise ToolError(f"key/value nesting deeper than {_MAX_DEPTH} levels")
    return root


def _kv_key(key: str) -> str:
    if not key or key != key.strip() or any(char in key for char in ":.\n\r#") or key[0] in '"[{':
        raise ToolError(
            f"key {key!r} cannot be written in the key/value format "
            "(no ':', '.', '#' or line breaks, no surrounding spaces)"
        )
    return key


def _kv_scalar(value: JsonValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    needs_quotes = (
        value == "null"
        or _infer(value) != value
        or value != value.strip()
        or value[:1] in ('"', "[", "{", "#")
        or "\n" in value
        or "\r" in value
    )
    return json.dumps(value, ensure_ascii=False) if needs_quotes else value


def _write_keyvalue(data: JsonValue) -> str:
    if not isinstance(data, dict) or not data:
        raise ToolError("the key/value format holds one non-empty record (an object)")
    lines: list[str] = []

    def write(record: dict[str, JsonValue], indent: int) -> None:
        for key, value in record.items():
            name = " " * indent + _kv_key(key)
            if isinstance(value, dict) and value:
                lines.append(f"{name}:")
                write(value, indent + 2)
            else:
                lines.append(f"{name}: {_kv_scalar(value)}")

    write(data, 0)
    return _check_output("\n".join(lines))


# ----- any format ---------------------------------------------------------------------------


def _parse(text: str, source: Format) -> JsonValue:
    _check_text(text)
    if source == "json":
        return _load_json(text)
    if source == "csv":
        return _parse_csv(text)
    if source == "markdown":
        return _parse_markdown(text)
    return _parse_keyvalue(text)


def _write(data: JsonValue, target: Format) -> str:
    if target == "json":
        return _dump_json(data)
    if target == "csv":
        return _write_csv(data)
    if target == "markdown":
        return _write_markdown(data)
    return _write_keyvalue(data)


def _path_keys(path: str) -> list[str]:
    if not path or len(path) > _MAX_PATH:
        raise ToolError(f"the path must have 1-{_MAX_PATH} characters")
    keys = path.split(".")
    if any(not key for key in keys):
        raise ToolError(f"the path {path!r} has an empty part")
    return keys


def _step(node: JsonValue, key: str, path: str) -> JsonValue:
    if isinstance(node, dict):
        if key not in node:
            raise ToolError(f"no field {key!r} at {path!r}")
        return node[key]
    if isinstance(node, list):
        if not key.lstrip("-").isdigit() or not -len(node) <= int(key) < len(node):
            raise ToolError(f"{key!r} is not an index of the {len(node)}-item list at {path!r}")
        return node[int(key)]
    raise ToolError(f"{path!r} reaches a {_type_name(node)} value, which has no field {key!r}")


def _lookup(data: JsonValue, path: str) -> JsonValue:
    node = data
    for key in _path_keys(path):
        node = _step(node, key, path)
    return node


def _flatten(record: JsonValue, separator: str) -> dict[str, JsonValue]:
    if not isinstance(record, dict):
        raise ToolError("only objects (or a list of objects) can be flattened")
    flat: dict[str, JsonValue] = {}

    def walk(node: dict[str, JsonValue], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{separator}{key}" if prefix else key
            if isinstance(value, dict) and value:
                walk(value, name)
            else:
                if name in flat:
                    raise ToolError(f"flattening gives the key {name!r} twice")
                flat[name] = value

    walk(record, "")
    return flat


def _unflatten(record: JsonValue, separator: str) -> dict[str, JsonValue]:
    if not isinstance(record, dict):
        raise ToolError("only objects (or a list of objects) can be unflattened")
    nested: dict[str, JsonValue] = {}
    for key, value in record.items():
        parts = key.split(separator)
        if any(not part for part in parts):
            raise ToolError(f"key {key!r} has an empty part between separators")
        if len(parts) > _MAX_DEPTH:
            raise ToolError(f"key {key!r} nests deeper than {_MAX_DEPTH} levels")
        node = nested
        for index, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = separator.join(parts[: index + 1])
                raise ToolError(f"key {key!r} conflicts with the value of {prefix!r}")
            node = child
        if parts[-1] in node:
            raise ToolError(f"key {key!r} conflicts with other keys under it")
        node[parts[-1]] = value
    return nested


def _separator(separator: str | None) -> str:
    chosen = "." if separator is None else separator
    if not 1 <= len(chosen) <= 5:
        raise ToolError("the separator must have 1-5 characters")
    return chosen


def _each_record(data: JsonValue, transform: str) -> list[JsonValue]:
    if isinstance(data, list):
        if len(data) > _MAX_ROWS:
            raise ToolError(f"at most {_MAX_ROWS} records")
        return data
    if isinstance(data, dict):
        return [data]
    raise ToolError(f"only objects (or a list of objects) can be {transform}")


# ----- state --------------------------------------------------------------------------------


class Document(EnvState):
    """A stored document: its text and the format it is written in."""

    format: Format
    content: str


class DataFormatState(EnvState):
    """A small document store: document name -> its format and text."""

    documents: dict[str, Document] = Field(default_factory=dict)

    @field_validator("documents")
    @classmethod
    def _bounded(cls, value: dict[str, Document]) -> dict[str, Document]:
        if len(value) > _MAX_DOCUMENTS:
            raise ValueError(f"at most {_MAX_DOCUMENTS} documents")
        for name, document in value.items():
            if not _DOCUMENT_NAME.match(name):
                raise ValueError(f"invalid document name {reprlib.repr(name)}")
            if len(document.content) > _MAX_OUTPUT:
                raise ValueError(f"document {name!r} holds more than {_MAX_OUTPUT} characters")
        return value


class DataFormat(Environment[DataFormatState]):
    name = "data_format"
    state_model = DataFormatState

    # ----- helpers ----------------------------------------------------------------------
    def _document(self, name: str) -> Document:
        if name not in self.state.documents:
            known = ", ".join(sorted(self.state.documents)) or "none"
            raise ToolError(f"no document named {reprlib.repr(name)} (documents: {known})")
        return self.state.documents[name]

    def _check_new(self, name: str) -> None:
        if not _DOCUMENT_NAME.match(name):
            raise ToolError(
                f"invalid document name {reprlib.repr(name)}: 1-64 letters, digits, spaces, '_', "
                "'.' or '-', starting with a letter or digit"
            )
        if name not in self.state.documents and len(self.state.documents) >= _MAX_DOCUMENTS:
            raise ToolError(f"there are already {_MAX_DOCUMENTS} documents; delete one first")

    # ----- reading and writing formats --------------------------------------------------
    @tool(ToolKind.READ, _CONVERT, returns={"content": Sem.DATA_TEXT})
    def convert_format(
        self,
        content: Annotated[str, Sem.DATA_TEXT],
        source_format: Annotated[Format, Sem.FORMAT],
        target_format: Annotated[Format, Sem.FORMAT],
    ) -> dict[str, JsonValue]:
        """Convert a text from one data format to another.

        Args:
            content: The text to convert.
            source_format: The format the text is in: 'json', 'csv', 'keyvalue' (key: value
                lines) or 'markdown' (a Markdown table).
            target_format: The format to write: 'json', 'csv', 'keyvalue' or 'markdown'.
                CSV and Markdown need flat records; key/value needs one object.
        """
        if source_format == target_format:
            raise ToolError(
                f"the text is already {_FORMAT_NAMES[source_format]}; choose another target"
            )
        return {"content": _write(_parse(content, source_format), target_format)}

    @tool(ToolKind.READ, _PARSE, returns=_values_under("data"))
    def parse_data(
        self,
        content: Annotated[str, Sem.DATA_TEXT],
        source_format: Annotated[Format, Sem.FORMAT],
    ) -> dict[str, JsonValue]:
        """Parse a text into structured data (objects, lists and values).

        Args:
            content: The text to parse.
            source_format: The format the text is in: 'json', 'csv', 'keyvalue' or 'markdown'.
        """
        return {"data": _parse(content, source_format)}

    @tool(ToolKind.READ, _PRETTY, returns={"content": Sem.JSON_TEXT})
    def pretty_print_json(
        self,
        content: Annotated[str, Sem.JSON_TEXT],
        indent: Annotated[int | None, Sem.COUNT] = None,
        sort_keys: Annotated[bool | None, Sem.FLAG] = None,
    ) -> dict[str, JsonValue]:
        """Re-indent a JSON text, or make it compact.

        Args:
            content: The JSON text.
            indent: Spaces per nesting level, 1-8 (default 2); 0 writes it compactly on one
                line with no spaces.
            sort_keys: Whether to sort the keys of every object (default no).
        """
        width = 2 if indent is None else indent
        if not 0 <= width <= 8:
            raise ToolError("indent must be between 0 and 8")
        data = _load_json(_check_text(content))
        return {"content": _dump_json(data, indent=width, sort_keys=bool(sort_keys))}

    @tool(ToolKind.READ, _PARSE, returns=_values_under("value"))
    def extract_field(
        self,
        content: Annotated[str, Sem.DATA_TEXT],
        path: Annotated[str, Sem.FIELD_NAME],
        source_format: Annotated[Format | None, Sem.FORMAT] = None,
    ) -> dict[str, JsonValue]:
        """Get the value at a dotted path, such as 'address.city' or '0.email' (list index).

        Args:
            content: The text to read.
            path: Field names and list indices separated by dots.
            source_format: The format the text is in (default 'json').
        """
        return {"value": _lookup(_parse(content, source_format or "json"), path)}

    @tool(
        ToolKind.READ,
        _PARSE,
        returns={"valid": Sem.FLAG, "errors.*": Sem.MESSAGE, "error_count": Sem.COUNT},
    )
    def validate_record(
        self,
        content: Annotated[str, Sem.JSON_TEXT],
        field_types: Annotated[dict[str, FieldType], Sem.SCHEMA],
        required: Annotated[list[str] | None, Sem.FIELD_NAME] = None,
    ) -> dict[str, JsonValue]:
        """Check a JSON record (or a list of records) against a schema of field types.

        Args:
            content: A JSON object, or a JSON list of objects, to check.
            field_types: The schema: field name -> expected type, one of 'string', 'integer',
                'number' (integers count too), 'boolean', 'array', 'object' or 'null'. Fields
                not in the schema are allowed.
            required: The fields every record must have; every schema field when left out.
        """
        if not field_types:
            raise ToolError("the schema has no fields")
        if len(field_types) > _MAX_SCHEMA_FIELDS:
            raise ToolError(f"at most {_MAX_SCHEMA_FIELDS} schema fields")
        must = list(field_types) if required is None else required
        unknown = [name for name in must if name not in field_types]
        if unknown:
            raise ToolError(f"required field {unknown[0]!r} is not in the schema")
        data = _load_json(_check_text(content))
        records = data if isinstance(data, list) else [data]
        if len(records) > _MAX_ROWS:
            raise ToolError(f"at most {_MAX_ROWS} records")
        errors: list[JsonValue] = []
        for index, record in enumerate(records):
            where = f"record {index}: " if isinstance(data, list) else ""
            if not isinstance(record, dict):
                errors.append(f"{where}expected an object, got {_type_name(record)}")
                continue
            for name in must:
                if name not in record:
                    errors.append(f"{where}missing required field {name!r}")
            for name, expected in field_types.items():
                if name not in record:
                    continue
                actual = _type_name(record[name])
                if actual != expected and not (expected == "number" and actual == "integer"):
                    errors.append(f"{where}field {name!r} should be {expected}, got {actual}")
        return {"valid": not errors, "errors": errors[:100], "error_count": len(errors)}

    @tool(ToolKind.READ, _PARSE, returns={"content": Sem.JSON_TEXT})
    def flatten_record(
        self,
        content: Annotated[str, Sem.JSON_TEXT],
        separator: Annotated[str | None, Sem.SEPARATOR] = None,
    ) -> dict[str, JsonValue]:
        """Flatten nested objects into one level with dotted keys ({"a": {"b": 1}} -> {"a.b": 1}).

        Args:
            content: A JSON object, or a JSON list of objects (each is flattened). Lists
                inside a record stay as they are.
            separator: What to join nested keys with (default '.').
        """
        sep = _separator(separator)
        data = _load_json(_check_text(content))
        if isinstance(data, list):
            flat: JsonValue = [_flatten(item, sep) for item in _each_record(data, "flattened")]
        else:
            flat = _flatten(data, sep)
        return {"content": _dump_json(flat)}

    @tool(ToolKind.READ, _PARSE, returns={"content": Sem.JSON_TEXT})
    def unflatten_record(
        self,
        content: Annotated[str, Sem.JSON_TEXT],
        separator: Annotated[str | None, Sem.SEPARATOR] = None,
    ) -> dict[str, JsonValue]:
        """Turn dotted keys back into nested objects ({"a.b": 1} -> {"a": {"b": 1}}).

        Args:
            content: A JSON object, or a JSON list of objects (each is unflattened).
            separator: The separator inside keys (default '.').
        """
        sep = _separator(separator)
        data = _load_json(_check_text(content))
        if isinstance(data, list):
            nested: JsonValue = [
                _unflatten(item, sep) for item in _each_record(data, "unflattened")
            ]
        else:
            nested = _unflatten(data, sep)
        return {"content": _dump_json(nested)}

    # ----- the document store -----------------------------------------------------------
    @tool(ToolKind.WRITE, _STORE_WRITE, returns={"saved": Sem.FLAG, "size": Sem.SIZE_BYTES})
    def save_document(
        self,
        name: Annotated[str, Sem.DOCUMENT_ID],
        content: Annotated[str, Sem.DATA_TEXT],
        source_format: Annotated[Format, Sem.FORMAT],
    ) -> dict[str, JsonValue]:
        """Save a text as a named document after checking that it parses; replaces a document
        of the same name.

        Args:
            name: The document's name (1-64 letters, digits, spaces, '_', '.' or '-').
            content: The text to store.
            source_format: The format the text is in: 'json', 'csv', 'keyvalue' or 'markdown'.
        """
        self._check_new(name)
        _parse(content, source_format)
        self.state.documents[name] = Document(format=source_format, content=content)
        return {"saved": True, "size": len(content)}

    @tool(ToolKind.READ, _STORE_READ, returns={"content": Sem.DATA_TEXT, "format": Sem.FORMAT})
    def load_document(self, name: Annotated[str, Sem.DOCUMENT_ID]) -> dict[str, JsonValue]:
        """Read a stored document's text and format.

        Args:
            name: The document to read.
        """
        document = self._document(name)
        return {"content": document.content, "format": document.format}

    @tool(ToolKind.READ, _STORE_READ, returns={"names.*": Sem.DOCUMENT_ID})
    def list_documents(self) -> dict[str, JsonValue]:
        """List the names of the stored documents, in alphabetical order."""
        return {"names": list(sorted(self.state.documents))}

    @tool(ToolKind.WRITE, _STORE_WRITE, returns={"content": Sem.DATA_TEXT})
    def convert_document(
        self,
        name: Annotated[str, Sem.DOCUMENT_ID],
        target_format: Annotated[Format, Sem.FORMAT],
        new_name: Annotated[str | None, Sem.DOCUMENT_ID] = None,
    ) -> dict[str, JsonValue]:
        """Convert a stored document to another format, in place or into a new document.

        Args:
            name: The document to convert.
            target_format: The format to write: 'json', 'csv', 'keyvalue' or 'markdown'.
            new_name: Store the result under this name (replacing a document of that name);
                when left out the document itself is converted.
        """
        document = self._document(name)
        if document.format == target_format:
            raise ToolError(f"document {name!r} is already {_FORMAT_NAMES[target_format]}")
        destination = name if new_name is None else new_name
        self._check_new(destination)
        converted = _write(_parse(document.content, document.format), target_format)
        self.state.documents[destination] = Document(format=target_format, content=converted)
        return {"content": converted}

    @tool(ToolKind.WRITE, _STORE_WRITE, returns=_values_under("previous"))
    def set_field(
        self,
        name: Annotated[str, Sem.DOCUMENT_ID],
        path: Annotated[str, Sem.FIELD_NAME],
        value: Annotated[str | int | float | bool | None, Sem.FIELD_VALUE],
    ) -> dict[str, JsonValue]:
        """Set one value inside a stored document, at a dotted path such as 'address.city' or
        '2.price' (row 2 of a table); the document keeps its format.

        Args:
            name: The document to edit.
            path: Field names and list indices separated by dots; the last field may be new,
                everything before it must exist.
            value: The new value (text, number, true/false or null).
        """
        document = self._document(name)
        data = _parse(document.content, document.format)
        keys = _path_keys(path)
        parent = data
        for key in keys[:-1]:
            parent = _step(parent, key, path)
        last = keys[-1]
        if isinstance(value, float) and not math.isfinite(value):
            raise ToolError("the value must be a finite number")
        if isinstance(value, str) and len(value) > _MAX_TEXT:
            raise ToolError(f"the value is too long (at most {_MAX_TEXT} characters)")
        previous: JsonValue = None
        if isinstance(parent, dict):
            previous = parent.get(last)
            parent[last] = value
        elif isinstance(parent, list):
            previous = _step(parent, last, path)
            parent[int(last)] = value
        else:
            raise ToolError(f"{path!r} goes through a {_type_name(parent)} value")
        content = _write(data, document.format)
        self.state.documents[name] = Document(format=document.format, content=content)
        return {"previous": previous}

    @tool(ToolKind.WRITE, _STORE_WRITE, returns={"deleted": Sem.FLAG})
    def delete_document(self, name: Annotated[str, Sem.DOCUMENT_ID]) -> dict[str, JsonValue]:
        """Delete a stored document.

        Args:
            name: The document to delete.
        """
        self._document(name)
        del self.state.documents[name]
        return {"deleted": True}
