"""Trading (BFCL ``TradingBot``): orders, money, watch list, quotes, seeded timestamps."""

from __future__ import annotations

from typing import Any

import pytest
from envcheck import refusal

from pipeline.envs import ToolError
from pipeline.envs.trading import Trading


def env(**state: Any) -> Trading:
    built = Trading.from_state({"authenticated": True, **state})
    assert isinstance(built, Trading)
    return built


def test_defaults_match_upstream() -> None:
    state = Trading.from_state().bfcl_state()
    assert set(state) == {
        "orders", "account_info", "authenticated", "market_status", "order_counter",
        "stocks", "watch_list", "transaction_history", "long_context",
    }  # fmt: skip
    assert state["orders"]["12446"] == {
        "id": 12446, "order_type": "Sell", "symbol": "GOOG", "price": 2840.56, "amount": 5,
        "status": "Pending",
    }  # fmt: skip
    assert state["stocks"]["NVDA"] == {
        "price": 220.34, "percent_change": 0.34, "volume": 1.234, "MA(5)": 220.45, "MA(20)": 220.67,
    }  # fmt: skip
    assert state["watch_list"] == ["NVDA"] and state["order_counter"] == 12446
    assert state["authenticated"] is False and state["long_context"] is False


def test_upstream_config_with_untidy_orders_round_trips() -> None:
    config = {
        "orders": {
            "12345": {"symbol": "AAPL", "price": 210.65, "num_shares": 10, "status": "Completed"},
            "order_type": "Buy",
        },
        "transaction_history": [
            {
                "symbol": "TSLA",
                "price": 667.92,
                "num_shares": 5,
                "status": "Completed",
                "timestamp": "2024-10-27 14:10:53",
            },
        ],  # fmt: skip
        "authenticated": True,
    }
    trading = Trading.from_bfcl_config(config)
    assert trading.bfcl_state()["orders"] == config["orders"]
    assert trading.bfcl_state()["transaction_history"] == config["transaction_history"]
    assert trading.invoke("get_order_details", {"order_id": 12345})["num_shares"] == 10  # type: ignore[index,call-overload]
    assert trading.invoke("get_order_history", {}) == {"order_history": [12345]}
    assert Trading.from_state(trading.snapshot()).snapshot() == trading.snapshot()


def test_place_order_reports_pending_stores_open_and_counts_ids() -> None:
    trading = env(orders={}, order_counter=100)
    result = trading.invoke(
        "place_order", {"order_type": "Buy", "symbol": "AAPL", "price": 200, "amount": 3}
    )
    assert result == {
        "order_id": 100, "order_type": "Buy", "status": "Pending", "price": 200.0, "amount": 3,
    }  # fmt: skip
    assert trading.invoke("get_order_details", {"order_id": 100}) == {
        "id": 100, "order_type": "Buy", "symbol": "AAPL", "price": 200.0, "amount": 3,
        "status": "Open",
    }  # fmt: skip
    assert trading.state.order_counter == 101
    assert trading.state.account_info.balance == 10000.0  # a buy order does not reserve cash
    assert trading.invoke("cancel_order", {"order_id": 100}) == {
        "order_id": 100, "status": "Cancelled",
    }  # fmt: skip
    with pytest.raises(ToolError, match="cancelled and cannot be cancelled"):
        trading.invoke("cancel_order", {"order_id": 100})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"order_type": "Buy", "symbol": "GOOG", "price": 2840.34, "amount": 4},
            "insufficient funds",
        ),
        (
            {"order_type": "Buy", "symbol": "ZZZZ", "price": 1.0, "amount": 1},
            "unknown stock symbol",
        ),
        (
            {"order_type": "Sell", "symbol": "AAPL", "price": -5.0, "amount": 1},
            "price must be a positive number",
        ),
        ({"order_type": "Sell", "symbol": "AAPL", "price": 5.0, "amount": 0}, "amount must be"),
        ({"order_type": "Hold", "symbol": "AAPL", "price": 5.0, "amount": 1}, "order_type"),
    ],
)
def test_bad_orders_raise_and_change_nothing(arguments: dict[str, Any], message: str) -> None:
    refusal(env(), "place_order", arguments, message)


def test_account_tools_need_login() -> None:
    trading = Trading.from_state()
    for name, arguments in [
        ("get_account_info", {}),
        ("fund_account", {"amount": 10.0}),
        ("place_order", {"order_type": "Buy", "symbol": "AAPL", "price": 1.0, "amount": 1}),
        ("trading_logout", {}),
    ]:
        with pytest.raises(ToolError, match="log"):
            trading.invoke(name, arguments)
    assert trading.invoke("trading_get_login_status", {}) == {"status": False}
    assert trading.invoke("trading_login", {"username": "u", "password": "p"}) == {
        "status": "Logged in successfully"
    }
    assert trading.invoke("get_account_info", {}) == {
        "account_id": 12345, "balance": 10000.0, "binding_card": 1974202140965533,
    }  # fmt: skip
    assert trading.invoke("trading_logout", {}) == {"status": "Logged out successfully"}
    assert trading.state.authenticated is False


