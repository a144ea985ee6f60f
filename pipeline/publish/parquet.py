"""Deterministic Parquet files with a fixed schema that ``datasets`` reads back as declared."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.publish.rows import ColumnKind, Row

_DTYPES: dict[ColumnKind, str] = {
    "string": "string",
    "nullable_string": "string",
    "json": "string",
    "nullable_json": "string",
    "int64": "int64",
    "float64": "float64",
}


def arrow_schema(columns: Mapping[str, ColumnKind]) -> Any:
    """The Arrow schema with ``datasets`` feature metadata, so loaders see the same types."""
    features = datasets.Features(
        {name: datasets.Value(_DTYPES[kind]) for name, kind in columns.items()}
    )
    return features.arrow_schema


def write_parquet(path: Path, rows: Sequence[Row], columns: Mapping[str, ColumnKind]) -> int:
    """Write ``rows`` in order; Parquet stores no timestamps, so equal rows give equal bytes."""
    table = pa.Table.from_pydict(
        {name: [row[name] for row in rows] for name in columns}, schema=arrow_schema(columns)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return len(rows)
