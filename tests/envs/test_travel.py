"""The travel environment (BFCL ``TravelAPI``): login, cards, fares, bookings, insurance."""

from __future__ import annotations

from typing import Any

import pytest
from envcheck import refusal

from pipeline.envs import Environment, ToolError
from pipeline.envs.travel import Travel, flight_cost

TOKEN = "tok-123"


def logged_in(**extra: Any) -> Travel:
    state: dict[str, Any] = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "token_expires_in": 3600,
        "token_scope": "read_write",
        "user_first_name": "Ada",
        "user_last_name": "Byron",
        "credit_card_list": {"c1": {"card_number": "4111111111111111", "balance": 1000.0}},
    }
    state.update(extra)
    env = Travel.from_state(state)
    assert isinstance(env, Travel)
    return env


def authenticate(env: Environment[Any]) -> dict[str, Any]:
    result = env.invoke(
        "authenticate_travel",
        {
            "client_id": "cid",
            "client_secret": "secret",
            "refresh_token": "rt",
            "grant_type": "read_write",
            "user_first_name": "Ada",
            "user_last_name": "Byron",
        },
    )
    assert isinstance(result, dict)
    return result


# ----- ids and determinism -----------------------------------------------------------------
def test_ids_follow_upstream_draw_order_with_the_default_seed() -> None:
    env = Travel.from_state({})
    login = authenticate(env)
    assert login == {
        "expires_in": 2,
        "access_token": "251675",
        "token_type": "Bearer",
        "scope": "read_write",
    }
    card = env.invoke(
        "register_credit_card",
        {
            "access_token": "251675",
            "card_number": "2345-6789-1234-5678",
            "expiration_date": "08/2025",
            "cardholder_name": "Ada Byron",
            "card_verification_number": 567,
        },
    )
    assert card == {"card_id": "391310425148"}
    assert env.state.credit_card_list["391310425148"]["balance"] == 58617
    booked = env.invoke(
        "book_flight",
        {
            "access_token": "251675",
            "card_id": "391310425148",
            "travel_date": "2026-12-15",
            "travel_from": "SFO",
            "travel_to": "LAX",
            "travel_class": "business",
        },
    )
    assert booked == {
        "booking_id": "4191922",
        "transaction_id": "56121276",
        "booking_status": True,
        "booking_history": {},
    }
    assert env.state.credit_card_list["391310425148"]["balance"] == 58217.0


def test_snapshot_mid_way_continues_the_same_id_sequence() -> None:
    first = logged_in()
    first.invoke(
        "register_credit_card",
        {
            "access_token": TOKEN,
            "card_number": "5500000000000004",
            "expiration_date": "01/2030",
            "cardholder_name": "Ada Byron",
            "card_verification_number": 111,
        },
    )
    resumed = Travel.from_state(first.snapshot())
    args = {
        "access_token": TOKEN,
        "card_id": "c1",
        "travel_date": "2026-03-03",
        "travel_from": "RMS",
        "travel_to": "SBK",
        "travel_class": "economy",
    }
    assert first.invoke("book_flight", args) == resumed.invoke("book_flight", args)
    assert first.snapshot() == resumed.snapshot()


def test_same_seed_same_ids_other_seed_other_ids() -> None:
    a, b, c = Travel.from_state({}), Travel.from_state({}), Travel.from_state({"random_seed": 5})
    assert authenticate(a)["access_token"] == authenticate(b)["access_token"]
    assert authenticate(c)["access_token"] != authenticate(Travel.from_state({}))["access_token"]


# ----- fares and look-ups ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("route", "day", "klass", "price"),
    [
        (("SFO", "LAX"), "2026-10-15", "first", 1000.0),  # odd digit sum: no surcharge
        (("SFO", "LAX"), "2026-11-15", "first", 2000.0),  # even digit sum: peak price
        (("JFK", "LAX"), "2026-02-28", "business", 2280.0),
        (("RMS", "SBK"), "2026-10-06", "economy", 220.0),
    ],
)
def test_observed_fares(route: tuple[str, str], day: str, klass: str, price: float) -> None:
    assert flight_cost(route[0], route[1], day, klass) == price


def test_route_missing_from_upstream_table_is_refused_with_upstream_error() -> None:
    env = logged_in()
    quote = {"travel_date": "2026-05-06", "travel_class": "economy"}
    for origin, destination in [("PEK", "BOS"), ("BOS", "SFO"), ("SFO", "SFO")]:
        args = {"travel_from": origin, "travel_to": destination, **quote}
        with pytest.raises(ToolError) as raised:
            env.invoke("get_flight_cost", args)
        assert str(raised.value) == "No available route for the given airports."
        refusal(
            env,
            "book_flight",
            {"access_token": TOKEN, "card_id": "c1", **args},
            "No available route for the given airports",
        )


