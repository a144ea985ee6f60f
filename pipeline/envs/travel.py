"""Travel: flights, credit cards, bookings and insurance behind a login (BFCL ``TravelAPI``).

Latencies: look-ups that a travel service answers from a cache (airport list, nearest airport,
exchange rate, login status) take 0.2-0.5 s; reading the user's own records through an
authenticated API (balances, history, invoices) about 0.8 s; a fare quote, which a real
service computes from live inventory, 1.2 s; authentication 1 s; writes that touch a payment
network (registering a card, booking, cancelling, buying insurance) 2-4 s; a support request
1.5 s.

Fares: upstream prices only the directed routes of its route table, stored once in
``pipeline/envs/data/flight_routes.csv`` (origin, destination, economy base fare in USD) and
loaded on import; every other pair of airports is answered with upstream's error "No available
route for the given airports.". A quote is the base fare x the class factor (economy 1,
business 2, first 5) x 2 when the travel date's digits add up to an even number (upstream's
peak surcharge). Quotes accept every airport of the route table (upstream's table has JFK->PVG
although PVG is not in its airport listing); bookings accept only listed airports, as upstream.
"""

from __future__ import annotations

import copy
import csv
import math
import re
from collections.abc import Mapping
from datetime import date
from importlib import resources
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, JsonValue

from pipeline.envs import long_context
from pipeline.envs.base import Environment, SeededState, ToolError, ToolKind, tool
from pipeline.semantics import Sem

_CACHED = 0.3
_AUTH_READ = 0.8
_QUOTE = 1.2
_AUTH = 1.0
_PAYMENT = 2.5
_BOOKING = 3.5
_SUPPORT = 1.5

TravelClass = Literal["economy", "business", "first"]
Currency = Literal["USD", "RMB", "EUR", "JPY", "GBP", "CAD", "AUD", "INR", "RUB", "BRL", "MXN"]

#: city -> nearest airport code (upstream's list and order)
_NEAREST_AIRPORT: dict[str, str] = {
    "Rivermist": "RMS",
    "Stonebrook": "SBK",
    "Maplecrest": "MPC",
    "Silverpine": "SVP",
    "Shadowridge": "SHD",
    "London": "LHR",
    "Paris": "CDG",
    "Sunset Valley": "SSV",
    "Oakendale": "OKD",
    "Willowbend": "WLB",
    "Crescent Hollow": "CRH",
    "Autumnville": "ATV",
    "Pinehaven": "PHV",
    "Greenfield": "GFD",
    "San Francisco": "SFO",
    "Los Angeles": "LAX",
    "New York": "JFK",
    "Chicago": "ORD",
    "Boston": "BOS",
    "Beijing": "PEK",
    "Hong Kong": "HKG",
    "Rome": "CIA",
    "Tokyo": "HND",
}
#: every airport, in upstream's listing order
_AIRPORTS: tuple[str, ...] = (
    "RMS",
    "SBK",
    "MPC",
    "SVP",
    "SHD",
    "CDG",
    "LHR",
    "SSV",
    "OKD",
    "WLB",
    "PEK",
    "HND",
    "HKG",
    "CIA",
    "CRH",
    "ATV",
    "PHV",
    "GFD",
    "SFO",
    "LAX",
    "JFK",
    "ORD",
    "BOS",
)
#: upstream's route table (see the module docstring and the file's own header)
_ROUTES_FILE = "data/flight_routes.csv"
_NO_ROUTE = "No available route for the given airports."
_CLASS_FACTOR: dict[str, int] = {"economy": 1, "business": 2, "first": 5}
#: units of each currency per US dollar (RMB, EUR, GBP observed upstream; others chosen)
_PER_USD: dict[str, float] = {
    "USD": 1.0,
    "RMB": 7.0,
    "EUR": 0.8,
    "JPY": 110.0,
    "GBP": 0.7,
    "CAD": 1.3,
    "AUD": 1.4,
    "INR": 70.0,
    "RUB": 60.0,
    "BRL": 3.8,
    "MXN": 20.0,
}
_SUPPORT_REPLY = (
    "Thank you for contacting customer support. Your message has been received and we will "
    "get back to you shortly."
)
_MAX_TEXT = 10_000
_EXPIRY = re.compile(r"^(0[1-9]|1[0-2])/\d{4}$")
_TOKEN_LIFETIME = 2

