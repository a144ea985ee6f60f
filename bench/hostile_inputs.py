"""How long the environments take to refuse hostile input: huge texts, lists and numbers,
catastrophic regular expressions, a join that would explode, a far generator position.

The tests check *that* each of these is refused (and changes nothing); how fast is measured
here, where a loaded machine skews a number instead of failing a run. Each case runs once in a
fresh environment; the table lists the slowest first, and the run ends with status 1 when a
case takes longer than the budget (a refusal should not need to do the work it refuses).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.envs import ENVIRONMENTS, ToolError
from pipeline.envs.data_generation import MAX_RNG_WORDS
from pipeline.seeds import load_seeds
from pipeline.validate.chain import validate_line

BUDGET = 2.0  # seconds one refusal may take on an idle core

STAFF: dict[str, Any] = {
    "columns": {"name": "text", "team": "text", "salary": "integer"},
    "rows": [{"id": 1, "name": "Ana", "team": "Core", "salary": 70000}],
}
SAME_KEY = {"columns": {"key": "text"}, "rows": [{"id": i, "key": "same"} for i in range(1, 1001)]}


@dataclass(frozen=True)
class Case:
    env: str
    tool: str
    arguments: dict[str, Any]
    state: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        shown = json.dumps(self.arguments)
        return f"{self.env}.{self.tool}({shown[:60]}{'...' if len(shown) > 60 else ''})"


CASES = [
    # data_generation: sizes that would allocate or loop for a long time
    Case("data_generation", "summarise_numbers", {"values": list(range(200_000))}),
    Case("data_generation", "count_values", {"items": list(range(200_000))}),
    Case("data_generation", "shuffle_items", {"items": list(range(200_000))}),
    Case("data_generation", "random_choice", {"items": ["x" * 1_000_000]}),
    Case("data_generation", "random_integers", {"count": 10**9, "low": 1, "high": 2}),
    Case("data_generation", "random_integers", {"count": 2, "low": 0, "high": 10**100}),
    Case("data_generation", "arithmetic_sequence", {"start": 0, "step": 1, "length": 10**12}),
    Case("data_generation", "date_range", {"start": "0001-01-01", "end": "9999-12-31"}),
    Case("data_generation", "generate_ids", {"prefix": "P" * 1_000_000, "count": 1}),
    Case("data_generation", "summarise_numbers", {"values": [1e308, float("nan")]}),
    Case(
        "data_generation",
        "sample_records",
        {"fields": [{"name": f"f{i}", "kind": "boolean"} for i in range(10_000)], "count": 1},
    ),
    Case(
        "data_generation",
        "random_integers",
        {"count": 1, "low": 1, "high": 2},
        {"rng_words": MAX_RNG_WORDS, "random_seed": 1},  # the generator is used up
    ),
    # data_management: inserts, filters and tables far over the limits; an exploding join
    Case(
        "data_management",
        "insert_rows",
        {"table": "staff", "rows": [{"name": f"n{i}"} for i in range(100_000)]},
        {"tables": {"staff": STAFF}},
    ),
    Case(
        "data_management",
        "select_rows",
        {"table": "staff", "where_column": "name", "where_value": "x" * 1_000_000},
        {"tables": {"staff": STAFF}},
    ),
    Case(
        "data_management",
        "create_table",
        {"table": "t", "columns": {f"c{i}": "text" for i in range(10_000)}},
    ),
    Case(
        "data_management",
        "join_tables",
        {"left_table": "a", "right_table": "b", "left_column": "key"},
        {"tables": {"a": SAME_KEY, "b": SAME_KEY}},
    ),
    # data_format: huge or deeply nested documents
    Case("data_format", "parse_data", {"content": "[" * 100_000, "source_format": "json"}),
    Case(
        "data_format",
        "parse_data",
        {"content": '{"a": ' + "9" * 5000 + "}", "source_format": "json"},
    ),
    Case("data_format", "parse_data", {"content": "n\n" + "1\n" * 5_001, "source_format": "csv"}),
    Case(
        "data_format",
        "parse_data",
        {"content": "|" * 99_000 + "\n| --- |", "source_format": "markdown"},
    ),
    Case(
        "data_format",
        "parse_data",
        {"content": ".".join(["a"] * 5_000) + ": 1", "source_format": "keyvalue"},
    ),
    Case(
        "data_format",
        "convert_format",
        {
            "content": json.dumps([{"k": "x" * 40, "v": "y" * 40}] * 1_200),
            "source_format": "json",
            "target_format": "markdown",
        },
    ),
    # string_manipulation: catastrophic backtracking, patterns that compile forever, huge text
    Case("string_manipulation", "regex_find", {"text": "a" * 99_999 + "b", "pattern": r"(a+)+$"}),
    Case("string_manipulation", "regex_find", {"text": "a" * 5_000 + "b", "pattern": r"(a|aa)+$"}),
    Case(
        "string_manipulation",
        "regex_replace",
        {"text": "a" * 5_000 + "b", "pattern": r"(a|aa)+$", "replacement": "x"},
    ),
    Case(
        "string_manipulation",
        "regex_find",
        {"text": "abc", "pattern": "(?:(?:(?:a{1000}){1000}){1000})"},
    ),
    Case("string_manipulation", "regex_find", {"text": "ab" * 50_000, "pattern": "x?"}),
    Case("string_manipulation", "replace_text", {"text": "a" * 100_000, "old": "a", "new": "bbb"}),
    Case("string_manipulation", "join_parts", {"parts": ["x" * 100_000] * 3, "separator": ""}),
    # filesystem: a 10 MB file
    Case("filesystem", "echo", {"content": "x" * 10_000_000, "file_name": "big.txt"}),
]


def timed(action: Callable[[], object]) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        action()
        outcome = "answered"
    except ToolError:
        outcome = "refused"
    return time.perf_counter() - started, outcome


def run_case(case: Case) -> tuple[float, str]:
    env = ENVIRONMENTS[case.env].from_state(case.state)
    return timed(lambda: env.invoke(case.tool, case.arguments))


def far_generator_position() -> tuple[float, str]:
    """Validating a task whose state puts the generator 10**15 words on."""
    seed = next(s for s in load_seeds() if "rng_words" in s.initial_config.get(s.envs[0], {}))
    raw = json.loads(seed.model_dump_json())
    raw["initial_config"][seed.envs[0]]["rng_words"] = 10**15
    seconds, _ = timed(lambda: validate_line(json.dumps(raw)))
    return seconds, "validated"


def main() -> int:
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, budget {BUDGET} s")
    rows = [(*run_case(case), case.label) for case in CASES]
    rows.append((*far_generator_position(), "validate a task with rng_words = 10**15"))
    rows.sort(reverse=True)
    for seconds, outcome, label in rows:
        flag = "  OVER BUDGET" if seconds > BUDGET else ""
        print(f"{seconds * 1000:9.1f} ms  {outcome:9s} {label}{flag}")
    over = sum(seconds > BUDGET for seconds, _, _ in rows)
    print(f"{len(rows)} cases, slowest {rows[0][0]:.3f} s, {over} over the budget")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
