"""Upstream BFCL's long-context variant: the extra content each environment loads."""

from __future__ import annotations

from pipeline.envs import long_context
from pipeline.envs.filesystem import Filesystem
from pipeline.envs.trading import Trading
from pipeline.envs.travel import Travel
from pipeline.envs.vehicle import Vehicle

_ROOT = {
    "workspace": {
        "type": "directory",
        "contents": {
            "notes.txt": {"type": "file", "content": "hello"},
            "log.txt": {"type": "file", "content": "last line"},
            "docs": {"type": "directory", "contents": {}},
        },
    }
}


def test_filesystem_long_context_extends_files_and_fills_leaf_folders() -> None:
    env = Filesystem.from_bfcl_config({"root": _ROOT, "long_context": True})
    state = env.bfcl_state()
    assert state["long_context"] is True
    top = state["root"]["workspace"]["contents"]
    assert top["notes.txt"]["content"] == "hello" + long_context.FILE_CONTENT_EXTENSION
    assert top["log.txt"]["content"] == "last line"  # in FILES_KEPT_SHORT
    # the top folder has a subfolder: no extra files; the leaf folder gets them, in order
    assert not any(name.startswith("image_") for name in top)
    assert list(top["docs"]["contents"]) == list(long_context.EXTRA_FILE_NAMES)
    # a snapshot round-trips without adding anything again
    assert Filesystem.from_state(env.snapshot()).bfcl_state() == state


def test_filesystem_without_long_context_is_unchanged() -> None:
    plain = Filesystem.from_bfcl_config({"root": _ROOT}).bfcl_state()
    assert plain["root"] == _ROOT and plain["long_context"] is False


def test_travel_long_context_appends_cards_and_bookings() -> None:
    card = {"card_number": "1", "balance": 10.0}
    env = Travel.from_bfcl_config({"credit_card_list": {"mine": card}, "long_context": True})
    state = env.bfcl_state()
    cards = list(state["credit_card_list"])
    assert cards == ["mine", *long_context.CREDIT_CARD_EXTENSION]
    assert list(state["booking_record"]) == list(long_context.BOOKING_RECORD_EXTENSION)
    assert Travel.from_bfcl_config({"credit_card_list": {"mine": card}}).bfcl_state()[
        "credit_card_list"
    ] == {"mine": card}


def _quote(env: Travel) -> list[object]:
    result = env.invoke(
        "get_flight_cost",
        {"travel_from": "SFO", "travel_to": "ORD", "travel_date": "2026-11-15",
         "travel_class": "first"},
    )  # fmt: skip
    assert isinstance(result, dict) and isinstance(result["travel_cost_list"], list)
    return list(result["travel_cost_list"])


def test_travel_long_context_quotes_the_whole_table() -> None:
    (fare,) = _quote(Travel.from_bfcl_config({}))
    quoted = _quote(Travel.from_bfcl_config({"long_context": True}))
    assert len(quoted) == len(long_context.FLIGHT_COST_LIST)
    assert fare in quoted and all(isinstance(value, float) for value in quoted)


def test_trading_and_vehicle_long_context_lengthen_results_not_state() -> None:
    trading = Trading.from_bfcl_config({"watch_list": ["NVDA"], "long_context": True})
    listed = trading.invoke("get_watchlist", {})
    assert isinstance(listed, list) and listed[0] == "NVDA" and listed[-1] == "..."
    assert len(listed) == len(long_context.WATCH_LIST_EXTENSION) + 2
    assert Trading.from_bfcl_config({"watch_list": ["NVDA"]}).invoke("get_watchlist", {}) == {
        "watchlist": ["NVDA"]
    }
    vehicle = Vehicle.from_bfcl_config({"long_context": True})
    status = vehicle.invoke("displayCarStatus", {"option": "fuel"})
    assert isinstance(status, dict)
    assert status["metadata"] == long_context.CAR_STATUS_METADATA and "fuelLevel" in status
    plain = Vehicle.from_bfcl_config({}).invoke("displayCarStatus", {"option": "fuel"})
    assert isinstance(plain, dict) and "metadata" not in plain
    assert vehicle.bfcl_state()["long_context"] is True