#: an access token from ``authenticate_travel``, as every authenticated tool takes it
AccessToken = Annotated[str, Sem.CREDENTIAL]
CardId = Annotated[str, Sem.CARD_ID]
BookingId = Annotated[str, Sem.BOOKING_ID]
Airport = Annotated[str, Sem.AIRPORT]
TravelDate = Annotated[str, Sem.DATE]

#: fields of a stored credit card: ours, plus the spellings found in upstream's configs
_CARD_FIELDS: dict[str, Sem] = {
    "card_number": Sem.CARD_NUMBER,
    "number": Sem.CARD_NUMBER,
    "expiration_date": Sem.CARD_EXPIRY,
    "expiry": Sem.CARD_EXPIRY,
    "expiry_date": Sem.CARD_EXPIRY,
    "cardholder_name": Sem.PERSON_NAME,
    "card_holder_name": Sem.PERSON_NAME,
    "name": Sem.PERSON_NAME,
    "card_verification_number": Sem.CREDENTIAL,
    "cvv": Sem.CREDENTIAL,
    "balance": Sem.MONEY_USD,
    "budget_limit": Sem.MONEY_USD,
    "card_type": Sem.OPTION,
    "type": Sem.OPTION,
}
#: fields of a booking record: ours, plus the spellings found in upstream's configs
_BOOKING_FIELDS: dict[str, Sem] = {
    "booking_id": Sem.BOOKING_ID,
    "card_id": Sem.CARD_ID,
    "transaction_id": Sem.TRANSACTION_ID,
    "travel_date": Sem.DATE,
    "date": Sem.DATE,
    "departure_date": Sem.DATE,
    "travel_from": Sem.AIRPORT,
    "travel_to": Sem.AIRPORT,
    "departure": Sem.AIRPORT,
    "arrival": Sem.AIRPORT,
    "departure_city": Sem.CITY,
    "arrival_city": Sem.CITY,
    "destination": Sem.CITY,
    "travel_class": Sem.OPTION,
    "class": Sem.OPTION,
    "flight_class": Sem.OPTION,
    "travel_cost": Sem.MONEY_USD,
    "cost": Sem.MONEY_USD,
    "cost_usd": Sem.MONEY_USD,
    "price": Sem.MONEY_USD,
    "passenger_name": Sem.PERSON_NAME,
    "passport_number": Sem.PASSPORT_NUMBER,
    "insurance": Sem.OPTION,
    "insurance.plan": Sem.OPTION,
    "insurance.cost": Sem.MONEY_USD,
}


def _records(prefix: str, fields: dict[str, Sem]) -> dict[str, Sem]:
    """Result types of a dict of records keyed by id under ``prefix``; keys we do not know
    (upstream records are free-form) are field values whose meaning depends on the key."""
    types = {f"{prefix}.*.{path}": sem for path, sem in fields.items()}
    types[f"{prefix}.*.*"] = Sem.FIELD_VALUE
    types[f"{prefix}.*.*.*"] = Sem.FIELD_VALUE
    return types


def _parse_date(value: str, what: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ToolError(f"{what} must be a date formatted YYYY-MM-DD, got {value[:40]!r}") from None


def _load_routes() -> dict[tuple[str, str], int]:
    """Economy base fares in USD of upstream's directed routes, keyed by (origin, destination)."""
    text = resources.files("pipeline.envs").joinpath(_ROUTES_FILE).read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {(row["origin"], row["destination"]): int(row["base_fare_usd"]) for row in rows}


_BASE_FARES: dict[tuple[str, str], int] = _load_routes()
#: airports a fare can be quoted for: the listing plus any code of the route table
_QUOTABLE: frozenset[str] = frozenset(_AIRPORTS).union(*_BASE_FARES)


def _check_airports(known: frozenset[str] | tuple[str, ...], *codes: str) -> None:
    for code in codes:
        if code not in known:
            listed = ", ".join(_AIRPORTS)
            raise ToolError(f"unknown airport {code[:40]!r}; known airports: {listed}")


def flight_cost(origin: str, destination: str, travel_date: str, travel_class: str) -> float:
    """Price of one ticket in USD (see the module docstring for the rule)."""
    _parse_date(travel_date, "travel_date")
    if travel_class not in _CLASS_FACTOR:
        raise ToolError("travel_class must be one of economy, business, first")
    _check_airports(_QUOTABLE, origin, destination)
    base_fare = _BASE_FARES.get((origin, destination))
    if base_fare is None:
        raise ToolError(_NO_ROUTE)
    digit_sum = sum(int(char) for char in travel_date if char.isdigit())
    peak = 2 if digit_sum % 2 == 0 else 1
    return float(base_fare * _CLASS_FACTOR[travel_class] * peak)


class TravelState(SeededState):
    """A traveller's account: cards, bookings, the current access token and a budget."""

    random_seed: int = 141053
    credit_card_list: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)
    booking_record: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)
    access_token: str | None = None
    token_type: str | None = None
    token_expires_in: int | None = None
    token_scope: str | None = None
    user_first_name: str | None = None
    user_last_name: str | None = None
    budget_limit: float | None = None
    long_context: bool = False
    #: the service's current date (ISO), used for the traveller age check; upstream reads the clock
    today: str = "2026-01-01"
    #: messages sent to customer support, oldest first (upstream keeps no record of them)
    support_requests: list[dict[str, str]] = Field(default_factory=list)


