"""The data_generation environment: sequences, seeded draws, ids, dates, records, bounds."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from envcheck import refusal

from pipeline.envs.data_generation import MAX_RNG_WORDS, DataGeneration
from pipeline.seeds import load_seeds

FIELDS: list[dict[str, Any]] = [
    {"name": "age", "kind": "integer", "low": 18, "high": 65},
    {"name": "plan", "kind": "choice", "choices": ["basic", "pro"]},
    {"name": "joined", "kind": "date", "start": "2024-02-27", "end": "2024-03-02"},
    {"name": "active", "kind": "boolean"},
    {"name": "score", "kind": "number", "low": 0, "high": 1},
]


def make(**state: Any) -> DataGeneration:
    env = DataGeneration.from_state(state)
    assert isinstance(env, DataGeneration)
    return env


def call(env: DataGeneration, tool: str, **args: Any) -> Any:
    return env.invoke(tool, args)


# --- sequences -------------------------------------------------------------------------------


def test_sequences() -> None:
    env = make()
    assert call(env, "arithmetic_sequence", start=5, step=7, length=4) == {
        "values": [5, 12, 19, 26]
    }
    assert call(env, "arithmetic_sequence", start=0.1, step=0.2, length=3) == {
        "values": [0.1, 0.3, 0.5]
    }
    assert call(env, "geometric_sequence", start=3, ratio=2, length=4) == {"values": [3, 6, 12, 24]}
    assert call(env, "geometric_sequence", start=1, ratio=0.5, length=3) == {
        "values": [1.0, 0.5, 0.25]
    }
    assert call(env, "fibonacci_sequence", length=7) == {"values": [0, 1, 1, 2, 3, 5, 8]}
    assert call(env, "fibonacci_sequence", length=4, first=2, second=3) == {"values": [2, 3, 5, 8]}
    assert env.snapshot()["rng_words"] == 0  # sequences draw nothing
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("arithmetic_sequence", {"start": 1, "step": 1, "length": 0}, "length"),
        ("arithmetic_sequence", {"start": 1, "step": 1, "length": 1001}, "length"),
        ("arithmetic_sequence", {"start": 1, "step": 10**14, "length": 1000}, "last value"),
        ("geometric_sequence", {"start": 2, "ratio": 10, "length": 1000}, "magnitude"),
        ("geometric_sequence", {"start": 1.0, "ratio": float("inf"), "length": 2}, "finite"),
        ("fibonacci_sequence", {"length": 1000}, "magnitude"),
        ("fibonacci_sequence", {"length": "5"}, "invalid arguments"),
    ]
    for tool, args, text in cases:
        refusal(env, tool, args, text)


def test_summaries_and_counts() -> None:
    env = make()
    assert call(env, "summarise_numbers", values=[3, 1, 2, 10]) == {
        "count": 4,
        "sum": 16,
        "mean": 4.0,
        "median": 2.5,
        "min": 1,
        "max": 10,
        "stdev": 3.535534,
    }
    assert call(env, "summarise_numbers", values=[0.1, 0.2])["sum"] == 0.3
    counted = call(env, "count_values", items=["b", "a", "b", 3, "a", "b"])
    assert counted == {
        "counts": [
            {"value": "b", "count": 3},
            {"value": "a", "count": 2},
            {"value": 3, "count": 1},
        ],
        "most_common": "b",
        "distinct": 3,
    }
    refusal(env, "summarise_numbers", {"values": []}, "empty")
    refusal(env, "count_values", {"items": []}, "empty")
    refusal(env, "count_values", {"items": [None]}, "invalid arguments")


# --- seeded randomness -----------------------------------------------------------------------


DRAWS: list[tuple[str, dict[str, Any]]] = [
    ("random_integers", {"count": 5, "low": 1, "high": 100}),
    ("random_numbers", {"count": 3, "low": 0, "high": 1, "decimals": 3}),
    ("random_choice", {"items": ["a", "b", "c", 4]}),
    ("sample_items", {"items": list(range(10)), "count": 3}),
    ("sample_items", {"items": ["x", "y"], "count": 4, "with_replacement": True}),
    ("shuffle_items", {"items": [1, 2, 3, 4, 5]}),
    ("random_hex_ids", {"count": 3, "length": 6, "prefix": "s-"}),
    ("random_dates", {"start": "2024-01-01", "end": "2024-12-31", "count": 3, "sort": True}),
    ("sample_records", {"fields": FIELDS, "count": 2}),
]


def _draw_all(env: DataGeneration, draws: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    return [env.invoke(tool, args) for tool, args in draws]


def test_draws_are_deterministic_and_resume_from_a_snapshot() -> None:
    random.seed(1)  # the global generator must play no part
    first = _draw_all(make(random_seed=5), DRAWS)
    random.seed(2)
    assert _draw_all(make(random_seed=5), DRAWS) == first
    assert _draw_all(make(random_seed=6), DRAWS) != first
    assert all(result["seed"] == 5 for result in first)
    # stop half-way, rebuild from the snapshot, continue: exactly the same values
    env = make(random_seed=5)
    got = _draw_all(env, DRAWS[:4])
    assert env.snapshot()["rng_words"] > 0
    resumed = DataGeneration.from_state(env.snapshot())
    assert isinstance(resumed, DataGeneration)
    got += _draw_all(resumed, DRAWS[4:])
    assert got == first


def test_random_values_respect_their_arguments() -> None:
    env = make(random_seed=11)
    values = call(env, "random_integers", count=30, low=1, high=6)["values"]
    assert all(1 <= v <= 6 for v in values) and len(values) == 30
    unique = call(env, "random_integers", count=10, low=1, high=10, unique=True)["values"]
    assert sorted(unique) == list(range(1, 11))
    decimals = call(env, "random_numbers", count=20, low=-1, high=1, decimals=1)["values"]
    assert all(-1 <= v <= 1 and round(v, 1) == v for v in decimals)
    choice = call(env, "random_choice", items=["red", "green", "blue"])
    assert choice["choice"] == ["red", "green", "blue"][choice["index"]]
    sample = call(env, "sample_items", items=[1, 2, 3, 4], count=4)["sample"]
    assert sorted(sample) == [1, 2, 3, 4]
    ids = call(env, "random_hex_ids", count=50, length=4, prefix="k-")["ids"]
    assert len(set(ids)) == 50 and all(i.startswith("k-") and len(i) == 6 for i in ids)
    int(ids[0][2:], 16)
    dates = call(env, "random_dates", start="2024-02-28", end="2024-03-01", count=20, sort=True)
    assert set(dates["dates"]) <= {"2024-02-28", "2024-02-29", "2024-03-01"}
    assert dates["dates"] == sorted(dates["dates"])


def test_misused_draws_consume_nothing() -> None:
    env = make(random_seed=3)
    call(env, "random_integers", count=2, low=1, high=9)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("random_integers", {"count": 5, "low": 9, "high": 1}, "above"),
        ("random_integers", {"count": 5, "low": 1, "high": 3, "unique": True}, "distinct"),
        ("random_integers", {"count": 0, "low": 1, "high": 3}, "count"),
        ("random_numbers", {"count": 2, "low": 0, "high": 1, "decimals": 11}, "decimals"),
        ("random_choice", {"items": []}, "empty"),
        ("sample_items", {"items": [1, 2], "count": 3}, "without replacement"),
        ("random_hex_ids", {"count": 10, "length": 3}, "between 4 and 32"),
        ("random_hex_ids", {"count": 20_000, "length": 4}, "count"),
        ("random_hex_ids", {"count": 1000, "length": 4, "prefix": "a b"}, "prefix"),
        (
            "random_dates",
            {"start": "2024-02-30", "end": "2024-03-01", "count": 1},
            "not a valid date",
        ),
        ("random_dates", {"start": "2024-03-01", "end": "2024-02-01", "count": 1}, "before start"),
        ("random_dates", {"start": "01/02/2024", "end": "2024-03-01", "count": 1}, "YYYY-MM-DD"),
    ]
    for tool, args, text in cases:
        refusal(env, tool, args, text)


# --- ids and dates ---------------------------------------------------------------------------


def test_sequential_ids_continue_across_calls() -> None:
    env = make(id_counters={"INV-": 41})
    assert call(env, "generate_ids", prefix="INV-", count=2) == {
        "ids": ["INV-0041", "INV-0042"],
        "next_number": 43,
    }
    assert call(env, "generate_ids", prefix="INV-", count=1, width=6) == {
        "ids": ["INV-000043"],
        "next_number": 44,
    }
    assert call(env, "generate_ids", prefix="PO", count=1, width=1) == {
        "ids": ["PO1"],
        "next_number": 2,
    }
    assert call(env, "set_id_counter", prefix="INV-", next_number=900) == {
        "previous_number": 44,
        "next_number": 900,
    }
    assert call(env, "generate_ids", prefix="INV-", count=1)["ids"] == ["INV-0900"]
    assert env.snapshot()["id_counters"] == {"INV-": 901, "PO": 2}
    refusal(env, "generate_ids", {"prefix": "bad prefix", "count": 1}, "prefix")
    refusal(env, "generate_ids", {"prefix": "A", "count": 1, "width": 13}, "width")
    refusal(env, "set_id_counter", {"prefix": "A", "next_number": 0}, "next_number")


def test_date_range() -> None:
    env = make()
    assert call(env, "date_range", start="2024-02-27", end="2024-03-02") == {
        "dates": ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02"]
    }
    assert call(env, "date_range", start="2023-12-25", end="2024-01-10", step_days=7) == {
        "dates": ["2023-12-25", "2024-01-01", "2024-01-08"]
    }
    refusal(env, "date_range", {"start": "2000-01-01", "end": "2020-01-01"}, "more than")
    refusal(
        env, "date_range", {"start": "2024-01-01", "end": "2024-01-02", "step_days": 0}, "step_days"
    )
    refusal(env, "date_range", {"start": "2024-13-01", "end": "2024-12-01"}, "not a valid date")


# --- records ---------------------------------------------------------------------------------


def test_sample_records_follow_the_schema() -> None:
    env = make(random_seed=9)
    result = call(env, "sample_records", fields=FIELDS, count=25)
    assert list(result) == ["columns", "records", "seed"]
    assert len(result["records"]) == 25
    for record in result["records"]:
        assert list(record) == ["age", "plan", "joined", "active", "score"]
        assert isinstance(record["age"], int) and 18 <= record["age"] <= 65
        assert record["plan"] in ("basic", "pro")
        assert "2024-02-27" <= record["joined"] <= "2024-03-02"
        assert isinstance(record["active"], bool)
        assert 0 <= record["score"] <= 1
    assert result["columns"]["age"] == [record["age"] for record in result["records"]]
    # a field's column feeds a summary
    summary = call(env, "summarise_numbers", values=result["columns"]["age"])
    assert summary["count"] == 25 and 18 <= summary["mean"] <= 65


def test_sample_records_misuse() -> None:
    env = make()
    for fields, text in [
        ([], "between 1 and"),
        ([{"name": "a", "kind": "integer", "low": 1}], "takes high, low"),
        ([{"name": "a", "kind": "integer", "low": 1.5, "high": 3}], "whole-number"),
        ([{"name": "a", "kind": "integer", "low": 5, "high": 3}], "above high"),
        ([{"name": "a", "kind": "choice", "choices": []}], "between 1 and 50"),
        ([{"name": "a", "kind": "choice", "choices": ["x"], "low": 1}], "takes choices"),
        ([{"name": "a", "kind": "boolean", "start": "2024-01-01"}], "takes nothing else"),
        ([{"name": "a", "kind": "date", "start": "2024-01-01", "end": "x"}], "YYYY-MM-DD"),
        ([{"name": "a", "kind": "boolean"}, {"name": "a", "kind": "boolean"}], "distinct"),
        ([{"name": "1a", "kind": "boolean"}], "not a valid name"),
        ([{"name": "a", "kind": "colour"}], "invalid arguments"),
        ([{"name": "a", "kind": "boolean", "extra": 1}], "invalid arguments"),
    ]:
        refusal(env, "sample_records", {"fields": fields, "count": 2}, text)
    refusal(env, "sample_records", {"fields": FIELDS, "count": 201}, "count")
    wide = [{"name": f"f{i}", "kind": "boolean"} for i in range(20)]
    refusal(env, "sample_records", {"fields": wide, "count": 101}, "count x fields")


# --- chaining --------------------------------------------------------------------------------


def test_outputs_feed_later_calls() -> None:
    env = make(random_seed=42)
    sequence = call(env, "fibonacci_sequence", length=10, first=2, second=3)["values"]
    sample = call(env, "sample_items", items=sequence, count=4)["sample"]
    assert set(sample) <= set(sequence)
    summary = call(env, "summarise_numbers", values=sample)
    assert summary["sum"] == sum(sample)
    dates = call(env, "random_dates", start="2024-01-01", end="2024-12-31", count=2, sort=True)[
        "dates"
    ]
    spanned = call(env, "date_range", start=dates[0], end=dates[1])["dates"]
    assert spanned[0] == dates[0] and spanned[-1] == dates[1]
    ids = call(env, "generate_ids", prefix="T-", count=3)["ids"]
    assert call(env, "random_choice", items=ids)["choice"] in ids


# --- hostile input (bench/hostile_inputs.py times the refusals) -----------------------------


def test_huge_inputs_are_refused() -> None:
    env = make()
    huge = list(range(200_000))
    refusal(env, "summarise_numbers", {"values": huge})
    refusal(env, "count_values", {"items": huge})
    refusal(env, "shuffle_items", {"items": huge})
    refusal(env, "random_choice", {"items": ["x" * 1_000_000]})
    refusal(env, "random_integers", {"count": 10**9, "low": 1, "high": 2})
    refusal(env, "random_integers", {"count": 2, "low": 0, "high": 10**100})
    refusal(env, "arithmetic_sequence", {"start": 0, "step": 1, "length": 10**12})
    refusal(env, "date_range", {"start": "0001-01-01", "end": "9999-12-31"})
    refusal(env, "generate_ids", {"prefix": "P" * 1_000_000, "count": 1})
    refusal(
        env,
        "sample_records",
        {"fields": [{"name": f"f{i}", "kind": "boolean"} for i in range(10_000)], "count": 1},
    )
    refusal(env, "summarise_numbers", {"values": [1e308, float("nan")]})


def test_generator_position_is_bounded() -> None:
    with pytest.raises(ValueError):
        DataGeneration.from_state({"rng_words": 10**12})
    env = make(rng_words=MAX_RNG_WORDS)
    refusal(env, "random_integers", {"count": 1, "low": 1, "high": 2}, "exhausted")
    assert call(env, "arithmetic_sequence", start=1, step=1, length=2) == {"values": [1, 2]}
    with pytest.raises(ValueError):
        DataGeneration.from_state({"id_counters": {f"p{i}": 1 for i in range(101)}})


# --- schema and seeds (the rest of the seed checks: test_every_environment.py) ---------------


def test_record_field_kinds() -> None:
    fields = DataGeneration.tool_specs()["sample_records"].parameters
    assert fields["$defs"]["FieldSpec"]["properties"]["kind"]["enum"] == [
        "integer",
        "number",
        "choice",
        "boolean",
        "date",
    ]


def test_seeds_start_from_ten_different_states() -> None:
    seeds = [task for task in load_seeds() if task.category == "data_generation"]
    assert len({json.dumps(seed.initial_config, sort_keys=True) for seed in seeds}) >= 10
