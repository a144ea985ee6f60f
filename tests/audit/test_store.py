"""``reviews.jsonl``: append-only, latest decision wins, safe across processes."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.audit.store import StaleDecision, append_review, latest_reviews, read_reviews
from pipeline.jsonl import RecordError
from pipeline.models import Decision, Review


def _review(sample: str, decision: Decision, who: str, second: int = 0) -> Review:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=second)
    return Review(sample_id=sample, decision=decision, reviewer=who, note=f"{who}:{second}", at=at)


def test_latest_decision_per_sample_wins_in_append_order(tmp_path: Path) -> None:
    append_review(tmp_path, _review("a", Decision.OVERRIDE_ACCEPT, "ann", 5))
    append_review(tmp_path, _review("b", Decision.CONFIRM_REJECT, "bo", 1))
    # written later with an earlier timestamp (another clock): the file order decides
    append_review(tmp_path, _review("a", Decision.CONFIRM_REJECT, "cy", 0))
    reviews = read_reviews(tmp_path)
    assert [r.reviewer for r in reviews] == ["ann", "bo", "cy"]
    latest = latest_reviews(reviews)
    assert latest["a"].decision is Decision.CONFIRM_REJECT and latest["b"].reviewer == "bo"
    assert read_reviews(tmp_path / "missing") == []


def test_a_torn_last_line_does_not_swallow_the_next_decision(tmp_path: Path) -> None:
    append_review(tmp_path, _review("a", Decision.CONFIRM_REJECT, "ann"))
    with (tmp_path / "reviews.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"sample_id": "b", "deci')  # a crash mid-write
    append_review(tmp_path, _review("c", Decision.CONFIRM_REJECT, "cy"))
    lines = (tmp_path / "reviews.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 3 and lines[2].startswith('{"sample_id":"c"')
    with pytest.raises(RecordError, match="reviews.jsonl:2"):
        read_reviews(tmp_path)


#: one writer: a fresh interpreter (a forked copy of the test process would inherit its
#: threads and fork hooks, which another test's Dask cluster leaves behind)
_WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from pipeline.audit.store import append_review
from pipeline.models import Decision, Review
folder, worker, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for n in range(count):
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n)
    review = Review(sample_id=f"s{n % 7}", decision=Decision.CONFIRM_REJECT,
                    reviewer=f"w{worker}", note=f"w{worker}:{n}", at=at)
    append_review(folder, review)
"""


def test_appends_from_several_processes_lose_nothing(tmp_path: Path) -> None:
    workers, count = 4, 150
    processes = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(worker), str(count)])
        for worker in range(workers)
    ]
    for process in processes:
        assert process.wait(timeout=300) == 0
    reviews = read_reviews(tmp_path)
    assert len(reviews) == workers * count
    assert len({(r.reviewer, r.note) for r in reviews}) == workers * count


def test_a_stale_version_writes_nothing(tmp_path: Path) -> None:
    append_review(tmp_path, _review("a", Decision.CONFIRM_REJECT, "ann"), seen=0)
    append_review(tmp_path, _review("b", Decision.CONFIRM_REJECT, "bo"), seen=0)  # other sample
    with pytest.raises(StaleDecision) as stale:
        append_review(tmp_path, _review("a", Decision.OVERRIDE_ACCEPT, "cy"), seen=0)
    assert [r.reviewer for r in stale.value.since] == ["ann"]
    assert [r.reviewer for r in read_reviews(tmp_path)] == ["ann", "bo"]
    append_review(tmp_path, _review("a", Decision.OVERRIDE_ACCEPT, "cy"), seen=1)
    assert latest_reviews(read_reviews(tmp_path))["a"].reviewer == "cy"
