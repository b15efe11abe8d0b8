"""An ensemble bundle backtests like any bundle: its NAV is exactly research's seeds' ensemble of its
members' own backtests (under the bundle's costs or others), its window and leakage warnings cover
every member, and a majority ensemble holds only weights its members decided."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrl.backtest.engine import AGENT, default_test_window, run_backtest
from finrl.meta.env.spy_env import EnvConfig
from finrl.meta.preprocessing import DateWindow
from finrl.research.ensemble import ensemble_ledger
from unit_tests.agents.test_ensemble_bundle import make, market, write_bundle
from unit_tests.conftest import cost_model, default_settings, discrete3_config, env_config

pytestmark = pytest.mark.unit
RISK_FREE_RATE = default_settings().risk_free_rate


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """Three comparable bundles: a and b (discrete3), w (target_weight)."""
    folder = tmp_path / "models"
    write_bundle(folder, "a", 1, config=discrete3_config())
    write_bundle(folder, "b", 2, config=discrete3_config())
    write_bundle(folder, "w", 3, config=env_config(action_space="target_weight"))
    return folder


def window_from(day: pd.Timestamp) -> DateWindow:
    features = market()[1]
    return DateWindow(day.date(), features.index[-1].date())


@pytest.mark.parametrize("costs", ["recorded", "replaced"])
def test_the_ensemble_nav_is_research_s_ensemble_of_its_members_backtests(models: Path, costs: str) -> None:
    ensemble = make(models, "a", "b", "w")
    features = market()[1]
    window = default_test_window(ensemble, pd.DatetimeIndex(features.index))
    config: EnvConfig | None = None
    if costs == "replaced":  # spy-rl backtest --commission-bps 10 --fill-at next_close: members pay it too
        execution = replace(ensemble.env_config.execution, costs=cost_model(commission_bps=10.0), fill_at="next_close")
        config = replace(ensemble.env_config, execution=execution)
    result = run_backtest(ensemble, features, window, RISK_FREE_RATE, config)

    member_config = (config or ensemble.env_config).execution
    members = [
        run_backtest(m, features, window, RISK_FREE_RATE, replace(m.env_config, execution=member_config))
        for m in ensemble.members
    ]
    research = ensemble_ledger(members)
    agent = result.ledgers[AGENT].frame
    assert int(agent["fill_price"].notna().sum()) >= 10  # it trades
    np.testing.assert_array_equal(agent["nav"].to_numpy(), research["nav"].to_numpy())
    np.testing.assert_array_equal(agent["shares"].to_numpy(), research["shares"].to_numpy())
    assert result.config.action_space == "continuous"
    assert result.config.execution == member_config


def test_the_default_window_starts_at_the_anchor_and_meta_lists_the_members(models: Path) -> None:
    ensemble = make(models, "a", "b", "w", name="abw")
    features = market()[1]
    window = default_test_window(ensemble, pd.DatetimeIndex(features.index))
    assert window.start == features.loc[pd.Timestamp(ensemble.anchor) :].index[0].date()
    result = run_backtest(ensemble, features, window, RISK_FREE_RATE)
    meta = result.meta()
    assert meta["model"] == "abw" and result.warnings == []
    assert meta["ensemble"]["rule"] == "mean_weight" and meta["ensemble"]["anchor"] == ensemble.anchor.isoformat()
    assert [m["model"] for m in meta["ensemble"]["members"]] == ["a", "b", "w"]
    assert meta["train_window"]["end"] == max(m.split.train.end for m in ensemble.members).isoformat()
    with pytest.raises(TypeError, match="abw is an ensemble"):
        _ = result.policy


def test_a_window_inside_a_members_training_warns_naming_it(models: Path) -> None:
    write_bundle(models, "twin", 4)  # trained on the same 150 days as a
    ensemble = make(models, "a", "twin")
    features = market()[1]
    inside = DateWindow(features.index[100].date(), features.index[-1].date())
    warnings = run_backtest(ensemble, features, inside, RISK_FREE_RATE).warnings
    assert len(warnings) == 2 and all(w.startswith("DATA LEAKAGE") for w in warnings)
    assert "member a's training window" in warnings[0] and "member twin's training window" in warnings[1]


def test_a_majority_ensemble_holds_only_weights_its_members_decided(models: Path) -> None:
    write_bundle(models, "c", 5, config=discrete3_config())
    ensemble = make(models, "a", "b", "c", rule="majority")
    features = market()[1]
    result = run_backtest(ensemble, features, window_from(pd.Timestamp(ensemble.anchor)), RISK_FREE_RATE)
    decided = result.ledgers[AGENT].frame["action"].dropna()
    assert set(decided) <= {0.0, 1.0} and decided.nunique() == 2
