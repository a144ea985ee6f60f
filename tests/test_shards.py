"""The sharded-stage steps every sharded stage shares: a shard is processed once (its stats,
written last, mark it done), and merging follows the plan, not the order shards finished in.
The stages' own runs through them are tested in tests/validate, tests/evolve and
tests/test_crash_resume.py."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.shards import ShardSlot, merge_in_order, process_once, run_inline


@dataclass
class Tally:
    index: int
    lines: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Tally:
        return cls(**json.loads(text))


def _work(slot: ShardSlot, calls: list[int]) -> tuple[dict[str, str], Tally]:
    calls.append(slot.index)
    return {"kept": f"kept {slot.index}\n", "dropped": ""}, Tally(slot.index, 1)


def test_a_finished_shard_is_read_back_not_redone(tmp_path: Path) -> None:
    slot = ShardSlot(tmp_path, 3)
    calls: list[int] = []
    first = process_once(slot, Tally.from_json, lambda: _work(slot, calls))
    again = process_once(slot, Tally.from_json, lambda: _work(slot, calls))
    assert calls == [3] and first == again == Tally(3, 1)
    assert slot.output("kept") == tmp_path / "00003.kept.jsonl"
    assert slot.output("kept").read_text() == "kept 3\n" and slot.output("dropped").exists()
    assert json.loads(slot.stats.read_text()) == {"index": 3, "lines": 1}


def test_a_shard_killed_before_its_stats_is_done_again(tmp_path: Path) -> None:
    slot = ShardSlot(tmp_path, 0)
    slot.output("kept").write_text("half a shard")  # outputs written, then killed
    calls: list[int] = []
    process_once(slot, Tally.from_json, lambda: _work(slot, calls))
    assert calls == [0] and slot.output("kept").read_text() == "kept 0\n"


def test_merge_follows_the_plan_whatever_order_shards_finished_in(tmp_path: Path) -> None:
    slots = [ShardSlot(tmp_path / "shards", index) for index in range(4)]
    calls: list[int] = []
    finished = run_inline(
        lambda slot: process_once(slot, Tally.from_json, lambda: _work(slot, calls)),
        list(reversed(slots)),
    )
    assert [stats.index for stats in finished] == calls == [3, 2, 1, 0]
    merge_in_order(slots, "kept", tmp_path / "kept.jsonl")
    assert (tmp_path / "kept.jsonl").read_text() == "kept 0\nkept 1\nkept 2\nkept 3\n"