def test_money_moves_with_seeded_timestamps() -> None:
    trading = env()
    assert trading.invoke("fund_account", {"amount": 2203.4}) == {
        "status": "Account funded successfully", "new_balance": 12203.4,
    }  # fmt: skip
    assert trading.invoke("withdraw_funds", {"amount": 203.4}) == {
        "status": "Withdrawal successful", "new_balance": 12000.0,
    }  # fmt: skip
    # seed 1053520 draws offsets of 69015 s and 6994 s from 2024-09-01 10:30:00, as upstream
    assert trading.bfcl_state()["transaction_history"] == [
        {"type": "deposit", "amount": 2203.4, "timestamp": "2024-09-02 05:40:15"},
        {"type": "withdrawal", "amount": 203.4, "timestamp": "2024-09-01 12:26:34"},
    ]
    history = trading.invoke("get_transaction_history", {"start_date": "2024-09-02"})
    assert history == {
        "transaction_history": [
            {"type": "deposit", "amount": 2203.4, "timestamp": "2024-09-02 05:40:15"}
        ]
    }
    refusal(trading, "withdraw_funds", {"amount": 1e6}, "insufficient funds")
    refusal(trading, "fund_account", {"amount": 0}, "positive")
    refusal(trading, "get_transaction_history", {"end_date": "yesterday"}, "YYYY-MM-DD")


def test_snapshot_mid_way_continues_the_same_timestamps() -> None:
    straight = env(random_seed=99)
    straight.invoke("fund_account", {"amount": 1.0})
    straight.invoke("fund_account", {"amount": 2.0})
    first = env(random_seed=99)
    first.invoke("fund_account", {"amount": 1.0})
    resumed = Trading.from_state(first.snapshot())
    resumed.invoke("fund_account", {"amount": 2.0})
    assert resumed.snapshot() == straight.snapshot()
    other = env(random_seed=100)
    other.invoke("fund_account", {"amount": 1.0})
    assert other.state.transaction_history != first.state.transaction_history


def test_clock_comes_from_state_and_stays_internal() -> None:
    trading = env(now="2024-12-24 16:05:00")
    assert trading.invoke("get_current_time", {}) == {"current_time": "04:05 PM"}
    assert "now" not in trading.bfcl_state() and "random_seed" not in trading.bfcl_state()
    with pytest.raises(ValueError, match="now must look like"):
        Trading.from_state({"now": "tomorrow"})


def test_watchlist_and_market_data() -> None:
    trading = env(authenticated=False, watch_list=["NVDA", "ZETA"])
    assert trading.invoke("add_to_watchlist", {"stock": "AAPL"}) == {
        "watchlist": ["NVDA", "ZETA", "AAPL"]
    }
    assert trading.invoke("add_to_watchlist", {"stock": "AAPL"}) == {
        "watchlist": ["NVDA", "ZETA", "AAPL"]
    }
    assert trading.invoke("remove_stock_from_watchlist", {"symbol": "ZETA"}) == {
        "status": "Stock ZETA removed from watchlist successfully."
    }
    with pytest.raises(ToolError, match="not on the watch list"):
        trading.invoke("remove_stock_from_watchlist", {"symbol": "ZETA"})
    with pytest.raises(ToolError, match="unknown stock symbol"):
        trading.invoke("add_to_watchlist", {"stock": "X" * 10_000})
    assert trading.invoke("get_available_stocks", {"sector": "technology"}) == {
        "stock_list": ["AAPL", "GOOG", "MSFT", "NVDA"]
    }
    with pytest.raises(ToolError, match="unknown sector"):
        trading.invoke("get_available_stocks", {"sector": "Crypto"})
    assert trading.invoke("get_symbol_by_name", {"name": "Quasar Ltd."}) == {"symbol": "QUAS"}
    with pytest.raises(ToolError, match="no listed company"):
        trading.invoke("get_symbol_by_name", {"name": "Initech"})
    filtered = trading.invoke(
        "filter_stocks_by_price",
        {"stocks": ["AAPL", "GOOG", "NEPT"], "min_price": 80.0, "max_price": 300.0},
    )
    assert filtered == {"filtered_stocks": ["AAPL", "NEPT"]}
    assert trading.invoke(
        "notify_price_change", {"stocks": ["NVDA", "TSLA"], "threshold": 0.3}
    ) == {"notification": "Stocks with significant price changes: NVDA"}
    assert trading.invoke("get_stock_info", {"symbol": "QUAS"}) == {
        "price": 725.89, "percent_change": -0.03, "volume": 1.789, "MA(5)": 726.45, "MA(20)": 728.0,
    }  # fmt: skip


def test_tool_set() -> None:
    specs = Trading.tool_specs()
    assert len(specs) == 20
    assert specs["place_order"].param_names == ("order_type", "symbol", "price", "amount")
    assert specs["get_transaction_history"].parameters["required"] == []
