"""An ensemble's own book under risk limits that bind: the paper loop (members replayed from the
anchor) reproduces the ensemble's backtest with the same limits, its halts and blocked orders included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrl.backtest.engine import AGENT, run_backtest
from finrl.meta.preprocessing import DateWindow
from finrl.trade.risk import RiskLimits, rule_of
from unit_tests.agents.test_ensemble_bundle import make, market, write_bundle
from unit_tests.conftest import default_settings, env_config, risk_limits
from unit_tests.trade.test_ensemble_trading import ensemble_trader, replay

pytestmark = pytest.mark.integration
DAYS = 80


@pytest.mark.parametrize(
    "limits",
    [risk_limits(max_drawdown=0.02), risk_limits(max_order_notional=30_000), risk_limits(max_daily_loss=0.003)],
    ids=["max_drawdown", "max_order_notional", "max_daily_loss"],
)
def test_the_paper_loop_on_an_ensemble_reproduces_its_backtest_with_limits_on(
    tmp_path: Path, limits: RiskLimits
) -> None:
    models = tmp_path / "models"
    write_bundle(models, "a", 1)
    write_bundle(models, "w", 3, config=env_config(action_space="target_weight"))
    ensemble = make(models, "a", "w")
    bars, features = market()
    days = features.loc[pd.Timestamp(ensemble.anchor) :].index[:DAYS]
    window = DateWindow(days[0].date(), days[-1].date())
    rf = default_settings().risk_free_rate
    result = run_backtest(ensemble, features, window, rf, risk_limits=limits)
    backtest = result.ledgers[AGENT].frame

    trader, broker = ensemble_trader(ensemble, bars, features, tmp_path, limits)
    paper = replay(trader, broker, days)
    journal = trader.journal

    np.testing.assert_array_equal(paper["shares"].to_numpy(), backtest["shares"].to_numpy())
    np.testing.assert_allclose(paper["nav"].to_numpy(), backtest["nav"].to_numpy(), rtol=0, atol=1e-9)
    journaled = [
        (e["session"], e["event"], rule_of(e.get("reason") or e["detail"]), e.get("reason") or e["detail"])
        for e in journal.entries()
        if e["event"] in ("risk_halt", "risk_blocked") and e["session"] < days[-1].date().isoformat()
    ]
    events = [(e.date, e.event, e.rule, e.detail) for e in result.risk_events]
    assert events and events == journaled
    unconstrained = run_backtest(ensemble, features, window, rf).ledgers[AGENT].nav
    assert not np.allclose(unconstrained.to_numpy(), paper["nav"].to_numpy()), "the limits changed nothing"
