"""Trading: a brokerage account, orders, a watch list and stock quotes (BFCL ``TradingBot``).

The state mirrors upstream's public attributes. Upstream data is untidy in two places and we
keep it as it is so that imported BFCL states round-trip: ``orders`` may hold older records
without ``id``/``order_type`` (``symbol, price, num_shares, status``) and even a stray string
entry (``"order_type": "Buy"``); ``transaction_history`` mixes cash movements with trade records.

Behaviour observed in upstream's reference states and reproduced here: a new order is reported
as ``Pending`` but stored as ``Open``; placing a buy order checks but does not reserve the cash;
order ids come from ``order_counter``; the clock is fixed (``now``), and each deposit or
withdrawal draws its timestamp uniformly (``randint`` over epoch seconds) from the day after
``now``. Upstream converts with one time zone both ways, so the drawn offset is what matters;
we convert in UTC, which gives the same wall-clock stamp with no DST surprises.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, JsonValue, field_validator

from pipeline.envs import long_context
from pipeline.envs.base import Environment, EnvState, SeededState, ToolError, ToolKind, tool
from pipeline.semantics import Sem

# Latency (seconds), modelled on a retail broker's REST API: the clock is local (0.05); quotes,
# sector lists and the watch list are cached reads (0.3-0.4); account and order look-ups need an
# authenticated database read (0.6); login checks credentials (1.0); an order goes through the
# order router and risk checks (2.0, cancelling 1.5); moving money involves the bank (3.0).
_CLOCK = 0.05
_QUOTE = 0.35
_WATCHLIST_READ = 0.3
_WATCHLIST_WRITE = 0.5
_ACCOUNT_READ = 0.6
_LOGIN = 1.0
_ORDER = 2.0
_CANCEL = 1.5
_TRANSFER = 3.0

_TIMESTAMP = "%Y-%m-%d %H:%M:%S"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_AMOUNT = 1e12
_MAX_SYMBOL = 16
_MAX_SYMBOLS = 1000  # symbols one call may name: a result lists them, so it stays bounded

OrderType = Literal["Buy", "Sell"]
OrderStatus = Literal["Open", "Pending", "Completed", "Cancelled"]

Symbol = Annotated[str, Sem.STOCK_SYMBOL]
OrderId = Annotated[int, Sem.ORDER_ID]
Usd = Annotated[float, Sem.MONEY_USD]

#: result types of an order record, in both the current and upstream's older shape
_ORDER_FIELDS: dict[str, Sem] = {
    "id": Sem.ORDER_ID,
    "order_type": Sem.OPTION,
    "symbol": Sem.STOCK_SYMBOL,
    "price": Sem.MONEY_USD,
    "amount": Sem.SHARE_COUNT,
    "num_shares": Sem.SHARE_COUNT,
    "status": Sem.STATUS,
}
#: result types of a transaction record: a cash movement or a trade
_TRANSACTION_FIELDS: dict[str, Sem] = {
    "transaction_history.*.type": Sem.OPTION,
    "transaction_history.*.amount": Sem.MONEY_USD,
    "transaction_history.*.timestamp": Sem.DATETIME,
    "transaction_history.*.symbol": Sem.STOCK_SYMBOL,
    "transaction_history.*.price": Sem.MONEY_USD,
    "transaction_history.*.num_shares": Sem.SHARE_COUNT,
    "transaction_history.*.status": Sem.STATUS,
    "transaction_history.*.order_id": Sem.ORDER_ID,
}
#: result types of a deposit or withdrawal
_TRANSFER_RESULT: dict[str, Sem] = {"status": Sem.MESSAGE, "new_balance": Sem.MONEY_USD}


class Stock(EnvState):
    """A quote; the moving averages keep upstream's keys ``MA(5)`` and ``MA(20)``."""

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    price: float
    percent_change: float
    volume: float
    ma_5: float = Field(alias="MA(5)")
    ma_20: float = Field(alias="MA(20)")


class Order(EnvState):
    id: int
    order_type: OrderType
    symbol: str
    price: float
    amount: int
    status: OrderStatus