def test_route_to_an_unlisted_airport_is_quoted_but_not_booked() -> None:
    """Upstream's table prices JFK->PVG, but PVG is missing from its airport listing, so its
    book_flight refuses the code."""
    env = logged_in()
    args = {
        "travel_from": "JFK",
        "travel_to": "PVG",
        "travel_date": "2026-01-02",
        "travel_class": "economy",
    }
    assert env.invoke("get_flight_cost", args) == {"travel_cost_list": [950.0]}
    refusal(env, "book_flight", {"access_token": TOKEN, "card_id": "c1", **args}, "unknown airport")


def test_fare_errors() -> None:
    env = Travel.from_state({})
    with pytest.raises(ToolError, match="unknown airport"):
        env.invoke(
            "get_flight_cost",
            {
                "travel_from": "XXX",
                "travel_to": "LAX",
                "travel_date": "2026-01-05",
                "travel_class": "economy",
            },
        )
    with pytest.raises(ToolError, match="YYYY-MM-DD"):
        env.invoke(
            "get_flight_cost",
            {
                "travel_from": "SFO",
                "travel_to": "LAX",
                "travel_date": "next friday",
                "travel_class": "economy",
            },
        )
    with pytest.raises(ToolError, match="travel_class"):
        env.invoke(
            "get_flight_cost",
            {
                "travel_from": "SFO",
                "travel_to": "LAX",
                "travel_date": "2026-01-05",
                "travel_class": "premium",
            },
        )


def test_lookups() -> None:
    env = Travel.from_state({})
    airports = env.invoke("list_all_airports", {})
    assert isinstance(airports, list) and len(airports) == 23 and airports[0] == "RMS"
    assert env.invoke("get_nearest_airport_by_city", {"location": "Rome"}) == {
        "nearest_airport": "CIA"
    }
    assert env.invoke(
        "compute_exchange_rate",
        {
            "base_currency": "RMB",
            "target_currency": "USD",
            "value": 10000.0,
        },
    ) == {"exchanged_value": 1428.57}
    assert env.invoke(
        "compute_exchange_rate",
        {
            "base_currency": "EUR",
            "target_currency": "GBP",
            "value": 100.0,
        },
    ) == {"exchanged_value": 87.5}


# ----- bookings -------------------------------------------------------------------------------
def test_book_insure_invoice_cancel_refunds_the_fare() -> None:
    env = logged_in()
    booked = env.invoke(
        "book_flight",
        {
            "access_token": TOKEN,
            "card_id": "c1",
            "travel_date": "2026-10-15",
            "travel_from": "SFO",
            "travel_to": "LAX",
            "travel_class": "first",
        },
    )
    assert isinstance(booked, dict)
    booking_id = str(booked["booking_id"])
    assert env.state.credit_card_list["c1"]["balance"] == 0.0
    assert env.state.booking_record[booking_id]["travel_cost"] == 1000.0
    invoice = env.invoke("retrieve_invoice", {"access_token": TOKEN, "booking_id": booking_id})
    assert invoice == {
        "invoice": {
            "booking_id": booking_id,
            "travel_date": "2026-10-15",
            "travel_from": "SFO",
            "travel_to": "LAX",
            "travel_class": "first",
            "travel_cost": 1000.0,
            "transaction_id": booked["transaction_id"],
        }
    }
    assert env.invoke("cancel_booking", {"access_token": TOKEN, "booking_id": booking_id}) == {
        "cancel_status": True
    }
    assert env.state.credit_card_list["c1"]["balance"] == 1000.0
    assert env.state.booking_record == {}


def test_insurance_charges_the_card() -> None:
    env = logged_in(booking_record={"b1": {"card_id": "c1", "travel_cost": 10.0}})
    result = env.invoke(
        "purchase_insurance",
        {
            "access_token": TOKEN,
            "insurance_type": "travel",
            "insurance_cost": 187.5,
            "booking_id": "b1",
            "card_id": "c1",
        },
    )
    assert result == {"insurance_id": "255316027", "insurance_status": True}
    assert env.state.credit_card_list["c1"]["balance"] == 812.5