class Travel(Environment[TravelState]):
    name = "travel"
    state_model = TravelState
    bfcl_class = "TravelAPI"
    internal_fields: ClassVar[frozenset[str]] = frozenset(
        {"random_seed", "rng_words", "today", "support_requests"}
    )

    # ----- construction ----------------------------------------------------------------
    @classmethod
    def from_bfcl_config(cls, config: Mapping[str, Any]) -> Travel:
        """Upstream's loader; with ``long_context`` true it appends upstream's extra cards and
        bookings after the configured ones (a configured id is kept as configured)."""
        data = dict(config)
        if data.get("long_context") is True:
            for name, extra in (
                ("credit_card_list", long_context.CREDIT_CARD_EXTENSION),
                ("booking_record", long_context.BOOKING_RECORD_EXTENSION),
            ):
                configured = data.get(name)
                merged = dict(configured) if isinstance(configured, Mapping) else {}
                for key, value in extra.items():
                    merged.setdefault(key, copy.deepcopy(value))
                data[name] = merged
        env = super().from_bfcl_config(data)
        assert isinstance(env, Travel)
        return env

    # ----- helpers ---------------------------------------------------------------------
    def _check_token(self, access_token: str) -> None:
        state = self.state
        if state.access_token is None:
            raise ToolError("not authenticated: log in to the travel service first")
        if state.token_expires_in is not None and state.token_expires_in <= 0:
            raise ToolError("the access token has expired: authenticate again")
        if access_token != state.access_token:
            raise ToolError("invalid access token")

    def _card(self, card_id: str) -> dict[str, JsonValue]:
        card = self.state.credit_card_list.get(card_id)
        if card is None:
            known = ", ".join(sorted(self.state.credit_card_list)) or "none"
            raise ToolError(f"credit card {card_id[:40]!r} is not registered (registered: {known})")
        return card

    def _charge(self, card_id: str, amount: float) -> None:
        """Check that ``card_id`` can pay ``amount`` (no change yet)."""
        balance = self._card(card_id).get("balance")
        if not isinstance(balance, int | float) or isinstance(balance, bool):
            raise ToolError(f"credit card {card_id!r} has no usable balance")
        if balance < amount:
            raise ToolError(
                f"insufficient funds on card {card_id!r}: balance {balance}, cost {amount}"
            )

    def _booking(self, booking_id: str) -> dict[str, JsonValue]:
        booking = self.state.booking_record.get(booking_id)
        if booking is None:
            raise ToolError(f"booking {booking_id[:40]!r} not found")
        return booking

    # ----- account ---------------------------------------------------------------------
    @tool(
        ToolKind.WRITE,
        _AUTH,
        returns={
            "expires_in": Sem.DURATION,
            "access_token": Sem.CREDENTIAL,
            "token_type": Sem.OPTION,
            "scope": Sem.OPTION,
        },
    )
    def authenticate_travel(
        self,
        client_id: Annotated[str, Sem.CREDENTIAL],
        client_secret: Annotated[str, Sem.CREDENTIAL],
        refresh_token: Annotated[str, Sem.CREDENTIAL],
        grant_type: Annotated[Literal["read_write", "read", "write"], Sem.OPTION],
        user_first_name: Annotated[str, Sem.PERSON_NAME],
        user_last_name: Annotated[str, Sem.PERSON_NAME],
    ) -> dict[str, JsonValue]:
        """Log in to the travel service and obtain an access token for later requests.

        Args:
            client_id: The client id of the calling application.
            client_secret: The client secret of the calling application.
            refresh_token: A refresh token from an earlier authentication.
            grant_type: The access requested: read_write, read or write.
            user_first_name: First name of the user logging in.
            user_last_name: Last name of the user logging in.
        """
        for label, value in (("client_id", client_id), ("client_secret", client_secret)):
            if not value.strip():
                raise ToolError(f"{label} must not be empty")
        names = (("user_first_name", user_first_name), ("user_last_name", user_last_name))
        for label, value in names:
            if not value.strip() or len(value) > 100:
                raise ToolError(f"{label} must be a non-empty name of at most 100 characters")
        state = self.state
        state.access_token = str(self.rng.randint(100000, 999999))
        state.token_type = "Bearer"
        state.token_expires_in = _TOKEN_LIFETIME
        state.token_scope = grant_type
        state.user_first_name = user_first_name
        state.user_last_name = user_last_name
        return {
            "expires_in": _TOKEN_LIFETIME,
            "access_token": state.access_token,
            "token_type": "Bearer",
            "scope": grant_type,
        }

    @tool(ToolKind.READ, _CACHED, returns={"status": Sem.FLAG})
    def travel_get_login_status(self) -> dict[str, JsonValue]:
        """Tell whether a user is currently logged in to the travel service."""
        expires = self.state.token_expires_in
        logged_in = self.state.access_token is not None and (expires is None or expires > 0)
        return {"status": logged_in}

    @tool(ToolKind.READ, _CACHED, returns={"budget_fiscal_year": Sem.YEAR})
    def get_budget_fiscal_year(
        self,
        lastModifiedAfter: Annotated[str | None, Sem.DATETIME] = None,
        includeRemoved: Annotated[str | None, Sem.FLAG] = None,
    ) -> dict[str, JsonValue]:
        """Get the current budget fiscal year.

        Args:
            lastModifiedAfter: Only report a fiscal year changed after this UTC time
                (YYYY-MM-DDTHH:MM:SS). Optional.
            includeRemoved: Whether removed fiscal years count too ("true"/"false"). Optional.
        """
        return {"budget_fiscal_year": self.state.today[:4]}

    @tool(ToolKind.WRITE, _PAYMENT, returns={"card_id": Sem.CARD_ID})
    def register_credit_card(
        self,
        access_token: AccessToken,
        card_number: Annotated[str, Sem.CARD_NUMBER],
        expiration_date: Annotated[str, Sem.CARD_EXPIRY],
        cardholder_name: Annotated[str, Sem.PERSON_NAME],
        card_verification_number: Annotated[int, Sem.CREDENTIAL],
    ) -> dict[str, JsonValue]:
        """Register a credit card with the user's travel account.

        Args:
            access_token: The access token from authentication.
            card_number: The credit card number.
            expiration_date: The card's expiry date, formatted MM/YYYY.
            cardholder_name: The name printed on the card.
            card_verification_number: The card's verification code (CVV).
        """
        self._check_token(access_token)
        digits = card_number.replace(" ", "").replace("-", "")
        if not digits.isdigit() or not 8 <= len(digits) <= 19:
            raise ToolError("card_number must be 8 to 19 digits (spaces and dashes allowed)")
        if not _EXPIRY.match(expiration_date):
            raise ToolError("expiration_date must be formatted MM/YYYY, for example 08/2027")
        if not cardholder_name.strip() or len(cardholder_name) > 200:
            raise ToolError("cardholder_name must be a non-empty name")
        if not 0 <= card_verification_number <= 9999:
            raise ToolError("card_verification_number must be a 3 or 4 digit number")
        for card_id, card in self.state.credit_card_list.items():
            if card.get("card_number") == card_number:
                raise ToolError(f"this card is already registered as {card_id!r}")
        card_id = str(self.rng.randint(10**11, 10**12 - 1))
        balance = self.rng.randint(10000, 99999)
        self.state.credit_card_list[card_id] = {
            "card_number": card_number,
            "expiration_date": expiration_date,
            "cardholder_name": cardholder_name,
            "card_verification_number": card_verification_number,
            "balance": balance,
        }
        return {"card_id": card_id}

    @tool(ToolKind.READ, _AUTH_READ, returns=_records("credit_card_list", _CARD_FIELDS))
    def get_all_credit_cards(self) -> dict[str, JsonValue]:
        """List every credit card registered with the account, keyed by card id."""
        cards: dict[str, JsonValue] = {
            key: dict(card) for key, card in self.state.credit_card_list.items()
        }
        return {"credit_card_list": cards}

    @tool(ToolKind.READ, _AUTH_READ, returns={"card_balance": Sem.MONEY_USD})
    def get_credit_card_balance(
        self, access_token: AccessToken, card_id: CardId
    ) -> dict[str, JsonValue]:
        """Get the remaining balance of a registered credit card.

        Args:
            access_token: The access token from authentication.
            card_id: The id of the credit card.
        """
        self._check_token(access_token)
        card = self._card(card_id)
        if "balance" not in card:
            raise ToolError(f"credit card {card_id!r} has no balance on record")
        return {"card_balance": card["balance"]}

    @tool(ToolKind.WRITE, _AUTH_READ, returns={"budget_limit": Sem.MONEY_USD})
    def set_budget_limit(
        self, access_token: AccessToken, budget_limit: Annotated[float, Sem.MONEY_USD]
    ) -> dict[str, JsonValue]:
        """Set the user's travel budget limit in USD.

        Args:
            access_token: The access token from authentication.
            budget_limit: The budget limit in USD (not negative).
        """
        self._check_token(access_token)
        if not math.isfinite(budget_limit) or budget_limit < 0:
            raise ToolError("budget_limit must be a finite amount of at least 0")
        self.state.budget_limit = float(budget_limit)
        return {"budget_limit": float(budget_limit)}

    # ----- look-ups ----------------------------------------------------------------------
    @tool(ToolKind.READ, _CACHED, returns={"*": Sem.AIRPORT})
    def list_all_airports(self) -> list[JsonValue]:
        """List the codes of every airport the service flies to."""
        return list(_AIRPORTS)

    @tool(ToolKind.READ, _CACHED, returns={"nearest_airport": Sem.AIRPORT})
    def get_nearest_airport_by_city(
        self,
        location: Annotated[
            Literal[
                "Rivermist",
                "Stonebrook",
                "Maplecrest",
                "Silverpine",
                "Shadowridge",
                "London",
                "Paris",
                "Sunset Valley",
                "Oakendale",
                "Willowbend",
                "Crescent Hollow",
                "Autumnville",
                "Pinehaven",
                "Greenfield",
                "San Francisco",
                "Los Angeles",
                "New York",
                "Chicago",
                "Boston",
                "Beijing",
                "Hong Kong",
                "Rome",
                "Tokyo",
            ],
            Sem.CITY,
        ],
    ) -> dict[str, JsonValue]:
        """Find the code of the airport nearest to a city.

        Args:
            location: The name of the city.
        """
        return {"nearest_airport": _NEAREST_AIRPORT[location]}

    @tool(ToolKind.READ, _QUOTE, returns={"travel_cost_list.*": Sem.MONEY_USD})
    def get_flight_cost(
        self,
        travel_from: Airport,
        travel_to: Airport,
        travel_date: TravelDate,
        travel_class: Annotated[TravelClass, Sem.OPTION],
    ) -> dict[str, JsonValue]:
        """Quote the ticket price in USD for a flight on a date in a travel class.

        Args:
            travel_from: The 3-letter code of the departure airport.
            travel_to: The 3-letter code of the arrival airport.
            travel_date: The date of travel, YYYY-MM-DD.
            travel_class: The travel class: economy, business or first.
        """
        cost = flight_cost(travel_from, travel_to, travel_date, travel_class)
        if self.state.long_context:  # upstream quotes its whole table, scaled like this fare
            factor = cost / _BASE_FARES[(travel_from, travel_to)]
            return {
                "travel_cost_list": [float(fare * factor) for fare in long_context.FLIGHT_COST_LIST]
            }
        return {"travel_cost_list": [cost]}

    @tool(ToolKind.READ, _CACHED, returns={"exchanged_value": Sem.MONEY})
    def compute_exchange_rate(
        self,
        base_currency: Annotated[Currency, Sem.CURRENCY],
        target_currency: Annotated[Currency, Sem.CURRENCY],
        value: Annotated[float, Sem.MONEY],
    ) -> dict[str, JsonValue]:
        """Convert an amount of money from one currency to another.

        Args:
            base_currency: The currency the amount is in.
            target_currency: The currency to convert to.
            value: The amount to convert.
        """
        if not math.isfinite(value):
            raise ToolError("value must be a finite number")
        converted = value / _PER_USD[base_currency] * _PER_USD[target_currency]
        return {"exchanged_value": round(converted, 2)}

    # ----- bookings ----------------------------------------------------------------------
    @tool(
        ToolKind.WRITE,
        _BOOKING,
        returns={
            "booking_id": Sem.BOOKING_ID,
            "transaction_id": Sem.TRANSACTION_ID,
            "booking_status": Sem.FLAG,
            **_records("booking_history", _BOOKING_FIELDS),
        },
    )
    def book_flight(
        self,
        access_token: AccessToken,
        card_id: CardId,
        travel_date: TravelDate,
        travel_from: Airport,
        travel_to: Airport,
        travel_class: Annotated[TravelClass, Sem.OPTION],
    ) -> dict[str, JsonValue]:
        """Book a flight and pay for it with a registered credit card.

        Args:
            access_token: The access token from authentication.
            card_id: The id of the credit card to pay with.
            travel_date: The date of travel, YYYY-MM-DD.
            travel_from: The 3-letter code of the departure airport.
            travel_to: The 3-letter code of the arrival airport.
            travel_class: The travel class: economy, business or first.
        """
        self._check_token(access_token)
        _check_airports(_AIRPORTS, travel_from, travel_to)
        cost = flight_cost(travel_from, travel_to, travel_date, travel_class)
        self._charge(card_id, cost)
        booking_id = str(self.rng.randint(10**6, 10**7 - 1))
        transaction_id = str(self.rng.randint(10**7, 10**8 - 1))
        card = self.state.credit_card_list[card_id]
        card["balance"] = float(card["balance"]) - cost  # type: ignore[arg-type]
        self.state.booking_record[booking_id] = {
            "card_id": card_id,
            "travel_date": travel_date,
            "travel_from": travel_from,
            "travel_to": travel_to,
            "travel_class": travel_class,
            "travel_cost": cost,
            "transaction_id": transaction_id,
        }
        history: dict[str, JsonValue] = {}
        if self.state.long_context:  # upstream returns the whole record, this booking included
            history = {key: dict(entry) for key, entry in self.state.booking_record.items()}
        return {
            "booking_id": booking_id,
            "transaction_id": transaction_id,
            "booking_status": True,
            "booking_history": history,
        }

    @tool(ToolKind.READ, _AUTH_READ, returns=_records("booking_history", _BOOKING_FIELDS))
    def get_booking_history(self, access_token: AccessToken) -> dict[str, JsonValue]:
        """List every booking of the user, keyed by booking id.

        Args:
            access_token: The access token from authentication.
        """
        self._check_token(access_token)
        history: dict[str, JsonValue] = {
            key: dict(entry) for key, entry in self.state.booking_record.items()
        }
        return {"booking_history": history}

    @tool(
        ToolKind.READ,
        _AUTH_READ,
        returns={
            "invoice.booking_id": Sem.BOOKING_ID,
            "invoice.travel_date": Sem.DATE,
            "invoice.travel_from": Sem.AIRPORT,
            "invoice.travel_to": Sem.AIRPORT,
            "invoice.travel_class": Sem.OPTION,
            "invoice.travel_cost": Sem.MONEY_USD,
            "invoice.transaction_id": Sem.TRANSACTION_ID,
        },
    )
    def retrieve_invoice(
        self,
        access_token: AccessToken,
        booking_id: Annotated[str | None, Sem.BOOKING_ID] = None,
        insurance_id: Annotated[str | None, Sem.INSURANCE_ID] = None,
    ) -> dict[str, JsonValue]:
        """Get the invoice of a booking.

        Args:
            access_token: The access token from authentication.
            booking_id: The id of the booking.
            insurance_id: The id of an insurance bought for the booking (optional; the invoice
                covers the flight).
        """
        self._check_token(access_token)
        if booking_id is None:
            raise ToolError("booking_id is required to find an invoice")
        booking = self._booking(booking_id)
        invoice: dict[str, JsonValue] = {"booking_id": booking_id}
        for key in (
            "travel_date",
            "travel_from",
            "travel_to",
            "travel_class",
            "travel_cost",
            "transaction_id",
        ):
            invoice[key] = booking.get(key)
        return {"invoice": invoice}

    @tool(ToolKind.WRITE, _PAYMENT, returns={"cancel_status": Sem.FLAG})
    def cancel_booking(
        self, access_token: AccessToken, booking_id: BookingId
    ) -> dict[str, JsonValue]:
        """Cancel a booking; the fare goes back to the card that paid for it.

        Args:
            access_token: The access token from authentication.
            booking_id: The id of the booking to cancel.
        """
        self._check_token(access_token)
        booking = self._booking(booking_id)
        card = self.state.credit_card_list.get(str(booking.get("card_id")))
        cost = booking.get("travel_cost")
        refundable = isinstance(cost, int | float) and not isinstance(cost, bool)
        if card is not None and refundable and isinstance(card.get("balance"), int | float):
            card["balance"] = float(card["balance"]) + float(cost)  # type: ignore[arg-type]
        del self.state.booking_record[booking_id]
        return {"cancel_status": True}

    @tool(
        ToolKind.WRITE,
        _PAYMENT,
        returns={"insurance_id": Sem.INSURANCE_ID, "insurance_status": Sem.FLAG},
    )
    def purchase_insurance(
        self,
        access_token: AccessToken,
        insurance_type: Annotated[str, Sem.OPTION],
        insurance_cost: Annotated[float, Sem.MONEY_USD],
        booking_id: BookingId,
        card_id: CardId,
    ) -> dict[str, JsonValue]:
        """Buy travel insurance for a booking, paid with a registered credit card.

        Args:
            access_token: The access token from authentication.
            insurance_type: The kind of insurance, for example travel or comprehensive.
            insurance_cost: The price of the insurance in USD.
            booking_id: The id of the booking to insure.
            card_id: The id of the credit card to pay with.
        """
        self._check_token(access_token)
        if not insurance_type.strip() or len(insurance_type) > 200:
            raise ToolError("insurance_type must be a short non-empty description")
        if not math.isfinite(insurance_cost) or insurance_cost < 0:
            raise ToolError("insurance_cost must be a finite amount of at least 0")
        self._booking(booking_id)
        self._charge(card_id, insurance_cost)
        insurance_id = str(self.rng.randint(10**8, 10**9 - 1))
        card = self.state.credit_card_list[card_id]
        card["balance"] = float(card["balance"]) - insurance_cost  # type: ignore[arg-type]
        return {"insurance_id": insurance_id, "insurance_status": True}

    @tool(ToolKind.WRITE, _SUPPORT, returns={"customer_support_message": Sem.MESSAGE})
    def contact_customer_support(
        self, booking_id: BookingId, message: Annotated[str, Sem.TEXT]
    ) -> dict[str, JsonValue]:
        """Send a message about a booking to customer support.

        Args:
            booking_id: The id of the booking the message is about.
            message: The message for customer support.
        """
        self._booking(booking_id)
        if not message.strip():
            raise ToolError("message must not be empty")
        if len(message) > _MAX_TEXT:
            raise ToolError(f"message is too long (at most {_MAX_TEXT} characters)")
        self.state.support_requests.append({"booking_id": booking_id, "message": message})
        return {"customer_support_message": _SUPPORT_REPLY}

    @tool(
        ToolKind.READ,
        _AUTH_READ,
        returns={"verification_status": Sem.FLAG, "verification_failure": Sem.MESSAGE},
    )
    def verify_traveler_information(
        self,
        first_name: Annotated[str, Sem.PERSON_NAME],
        last_name: Annotated[str, Sem.PERSON_NAME],
        date_of_birth: Annotated[str, Sem.DATE],
        passport_number: Annotated[str, Sem.PASSPORT_NUMBER],
    ) -> dict[str, JsonValue]:
        """Check that a traveller may fly: the account holder, an adult, with a US passport.

        Args:
            first_name: The traveller's first name.
            last_name: The traveller's last name.
            date_of_birth: The traveller's date of birth, YYYY-MM-DD.
            passport_number: The traveller's passport number.
        """
        born = _parse_date(date_of_birth, "date_of_birth")
        today = date.fromisoformat(self.state.today)
        state = self.state
        if (first_name, last_name) != (state.user_first_name, state.user_last_name):
            return _failed(
                f"Cannot book flight information for another user. Expected "
                f"{state.user_first_name} {state.user_last_name}, "
                f"got {first_name[:80]} {last_name[:80]}"
            )
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        if age < 18:
            return _failed("Traveler must be at least 18 years old.")
        if not passport_number.startswith("US"):
            return _failed("Passport must be issued by the United States.")
        return {"verification_status": True}


def _failed(reason: str) -> dict[str, Any]:
    return {"verification_status": False, "verification_failure": reason}
