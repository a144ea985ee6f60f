"""Trading: a brokerage account, orders, a watch list and stock quotes (BFCL ``TradingBot``)."""

from __future__ import annotations

from pipeline.envs.base import EnvState, Environment


class TradingState(EnvState):
    """TODO: the state of the trading environment."""


class Trading(Environment[TradingState]):
    name = "trading"
    state_model = TradingState
    bfcl_class = "TradingBot"