def test_misuse_is_refused_and_changes_nothing() -> None:
    env = logged_in()
    flight = {
        "card_id": "c1",
        "travel_date": "2026-11-15",
        "travel_from": "SFO",
        "travel_to": "ORD",
        "travel_class": "first",
    }
    refusal(env, "book_flight", {"access_token": TOKEN, **flight}, "insufficient funds")
    refusal(env, "book_flight", {"access_token": "wrong", **flight}, "invalid access token")
    refusal(
        env, "book_flight", {"access_token": TOKEN, **flight, "card_id": "nope"}, "not registered"
    )
    refusal(env, "cancel_booking", {"access_token": TOKEN, "booking_id": "404"}, "not found")
    refusal(
        env,
        "purchase_insurance",
        {
            "access_token": TOKEN,
            "insurance_type": "travel",
            "insurance_cost": 5.0,
            "booking_id": "404",
            "card_id": "c1",
        },
        "not found",
    )
    refusal(env, "set_budget_limit", {"access_token": TOKEN, "budget_limit": -1.0}, "at least 0")
    refusal(
        env,
        "register_credit_card",
        {
            "access_token": TOKEN,
            "card_number": "4111111111111111",
            "expiration_date": "01/2030",
            "cardholder_name": "Ada Byron",
            "card_verification_number": 1,
        },
        "already registered",
    )
    refusal(env, "contact_customer_support", {"booking_id": "404", "message": "hi"}, "not found")
    refusal(
        env,
        "register_credit_card",
        {
            "access_token": TOKEN,
            "card_number": "5500000000000004",
            "expiration_date": "2030-01",
            "cardholder_name": "Ada Byron",
            "card_verification_number": 1,
        },
        "MM/YYYY",
    )
    fresh = Travel.from_state({})
    refusal(fresh, "get_booking_history", {"access_token": "x"}, "not authenticated")


def test_login_status_and_budget() -> None:
    env = Travel.from_state({})
    assert env.invoke("travel_get_login_status", {}) == {"status": False}
    token = authenticate(env)["access_token"]
    assert env.invoke("travel_get_login_status", {}) == {"status": True}
    assert env.invoke("set_budget_limit", {"access_token": token, "budget_limit": 5000}) == {
        "budget_limit": 5000.0
    }
    assert env.state.budget_limit == 5000.0


def test_traveller_verification_uses_the_state_date() -> None:
    env = logged_in(today="2026-06-01")
    check = {"first_name": "Ada", "last_name": "Byron", "passport_number": "US1234"}
    assert env.invoke("verify_traveler_information", {**check, "date_of_birth": "2008-06-01"}) == {
        "verification_status": True
    }
    young = env.invoke("verify_traveler_information", {**check, "date_of_birth": "2008-06-02"})
    assert young == {
        "verification_status": False,
        "verification_failure": "Traveler must be at least 18 years old.",
    }
    foreign = env.invoke(
        "verify_traveler_information",
        {**check, "date_of_birth": "1980-01-01", "passport_number": "P999"},
    )
    assert isinstance(foreign, dict) and foreign["verification_status"] is False
    other = env.invoke(
        "verify_traveler_information", {**check, "first_name": "Bob", "date_of_birth": "1980-01-01"}
    )
    assert isinstance(other, dict) and "another user" in str(other["verification_failure"])


def test_support_requests_are_recorded_but_hidden_from_bfcl_state() -> None:
    env = logged_in(booking_record={"b1": {"card_id": "c1"}})
    reply = env.invoke("contact_customer_support", {"booking_id": "b1", "message": "Help"})
    assert isinstance(reply, dict) and "received" in str(reply["customer_support_message"])
    assert env.state.support_requests == [{"booking_id": "b1", "message": "Help"}]
    assert "support_requests" not in env.bfcl_state() and "today" not in env.bfcl_state()


def test_bfcl_config_with_foreign_keys_is_accepted() -> None:
    env = Travel.from_bfcl_config(
        {
            "credit_card_list": {},
            "current_location": "San Francisco",
            "travel_mode": "driving",
            "budget_limit": 10.0,
        }
    )
    assert env.bfcl_state()["budget_limit"] == 10.0
    assert env.bfcl_state()["long_context"] is False


# ----- schema ---------------------------------------------------------------------------------
def test_tool_set() -> None:
    specs = Travel.tool_specs()
    assert len(specs) == 18
    assert list(specs["purchase_insurance"].param_names) == [
        "access_token",
        "insurance_type",
        "insurance_cost",
        "booking_id",
        "card_id",
    ]
    assert specs["book_flight"].latency > specs["list_all_airports"].latency
