"""Upstream's route table: every ordered pair of its airports is quoted as upstream answers it.

``observed_get_flight_cost.jsonl`` (peer data, read at test time) holds upstream's answer to
``get_flight_cost`` for each of the 552 ordered pairs of its 24 airports (one date, one class):
a one-element ``travel_cost_list`` for the 153 routes of its table, the error "No available
route for the given airports." for every other pair.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.envs import ToolError
from pipeline.envs.travel import Travel

OBSERVED = "observed_get_flight_cost.jsonl"


@pytest.fixture(scope="module")
def observed(bfcl_dir: Path) -> list[dict[str, Any]]:
    path = bfcl_dir / OBSERVED
    if not path.exists():
        pytest.skip(f"observed flight costs not found at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ours(row: dict[str, Any]) -> dict[str, Any]:
    """Our answer to the observed call, in upstream's result shape."""
    env = Travel.from_state({})
    args = {key: row[key] for key in ("travel_from", "travel_to", "travel_date", "travel_class")}
    try:
        result = env.invoke("get_flight_cost", args)
    except ToolError as error:
        return {"error": str(error)}
    assert isinstance(result, dict)
    return result


def test_every_observed_route_and_no_route_pair_is_reproduced(
    observed: list[dict[str, Any]],
) -> None:
    assert len(observed) == 552
    airports = {row["travel_from"] for row in observed} | {row["travel_to"] for row in observed}
    assert len(airports) == 24
    pairs = {(row["travel_from"], row["travel_to"]) for row in observed}
    assert len(pairs) == 24 * 23  # every ordered pair of distinct airports, once
    answers = [(row, ours(row)) for row in observed]
    mismatches = [
        (row["travel_from"], row["travel_to"], row["result"], answer)
        for row, answer in answers
        if answer != row["result"]
    ]
    assert not mismatches, mismatches[:10]
    priced = sum("travel_cost_list" in row["result"] for row in observed)
    assert priced == 153


@pytest.mark.parametrize(
    ("travel_date", "travel_class", "factor"),
    [
        ("2026-01-01", "business", 2),  # digits sum to 12: peak date, as observed
        ("2026-01-02", "economy", 0.5),  # digits sum to 13: no surcharge
        ("2026-01-02", "first", 2.5),
    ],
)
def test_other_classes_and_dates_scale_the_observed_fares(
    observed: list[dict[str, Any]], travel_date: str, travel_class: str, factor: float
) -> None:
    """The observations are economy on one date; other classes and dates scale every route's
    price by upstream's class factor and date surcharge and keep every no-route error."""
    assert {(row["travel_date"], row["travel_class"]) for row in observed} == {
        ("2026-01-01", "economy")
    }
    for row in observed:
        scaled = {**row, "travel_date": travel_date, "travel_class": travel_class}
        expected = row["result"]
        if "travel_cost_list" in expected:
            expected = {"travel_cost_list": [expected["travel_cost_list"][0] * factor]}
        assert ours(scaled) == expected, (row["travel_from"], row["travel_to"])
