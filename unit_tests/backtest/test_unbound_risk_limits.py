"""Limits that never bind change nothing: the gated backtest's agent (actions, shares, cash, NAV, fills
and costs, the trades) equals the ``--no-risk-limits`` one in every action space, with no risk event."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finrl.agents.bundle import ModelBundle
from finrl.backtest.engine import BacktestResult, run_backtest
from finrl.backtest.report import trades_table
from unit_tests.conftest import default_settings, risk_limits
from unit_tests.trade.test_simulated_trading import bundle, in_space, playing, sample, scripted

__all__ = ["bundle"]  # the module fixture: a copy of the session's tiny bundle r1

pytestmark = pytest.mark.integration
NEVER_BINDING = risk_limits(
    max_drawdown=1.0, max_daily_loss=1.0, max_position_fraction=4.0, max_order_notional=1e12
)  # a halt or a daily-loss block needs equity at 0; a position of 4 x equity and an order of 1e12 are out of reach


def both(spaced: ModelBundle) -> tuple[BacktestResult, BacktestResult]:
    _, features, _ = sample()
    window = spaced.split.test
    assert window is not None
    rf = default_settings().risk_free_rate
    gated = run_backtest(spaced, features, window, rf, risk_limits=NEVER_BINDING)
    return gated, run_backtest(spaced, features, window, rf)


def assert_same_agent(gated: BacktestResult, free: BacktestResult) -> None:
    assert gated.risk_limits == NEVER_BINDING and free.risk_limits is None
    assert gated.risk_events == [] and gated.risk_meta()["events"] == []
    ledger, unconstrained = gated.ledgers["agent"].frame, free.ledgers["agent"].frame
    assert {"action", "shares", "cash", "nav", "fill_price", "costs"} <= set(ledger.columns)
    pd.testing.assert_frame_equal(ledger, unconstrained, check_exact=True)
    pd.testing.assert_frame_equal(trades_table(gated), trades_table(free), check_exact=True)
    assert gated.metrics == free.metrics


@pytest.mark.parametrize("space", ["discrete3", "target_weight", "continuous"])
def test_unbound_limits_leave_a_busy_agent_alone(
    bundle: ModelBundle, monkeypatch: pytest.MonkeyPatch, space: str
) -> None:
    spaced = in_space(bundle, space)
    window = spaced.split.test
    assert window is not None
    actions = scripted(space, len(window.slice(sample()[1])), seed=11)  # busy, leaning long
    monkeypatch.setattr(ModelBundle, "load_policy", lambda _: playing(actions))  # a fresh replay for each run
    gated, free = both(spaced)
    assert_same_agent(gated, free)
    fills = free.ledgers["agent"].frame["fill_price"].notna()
    assert int(fills.sum()) >= 10  # it traded: the limits were asked often
    assert np.nanmax(free.ledgers["agent"].frame["shares"].to_numpy()) > 0  # and met positions


def test_unbound_limits_leave_the_trained_policy_alone(bundle: ModelBundle) -> None:
    """The bundle's own policy, in the action space it was trained in."""
    assert_same_agent(*both(bundle))