class LegacyOrder(EnvState):
    """An order record in upstream's older shape (seen in BFCL initial configs)."""

    symbol: str
    price: float
    num_shares: int
    status: OrderStatus


class CashTransaction(EnvState):
    type: Literal["deposit", "withdrawal"]
    amount: float
    timestamp: str


class TradeRecord(EnvState):
    """A past trade as BFCL configs list it (without an order id)."""

    symbol: str
    price: float
    num_shares: int
    status: OrderStatus
    timestamp: str


class TradeRecordWithOrder(TradeRecord):
    order_id: int


class AccountInfo(EnvState):
    account_id: int = 12345
    balance: float = 10000.0
    binding_card: int = 1974202140965533


def _default_orders() -> dict[str, Order | LegacyOrder | str]:
    return {
        "12345": Order(
            id=12345, order_type="Buy", symbol="AAPL", price=210.65, amount=10, status="Completed"
        ),
        "12446": Order(
            id=12446, order_type="Sell", symbol="GOOG", price=2840.56, amount=5, status="Pending"
        ),
    }


_DEFAULT_QUOTES: dict[str, tuple[float, float, float, float, float]] = {
    # symbol: (price, percent_change, volume, MA(5), MA(20))
    "AAPL": (227.16, 0.17, 2.552, 227.11, 227.09),
    "GOOG": (2840.34, 0.24, 1.123, 2835.67, 2842.15),
    "TSLA": (667.92, -0.12, 1.654, 671.15, 668.2),
    "MSFT": (310.23, 0.09, 3.234, 309.88, 310.11),
    "NVDA": (220.34, 0.34, 1.234, 220.45, 220.67),
    "ALPH": (1320.45, -0.08, 1.567, 1321.12, 1325.78),
    "OMEG": (457.23, 0.12, 2.345, 456.78, 458.12),
    "QUAS": (725.89, -0.03, 1.789, 726.45, 728.0),
    "NEPT": (88.34, 0.19, 0.654, 88.21, 88.67),
    "SYNX": (345.67, 0.11, 2.112, 345.34, 346.12),
}


def _default_stocks() -> dict[str, Stock]:
    return {
        symbol: Stock(price=p, percent_change=c, volume=v, ma_5=m5, ma_20=m20)
        for symbol, (p, c, v, m5, m20) in _DEFAULT_QUOTES.items()
    }


# Which listed symbols belong to which sector (a symbol not listed here has no sector).
_SECTORS: dict[str, tuple[str, ...]] = {
    "Technology": ("AAPL", "GOOG", "MSFT", "NVDA"),
    "Automobile": ("TSLA",),
    "Communication": ("ALPH",),
    "Industrials": ("OMEG",),
    "Consumer": ("QUAS",),
    "Energy": ("NEPT",),
    "Software": ("SYNX",),
    "Mining": ("ZETA",),
}

# Company names (lower case, no punctuation) -> ticker symbol.
_COMPANIES: dict[str, str] = {
    "apple": "AAPL",
    "apple inc": "AAPL",
    "google": "GOOG",
    "tesla": "TSLA",
    "tesla inc": "TSLA",
    "microsoft": "MSFT",
    "microsoft corporation": "MSFT",
    "nvidia": "NVDA",
    "nvidia corporation": "NVDA",
    "alpha tech": "ALPH",
    "omega industries": "OMEG",
    "quasar ltd": "QUAS",
    "quasar limited": "QUAS",
    "neptune systems": "NEPT",
    "synex solutions": "SYNX",
    "zeta corp": "ZETA",
    "zeta corporation": "ZETA",
}


class TradingState(SeededState):
    orders: dict[str, Order | LegacyOrder | str] = Field(default_factory=_default_orders)
    account_info: AccountInfo = Field(default_factory=AccountInfo)
    authenticated: bool = False
    market_status: Literal["Open", "Closed"] = "Closed"
    order_counter: int = 12446
    stocks: dict[str, Stock] = Field(default_factory=_default_stocks)
    watch_list: list[str] = Field(default_factory=lambda: ["NVDA"])
    transaction_history: list[CashTransaction | TradeRecordWithOrder | TradeRecord] = Field(
        default_factory=list
    )
    long_context: bool = False
    random_seed: int = 1053520
    #: the simulated clock (upstream fixes it at 2024-09-01 10:30); internal to this project
    now: str = "2024-09-01 10:30:00"

    @field_validator("now")
    @classmethod
    def _check_now(cls, value: str) -> str:
        try:
            datetime.strptime(value, _TIMESTAMP)
        except ValueError:
            raise ValueError(f"now must look like 2024-09-01 10:30:00, got {value!r}") from None
        return value


