"""Paper trading an ensemble bundle with the simulated broker: each day's decision (members replayed
from the anchor) is the backtest's decision for that day, so the account reproduces the ensemble's
backtest from the anchor to the cent and share, and the journal records what every member decided."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrl.agents.ensemble_bundle import EnsembleBundle
from finrl.backtest.engine import AGENT, run_backtest
from finrl.meta.preprocessing import DateWindow
from finrl.trade.journal import Journal
from finrl.trade.risk import RiskLimits
from finrl.trade.simulated import SimulatedBroker
from finrl.trade.trader import DailyTrader
from unit_tests.agents.test_ensemble_bundle import make, market, write_bundle
from unit_tests.conftest import default_settings, env_config, risk_limits, trader_config

pytestmark = pytest.mark.integration  # the broker, the trader, the backtest and the bundle together
DAYS = 40
NO_LIMITS = risk_limits(max_drawdown=1.0, max_daily_loss=1.0, max_position_fraction=4.0)


def ensemble_trader(
    ensemble: EnsembleBundle, bars: pd.DataFrame, features: pd.DataFrame, folder: Path, risk: RiskLimits = NO_LIMITS
) -> tuple[DailyTrader, SimulatedBroker]:
    """A paper trader for ``ensemble`` on a simulated account over ``bars``, its files in ``folder``."""
    config = ensemble.env_config
    broker = SimulatedBroker(folder / "account.json", bars, config.execution, config.initial_cash)
    trader = DailyTrader(
        bundle=ensemble, broker=broker, features_for=lambda day: features.loc[: pd.Timestamp(day)],
        journal=Journal(folder / "journal.jsonl"), state_path=folder / "state.json", risk=risk, config=trader_config(),
    )  # fmt: skip
    return trader, broker


def replay(trader: DailyTrader, broker: SimulatedBroker, days: pd.DatetimeIndex) -> pd.DataFrame:
    """One cycle per day; the account's shares and NAV at each close, before the decision."""
    rows = []
    for day in days:
        broker.advance_to(day.date())
        position = broker.position("SPY")
        rows.append({"shares": position.qty if position else 0.0, "nav": broker.account().equity})
        trader.run_cycle(day.date())
    return pd.DataFrame(rows, index=days)


def test_the_paper_loop_on_an_ensemble_reproduces_its_backtest(tmp_path: Path) -> None:
    models = tmp_path / "models"
    write_bundle(models, "a", 1)
    write_bundle(models, "w", 3, config=env_config(action_space="target_weight"))
    ensemble = make(models, "a", "w")
    bars, features = market()
    days = features.loc[pd.Timestamp(ensemble.anchor) :].index[:DAYS]
    window = DateWindow(days[0].date(), days[-1].date())
    backtest = run_backtest(ensemble, features, window, default_settings().risk_free_rate).ledgers[AGENT].frame

    paper = replay(*ensemble_trader(ensemble, bars, features, tmp_path), days)

    assert int(backtest["fill_price"].notna().sum()) >= 5
    np.testing.assert_array_equal(paper["shares"].to_numpy(), backtest["shares"].to_numpy())
    np.testing.assert_allclose(paper["nav"].to_numpy(), backtest["nav"].to_numpy(), rtol=0, atol=1e-9)
    entries = Journal(tmp_path / "journal.jsonl").entries()
    targets = [e["target"] for e in entries if e["event"] == "decision"]
    np.testing.assert_array_equal(targets[:-1], backtest["action"].to_numpy()[:-1])  # the decided target weights
    members = [e for e in entries if e["event"] == "ensemble_decision"]
    assert len(members) == DAYS and set(members[0]["members"]) == {"a", "w"}
    assert {e["anchor"] for e in members} == {ensemble.anchor.isoformat()}
