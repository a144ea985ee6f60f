"""JSON Schemas of the data contracts, generated from the pydantic models (``make schemas``)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from pipeline.manifest import Manifest
from pipeline.models import CONTRACTS

#: every exported model: the data contracts and the run manifest
EXPORTED: dict[str, type[BaseModel]] = {**CONTRACTS, "manifest": Manifest}

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def render_schemas() -> dict[str, str]:
    """File name -> schema text, deterministic so a stale ``schemas/`` shows as a diff."""
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True)
        + "\n"
        for name, model in EXPORTED.items()
    }


def stale_schemas(folder: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing, different, or no longer generated."""
    expected = render_schemas()
    stale = [
        name
        for name, text in expected.items()
        if not (folder / name).exists() or (folder / name).read_text(encoding="utf-8") != text
    ]
    stale += [p.name for p in folder.glob("*.schema.json") if p.name not in expected]
    return sorted(stale)


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.schema.json"):
        old.unlink()
    written = []
    for name, text in render_schemas().items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    return written
