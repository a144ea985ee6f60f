"""Loading the project's seed tasks from ``seeds/``."""

from __future__ import annotations

from pathlib import Path

from pipeline.jsonl import RecordError, read_records
from pipeline.models import Task

SEED_DIR = Path(__file__).resolve().parent.parent / "seeds"


def seed_files(folder: Path = SEED_DIR) -> list[Path]:
    return sorted(folder.glob("*.jsonl"))


def load_seeds(folder: Path = SEED_DIR) -> list[Task]:
    """Every seed task; a seed whose id is not its content hash is an error (edited by hand)."""
    tasks: list[Task] = []
    for path in seed_files(folder):
        for task in read_records(path, Task):
            if task.id != task.content_id():
                raise RecordError(
                    f"{path}: seed {task.id} has content hash {task.content_id()}; "
                    "regenerate its id after editing"
                )
            tasks.append(task)
    return tasks
