"""Our environments against upstream BFCL's own final states for every base task."""

from __future__ import annotations

from pathlib import Path

from pipeline.bfcl.conformance import check_conformance


def test_base_tasks_match_upstream_final_states(bfcl_dir: Path) -> None:
    report = check_conformance(bfcl_dir)
    print("\n" + report.summary())
    for task_id, bfcl_class, diff in report.mismatches:
        print(f"mismatch {task_id} {bfcl_class}: {diff[:3]}")
    assert report.tasks >= 100
    assert report.rate >= 0.95, report.summary()
