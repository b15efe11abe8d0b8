"""Fill reconciliation against the fake Alpaca: a fill at a known distance from the model fill (the simulated
broker's price for that open) is journaled and exported with that many basis points, signed worse-is-positive."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from finrl.agents.bundle import ModelBundle
from finrl.meta.env.execution import Action, fill_order
from finrl.meta.env.market_arrays import bars_liquidity
from finrl.trade.alpaca_broker import AlpacaBroker
from finrl.trade.journal import Journal
from unit_tests.fakes.alpaca_server import FakeTradingAPI
from unit_tests.trade.test_alpaca_broker import (
    D0,
    D1,
    D2,
    TRADER_FEATURES,
    _forget_secrets,
    at_close,
    bar,
    broker,
    make_broker,
    make_trader,
    opening,
    scripted,
    server,
    sleeps,
    tiny_bundle,
    trading,
)

pytestmark = pytest.mark.integration
__all__ = ["_forget_secrets", "broker", "make_broker", "server", "sleeps", "tiny_bundle", "trading"]


def model_price(bundle: ModelBundle, qty: float, fill_day: pd.Timestamp) -> float:
    """The simulated broker's fill: the open with the bundle's costs, impact from the decision day's liquidity."""
    volatility, adv = bars_liquidity(TRADER_FEATURES)
    row = int(TRADER_FEATURES.index.get_indexer(pd.DatetimeIndex([fill_day]))[0])
    open_ = bar(fill_day.date(), "open")
    return fill_order(qty, open_, bundle.env_config.execution, volatility[row - 1], adv[row - 1]).price


def test_a_fill_away_from_the_model_price_gives_its_slippage_in_bps(
    tiny_bundle: ModelBundle, broker: AlpacaBroker, trading: FakeTradingAPI, tmp_path: Path
) -> None:
    trader = make_trader(tiny_bundle, broker, tmp_path, scripted(Action.BUY, Action.SELL, Action.HOLD))
    at_close(trading, D0)
    bought = trader.run_cycle(D0).order_qty
    buy_model = model_price(tiny_bundle, bought, pd.Timestamp(D1))
    trading.set_now(opening(D1))
    trading.fill(buy_model * (1 + 12e-4))  # paid 12 bps more than the backtest would have
    at_close(trading, D1)
    trader.run_cycle(D1)
    sell_model = model_price(tiny_bundle, -bought, pd.Timestamp(D2))
    trading.set_now(opening(D2))
    trading.fill(sell_model * (1 + 3e-4))  # sold 3 bps higher: better than the model
    at_close(trading, D2)
    trader.run_cycle(D2)

    journal = Journal(tmp_path / "journal.jsonl").entries()
    buy, sell = (e for e in journal if e["event"] == "fill_reconciled")
    assert (buy["side"], buy["qty"], buy["fill_session"]) == ("buy", bought, D1.isoformat())
    assert buy["model_price"] == pytest.approx(buy_model, rel=1e-12) and buy["reference_price"] == bar(D1, "open")
    assert buy["broker_price"] == pytest.approx(buy_model * (1 + 12e-4), rel=1e-9)
    assert buy["slippage_bps"] == pytest.approx(12.0, abs=1e-4)
    assert (sell["side"], sell["fill_session"]) == ("sell", D2.isoformat())
    assert sell["slippage_bps"] == pytest.approx(-3.0, abs=1e-4)
    registry = trader.metrics.registry
    assert registry.get_sample_value("finrl_last_fill_slippage_bps", {"side": "buy"}) == pytest.approx(12.0, abs=1e-4)
    assert registry.get_sample_value("finrl_fill_slippage_bps_bucket", {"side": "buy", "le": "10.0"}) == 0
    assert registry.get_sample_value("finrl_fill_slippage_bps_bucket", {"side": "buy", "le": "20.0"}) == 1
    assert registry.get_sample_value("finrl_fill_slippage_bps_bucket", {"side": "sell", "le": "-2.0"}) == 1
    assert trader.state.unreconciled == []


def test_a_partial_fill_that_expired_is_reconciled_for_what_filled(
    tiny_bundle: ModelBundle, broker: AlpacaBroker, trading: FakeTradingAPI, tmp_path: Path
) -> None:
    trader = make_trader(tiny_bundle, broker, tmp_path, scripted(Action.BUY, Action.HOLD))
    at_close(trading, D0)
    result = trader.run_cycle(D0)
    assert result.client_order_id is not None and result.order_qty > 3
    model = model_price(tiny_bundle, 3, pd.Timestamp(D1))
    trading.set_now(opening(D1))
    trading.partial_fill(result.client_order_id, 3, model * (1 - 5e-4))  # 3 shares, 5 bps cheaper than the model
    trading.expire()
    at_close(trading, D1)
    trader.run_cycle(D1)
    journal = Journal(tmp_path / "journal.jsonl").entries()
    (final,) = (e for e in journal if e["event"] == "order_final")
    (entry,) = (e for e in journal if e["event"] == "fill_reconciled")
    assert final["status"] == "expired" and (entry["qty"], entry["side"]) == (3.0, "buy")
    assert entry["model_price"] == pytest.approx(model, rel=1e-12)
    assert entry["slippage_bps"] == pytest.approx(-5.0, abs=1e-4)  # better than the model: negative