def _positive_amount(amount: float, what: str) -> float:
    if not math.isfinite(amount) or amount <= 0:
        raise ToolError(f"{what} must be a positive number, got {amount}")
    if amount > _MAX_AMOUNT:
        raise ToolError(f"{what} exceeds the maximum of {_MAX_AMOUNT:.0f}")
    return amount


def _shown(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_date(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not _DATE.match(value):
        raise ToolError(f"{name} must be formatted YYYY-MM-DD, got {_shown(value)!r}")
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise ToolError(f"{name} {value!r} is not a valid date") from None
    return value


class Trading(Environment[TradingState]):
    name = "trading"
    state_model = TradingState
    bfcl_class = "TradingBot"
    internal_fields = frozenset({"random_seed", "rng_words", "now"})

    # ----- helpers --------------------------------------------------------------------
    def _now(self) -> datetime:
        return datetime.strptime(self.state.now, _TIMESTAMP)

    def _require_login(self) -> None:
        if not self.state.authenticated:
            raise ToolError("not logged in to the trading account; log in first")

    def _stock(self, symbol: str) -> Stock:
        stock = self.state.stocks.get(symbol)
        if stock is None:
            raise ToolError(f"unknown stock symbol {_shown(symbol)!r}")
        return stock

    def _stocks(self, symbols: list[str]) -> list[Stock]:
        if len(symbols) > _MAX_SYMBOLS:
            raise ToolError(f"at most {_MAX_SYMBOLS} stock symbols at once")
        return [self._stock(symbol) for symbol in symbols]

    def _order(self, order_id: int) -> Order | LegacyOrder:
        order = self.state.orders.get(str(order_id))
        if not isinstance(order, Order | LegacyOrder):
            raise ToolError(f"no order with id {order_id}")
        return order

    def _draw_timestamp(self) -> str:
        start = int(self._now().replace(tzinfo=UTC).timestamp())
        drawn = self.rng.randint(start, start + 86_400)
        return datetime.fromtimestamp(drawn, UTC).strftime(_TIMESTAMP)

    # ----- session --------------------------------------------------------------------
    @tool(ToolKind.WRITE, _LOGIN, returns={"status": Sem.MESSAGE})
    def trading_login(
        self, username: Annotated[str, Sem.USER_NAME], password: Annotated[str, Sem.CREDENTIAL]
    ) -> dict[str, JsonValue]:
        """Log in to the trading account.

        Args:
            username: The account's user name.
            password: The account's password.
        """
        if not username.strip() or not password:
            raise ToolError("username and password must not be empty")
        if self.state.authenticated:
            return {"status": "Already logged in"}
        self.state.authenticated = True
        return {"status": "Logged in successfully"}

    @tool(ToolKind.WRITE, _LOGIN / 2, returns={"status": Sem.MESSAGE}, ends_session=True)
    def trading_logout(self) -> dict[str, JsonValue]:
        """Log out of the trading account."""
        self._require_login()
        self.state.authenticated = False
        return {"status": "Logged out successfully"}

    @tool(ToolKind.READ, _CLOCK, returns={"status": Sem.FLAG})
    def trading_get_login_status(self) -> dict[str, JsonValue]:
        """Tell whether the trading account is logged in."""
        return {"status": self.state.authenticated}

    @tool(ToolKind.READ, _CLOCK, returns={"current_time": Sem.TIME})
    def get_current_time(self) -> dict[str, JsonValue]:
        """Get the market's current time as HH:MM AM/PM."""
        return {"current_time": self._now().strftime("%I:%M %p")}

    # ----- market data ----------------------------------------------------------------
    @tool(ToolKind.READ, _QUOTE, returns={"symbol": Sem.STOCK_SYMBOL})
    def get_symbol_by_name(self, name: Annotated[str, Sem.COMPANY_NAME]) -> dict[str, JsonValue]:
        """Look up the ticker symbol of a company by its name.

        Args:
            name: The company's name, e.g. 'Apple' or 'Zeta Corp'.
        """
        key = " ".join(re.sub(r"[.,]", " ", name.lower()).split())
        symbol = _COMPANIES.get(key)
        if symbol is None:
            raise ToolError(f"no listed company is called {_shown(name)!r}")
        return {"symbol": symbol}

    @tool(
        ToolKind.READ,
        _QUOTE,
        returns={
            "price": Sem.MONEY_USD,
            "percent_change": Sem.PERCENT,
            "volume": Sem.NUMBER,
            "MA(5)": Sem.MONEY_USD,
            "MA(20)": Sem.MONEY_USD,
            "MA(5).*": Sem.MONEY_USD,
            "MA(20).*": Sem.MONEY_USD,
        },
    )
    def get_stock_info(self, symbol: Symbol) -> dict[str, JsonValue]:
        """Get a stock's price, percentage change, volume and 5/20-day moving averages.

        Args:
            symbol: The stock's ticker symbol.
        """
        info: dict[str, JsonValue] = self._stock(symbol).model_dump(mode="json")
        if self.state.long_context:  # upstream's long-context variant: long price histories
            info["MA(5)"] = list(long_context.MOVING_AVERAGE_5)
            info["MA(20)"] = list(long_context.MOVING_AVERAGE_20)
        return info

    @tool(ToolKind.READ, _QUOTE, returns={"stock_list.*": Sem.STOCK_SYMBOL})
    def get_available_stocks(self, sector: Annotated[str, Sem.SECTOR]) -> dict[str, JsonValue]:
        """List the ticker symbols traded in a market sector.

        Args:
            sector: The sector's name, e.g. 'Technology'.
        """
        wanted = sector.strip().lower()
        for known, symbols in _SECTORS.items():
            if known.lower() == wanted:
                listed: list[JsonValue] = [s for s in symbols if s in self.state.stocks]
                if self.state.long_context:  # upstream's long-context variant: many more
                    listed += long_context.AVAILABLE_STOCKS_EXTENSION
                return {"stock_list": listed}
        raise ToolError(f"unknown sector {_shown(sector)!r}; known: {', '.join(_SECTORS)}")

    @tool(ToolKind.READ, _QUOTE, returns={"filtered_stocks.*": Sem.STOCK_SYMBOL})
    def filter_stocks_by_price(
        self, stocks: Annotated[list[str], Sem.STOCK_SYMBOL], min_price: Usd, max_price: Usd
    ) -> dict[str, JsonValue]:
        """Keep the stocks whose current price lies within a range (bounds included).

        Args:
            stocks: Ticker symbols to filter.
            min_price: Lowest accepted price.
            max_price: Highest accepted price.
        """
        if min_price > max_price:
            raise ToolError(f"min_price {min_price} is above max_price {max_price}")
        quotes = self._stocks(stocks)
        kept: list[JsonValue] = [
            s for s, q in zip(stocks, quotes) if min_price <= q.price <= max_price
        ]
        return {"filtered_stocks": kept}

    @tool(ToolKind.READ, _QUOTE, returns={"notification": Sem.MESSAGE})
    def notify_price_change(
        self,
        stocks: Annotated[list[str], Sem.STOCK_SYMBOL],
        threshold: Annotated[float, Sem.PERCENT],
    ) -> dict[str, JsonValue]:
        """Report which stocks moved by at least a given percentage.

        Args:
            stocks: Ticker symbols to check.
            threshold: Absolute percentage change at or above which a stock is reported.
        """
        if not math.isfinite(threshold) or threshold < 0:
            raise ToolError("threshold must be a non-negative number")
        quotes = self._stocks(stocks)
        moved = [s for s, q in zip(stocks, quotes) if abs(q.percent_change) >= threshold]
        if not moved:
            return {"notification": "No significant price changes in the selected stocks."}
        return {"notification": f"Stocks with significant price changes: {', '.join(moved)}"}

    # ----- watch list -----------------------------------------------------------------
    @tool(
        ToolKind.READ,
        _WATCHLIST_READ,
        returns={"watchlist.*": Sem.STOCK_SYMBOL, "*": Sem.STOCK_SYMBOL},
    )
    def get_watchlist(self) -> dict[str, JsonValue] | list[JsonValue]:
        """Get the symbols on the watch list."""
        if self.state.long_context:  # upstream's long-context variant: a bare, long list
            return [*self.state.watch_list, *long_context.WATCH_LIST_EXTENSION, "..."]
        return {"watchlist": list(self.state.watch_list)}

    @tool(ToolKind.WRITE, _WATCHLIST_WRITE, returns={"watchlist.*": Sem.STOCK_SYMBOL})
    def add_to_watchlist(self, stock: Symbol) -> dict[str, JsonValue]:
        """Add a stock to the watch list (no change if it is already there).

        Args:
            stock: Ticker symbol of the stock to add.
        """
        self._stock(stock)
        if stock not in self.state.watch_list:
            self.state.watch_list.append(stock)
        return {"watchlist": list(self.state.watch_list)}

    @tool(ToolKind.WRITE, _WATCHLIST_WRITE, returns={"status": Sem.MESSAGE})
    def remove_stock_from_watchlist(self, symbol: Symbol) -> dict[str, JsonValue]:
        """Remove a stock from the watch list.

        Args:
            symbol: Ticker symbol of the stock to remove.
        """
        if symbol not in self.state.watch_list:
            raise ToolError(f"{_shown(symbol)!r} is not on the watch list")
        self.state.watch_list.remove(symbol)
        return {"status": f"Stock {symbol} removed from watchlist successfully."}

    # ----- orders ---------------------------------------------------------------------
    @tool(
        ToolKind.WRITE,
        _ORDER,
        returns={
            "order_id": Sem.ORDER_ID,
            "order_type": Sem.OPTION,
            "status": Sem.STATUS,
            "price": Sem.MONEY_USD,
            "amount": Sem.SHARE_COUNT,
        },
        describes={"price": "symbol"},  # a limit price fits one stock
    )
    def place_order(
        self,
        order_type: Annotated[OrderType, Sem.OPTION],
        symbol: Symbol,
        price: Usd,
        amount: Annotated[int, Sem.SHARE_COUNT],
    ) -> dict[str, JsonValue]:
        """Place a buy or sell order for a stock; a buy needs the balance to cover it.

        Args:
            order_type: Whether to buy or sell.
            symbol: Ticker symbol of the stock.
            price: Limit price per share.
            amount: Number of shares.
        """
        self._require_login()
        self._stock(symbol)
        _positive_amount(price, "price")
        if amount <= 0 or amount > 10**9:
            raise ToolError(f"amount must be between 1 and 1000000000 shares, got {amount}")
        cost = price * amount
        if order_type == "Buy" and cost > self.state.account_info.balance:
            raise ToolError(
                f"insufficient funds: the order costs {cost:.2f} but the balance is "
                f"{self.state.account_info.balance:.2f}"
            )
        order_id = self.state.order_counter
        self.state.orders[str(order_id)] = Order(
            id=order_id,
            order_type=order_type,
            symbol=symbol,
            price=price,
            amount=amount,
            status="Open",
        )
        self.state.order_counter += 1
        return {
            "order_id": order_id,
            "order_type": order_type,
            "status": "Pending",
            "price": price,
            "amount": amount,
        }

    @tool(ToolKind.READ, _ACCOUNT_READ, returns={**_ORDER_FIELDS, "metadata.*": Sem.TEXT})
    def get_order_details(self, order_id: OrderId) -> dict[str, JsonValue]:
        """Get an order's type, symbol, price, number of shares and status.

        Args:
            order_id: The order's id.
        """
        self._require_login()
        details: dict[str, JsonValue] = self._order(order_id).model_dump(mode="json")
        if self.state.long_context:  # upstream's long-context variant: a long company report
            symbol = str(details.get("symbol"))
            details["metadata"] = {
                key: text.replace("<SYMBOL>", symbol)
                for key, text in long_context.ORDER_METADATA_TEMPLATE.items()
            }
        return details

    @tool(ToolKind.WRITE, _CANCEL, returns={"order_id": Sem.ORDER_ID, "status": Sem.STATUS})
    def cancel_order(self, order_id: OrderId) -> dict[str, JsonValue]:
        """Cancel an order that has not completed yet.

        Args:
            order_id: The order's id.
        """
        self._require_login()
        order = self._order(order_id)
        if order.status in ("Completed", "Cancelled"):
            raise ToolError(f"order {order_id} is {order.status.lower()} and cannot be cancelled")
        order.status = "Cancelled"
        return {"order_id": order_id, "status": "Cancelled"}

    @tool(ToolKind.READ, _ACCOUNT_READ, returns={"order_history.*": Sem.ORDER_ID})
    def get_order_history(self) -> dict[str, JsonValue]:
        """List the ids of all orders on the account."""
        self._require_login()
        ids: list[JsonValue] = []
        for key, order in self.state.orders.items():
            if isinstance(order, Order):
                ids.append(order.id)
            elif isinstance(order, LegacyOrder) and key.isdigit():
                ids.append(int(key))
        return {"order_history": ids}

    # ----- account and money ----------------------------------------------------------
    @tool(
        ToolKind.READ,
        _ACCOUNT_READ,
        returns={
            "account_id": Sem.ACCOUNT_ID,
            "balance": Sem.MONEY_USD,
            "binding_card": Sem.CARD_NUMBER,
        },
    )
    def get_account_info(self) -> dict[str, JsonValue]:
        """Get the account id, cash balance and the bank card bound to the account."""
        self._require_login()
        return self.state.account_info.model_dump(mode="json")

    @tool(ToolKind.WRITE, _TRANSFER, returns=_TRANSFER_RESULT)
    def fund_account(self, amount: Usd) -> dict[str, JsonValue]:
        """Deposit money into the account from the bound card.

        Args:
            amount: Amount to deposit.
        """
        self._require_login()
        _positive_amount(amount, "amount")
        timestamp = self._draw_timestamp()
        account = self.state.account_info
        account.balance += amount
        self.state.transaction_history.append(
            CashTransaction(type="deposit", amount=amount, timestamp=timestamp)
        )
        return {"status": "Account funded successfully", "new_balance": account.balance}

    @tool(ToolKind.WRITE, _TRANSFER, returns=_TRANSFER_RESULT)
    def withdraw_funds(self, amount: Usd) -> dict[str, JsonValue]:
        """Withdraw money from the account balance to the bound card.

        Args:
            amount: Amount to withdraw.
        """
        self._require_login()
        _positive_amount(amount, "amount")
        account = self.state.account_info
        if amount > account.balance:
            raise ToolError(
                f"insufficient funds: balance is {account.balance:.2f}, asked {amount:.2f}"
            )
        timestamp = self._draw_timestamp()
        account.balance -= amount
        self.state.transaction_history.append(
            CashTransaction(type="withdrawal", amount=amount, timestamp=timestamp)
        )
        return {"status": "Withdrawal successful", "new_balance": account.balance}

    @tool(ToolKind.READ, _ACCOUNT_READ, returns=_TRANSACTION_FIELDS)
    def get_transaction_history(
        self,
        start_date: Annotated[str | None, Sem.DATE] = None,
        end_date: Annotated[str | None, Sem.DATE] = None,
    ) -> dict[str, JsonValue]:
        """List the account's transactions, optionally within a date range (both ends included).

        Args:
            start_date: Earliest date as YYYY-MM-DD; omit for no lower bound.
            end_date: Latest date as YYYY-MM-DD; omit for no upper bound.
        """
        self._require_login()
        start = _parse_date(start_date, "start_date")
        end = _parse_date(end_date, "end_date")
        if start and end and start > end:
            raise ToolError(f"start_date {start} is after end_date {end}")
        kept: list[JsonValue] = []
        for record in self.state.transaction_history:
            day = record.timestamp[:10]
            if (start is None or day >= start) and (end is None or day <= end):
                kept.append(record.model_dump(mode="json"))
        return {"transaction_history": kept}
