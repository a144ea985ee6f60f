"""The end-to-end job behind ``make dataset``, running the stages that exist so far.

Today: gather candidates (the project's seeds, plus BFCL tasks imported at turn granularity when
the peer data is present), replay each on fresh environments, and write the candidates that
replay cleanly and those that do not — with the failing call and its error — to
``output/runs/<run_id>/``. Later stages (validate, evolve, compose, publish) plug in here.
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.bfcl.importer import Granularity, import_bfcl, multi_turn_files
from pipeline.jsonl import write_atomic, write_records
from pipeline.models import Evidence, Rejection, RejectionCode, Stage, Task
from pipeline.replay import replay
from pipeline.seeds import SEED_DIR, load_seeds

DEFAULT_BFCL = Path(__file__).resolve().parent.parent.parent / "shared" / "peers" / "bfcl" / "v4"


@dataclass
class DatasetSummary:
    run_dir: Path
    accepted: int
    rejected: int
    sources: dict[str, int]


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def _replay_check(task: Task) -> Rejection | None:
    result = replay(task)
    for outcome in result.outcomes:
        if outcome.error is not None:
            return Rejection(
                sample_id=task.id,
                stage=Stage.EXECUTE,
                code=RejectionCode.EXECUTE_TOOL_ERROR,
                message=f"step {outcome.call_id} ({outcome.tool}) failed: {outcome.error}",
                evidence=Evidence(step_id=outcome.call_id, output=outcome.error),
            )
    return None


def build_dataset(
    output_root: Path, run_id: str | None = None, bfcl_folder: Path | None = DEFAULT_BFCL
) -> DatasetSummary:
    started = time.perf_counter()
    run_dir = output_root / "runs" / (run_id or new_run_id())
    candidates = load_seeds(SEED_DIR)
    sources: Counter[str] = Counter({"seeds": len(candidates)})
    if bfcl_folder is not None and bfcl_folder.is_dir():
        report = import_bfcl(multi_turn_files(bfcl_folder), Granularity.TURN)
        candidates.extend(report.tasks)
        sources["bfcl"] = len(report.tasks)
    accepted: list[Task] = []
    rejected: list[Rejection] = []
    for task in tqdm(candidates, desc="replay", unit="task", leave=False):
        rejection = _replay_check(task)
        if rejection is None:
            accepted.append(task)
        else:
            rejected.append(rejection)
    write_records(run_dir / "accepted.jsonl", accepted)
    write_records(run_dir / "rejected.jsonl", rejected)
    manifest: dict[str, Any] = {
        "run_id": run_dir.name,
        "stages": ["seeds", "import-bfcl", "replay"],
        "sources": dict(sources),
        "counts": {"accepted": len(accepted), "rejected": len(rejected)},
        "rejection_codes": dict(Counter(r.code.value for r in rejected)),
        "python": platform.python_version(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_atomic(run_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return DatasetSummary(run_dir, len(accepted), len(rejected), dict(sources))
