"""The backtest engine on a tiny trained bundle: agent and baselines on identical terms, bit-identical
reruns, no look-ahead (perturbing the future changes nothing before it), the default test window, the
leakage warning and the refusals (feature schema, too short a window, gaps in the dates)."""

from __future__ import annotations

import math
from datetime import date
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrl.agents.bundle import BundleError, ModelBundle, load_bundle
from finrl.agents.training import train
from finrl.backtest.engine import AGENT, BASELINES, BacktestResult, default_test_window, leakage_warnings, run_backtest
from finrl.errors import DataError
from finrl.meta.data.frames import fingerprint
from finrl.meta.env.execution import COSTS_BEFORE_FEES, CostModel
from finrl.meta.features import build_features
from finrl.meta.preprocessing import DataSplit, DateWindow
from unit_tests.conftest import (
    default_settings,
    env_config,
    execution_config,
    feature_spec,
    make_bars,
    ppo_config,
    training_job,
)

pytestmark = pytest.mark.integration

# ------------------------------------------------------------------ one tiny bundle for the session
# (test_report.py uses these helpers too; the bundle is trained once per test session)

COSTS = CostModel(
    commission_bps=5.0, spread_bps=4.0, slippage_bps=3.0, **COSTS_BEFORE_FEES
)  # not the defaults: they must be the bundle's
ENV = env_config(execution=execution_config(costs=COSTS), initial_cash=50_000.0, episode_length=20)
PPO = ppo_config(n_envs=2, n_steps=64, batch_size=64, n_epochs=2, net_arch=(32, 32))
SPEC = feature_spec()
TRAIN_DAYS = 180
RISK_FREE_RATE = default_settings().risk_free_rate


@cache
def engine_data() -> tuple[pd.DataFrame, pd.DataFrame, DataSplit]:
    """Bars, features and split (training = first 180 feature days, no validation). Read-only."""
    bars = make_bars(360, seed=11)
    features = build_features(bars, SPEC)
    train_window = DateWindow(features.index[0].date(), features.index[TRAIN_DAYS - 1].date())
    return bars, features, DataSplit(train_window, None, None)


_TRAINED: dict[str, Path] = {}


def engine_bundle_path(factory: pytest.TempPathFactory) -> Path:
    """Train the session's bundle on first use (1024 steps, about a second) and return its folder."""
    if "path" not in _TRAINED:
        bars, features, split = engine_data()
        root = factory.mktemp("engine-bundle")
        job = training_job(
            features=features,
            feature_spec=SPEC,
            data_info={"source": "generated", "label": "generated bars", "fingerprint": fingerprint(bars)},
            split=split,
            run_name="engine",
            models_dir=root / "models",
            tensorboard_dir=root / "tensorboard",
            ppo=PPO,
            env=ENV,
            seed=5,
            total_timesteps=1024,
            eval_freq=0,
            checkpoint_freq=0,
            progress=False,
        )
        _TRAINED["path"] = train(job).bundle.path
    return _TRAINED["path"]


@pytest.fixture(scope="session")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return engine_bundle_path(tmp_path_factory)


@pytest.fixture
def bundle(bundle_path: Path) -> ModelBundle:
    return load_bundle(bundle_path, bundle_path.parent)


def default_run(bundle: ModelBundle, features: pd.DataFrame | None = None) -> BacktestResult:
    features = engine_data()[1] if features is None else features
    window = default_test_window(bundle, pd.DatetimeIndex(features.index))
    return run_backtest(bundle, features, window, RISK_FREE_RATE)


@pytest.fixture(scope="module")
def result(bundle_path: Path) -> BacktestResult:
    return default_run(load_bundle(bundle_path, bundle_path.parent))


def with_split(bundle: ModelBundle, train: DateWindow, validation: DateWindow | None) -> ModelBundle:
    split = DataSplit(train, validation, None)
    return ModelBundle(bundle.path, bundle.manifest.model_copy(update={"split": split}))


def day(i: int) -> date:
    return engine_data()[1].index[i].date()


# ------------------------------------------------------------------ identical terms for everyone


def test_every_strategy_runs_on_the_same_days(result: BacktestResult) -> None:
    _, features, _ = engine_data()
    expected = features.index[TRAIN_DAYS:]
    assert set(result.ledgers) == {AGENT, *BASELINES} and set(result.metrics) == set(result.ledgers)
    for name, ledger in result.ledgers.items():
        assert ledger.frame.index.equals(expected), name
        assert ledger.nav.iloc[0] == ENV.initial_cash, name
    pd.testing.assert_frame_equal(result.prices, features.loc[expected, ["open", "close"]])


def test_every_fill_uses_the_next_open_and_the_bundles_costs(result: BacktestResult) -> None:
    opens = result.prices["open"].to_numpy()
    impact, commission = COSTS.price_impact, COSTS.commission_rate
    fills_seen = 0
    for name, ledger in result.ledgers.items():
        frame = ledger.frame
        shares = frame["shares"].to_numpy()
        for t in np.flatnonzero(frame["fill_price"].notna().to_numpy()):
            delta = shares[t] - shares[t - 1]
            assert delta != 0, (name, t)
            expected_price = opens[t] * (1 + impact if delta > 0 else 1 - impact)
            assert frame["fill_price"].iloc[t] == pytest.approx(expected_price, rel=1e-12), (name, t)
            expected_costs = abs(delta) * expected_price * commission + abs(delta) * abs(expected_price - opens[t])
            assert frame["costs"].iloc[t] == pytest.approx(expected_costs, rel=1e-9), (name, t)
            fills_seen += 1
        no_fill = frame["fill_price"].isna().to_numpy()
        assert (frame["costs"].to_numpy()[no_fill] == 0).all(), name
        assert (np.diff(shares)[no_fill[1:]] == 0).all(), name
    assert fills_seen >= 2  # buy-and-hold's fill and at least one more


def test_buy_and_hold_fills_once_at_the_open_of_day_one(result: BacktestResult) -> None:
    frame = result.ledgers["buy_and_hold"].frame
    opens, closes = result.prices["open"].to_numpy(), result.prices["close"].to_numpy()
    price = opens[1] * (1 + COSTS.price_impact)
    shares = math.floor(ENV.initial_cash / (price * (1 + COSTS.commission_rate)))
    commission = shares * price * COSTS.commission_rate
    cash = ENV.initial_cash - shares * price - commission

    assert frame["fill_price"].notna().sum() == 1 and not np.isnan(frame["fill_price"].iloc[1])
    assert frame["fill_price"].iloc[1] == pytest.approx(price, rel=1e-12)
    assert (frame["shares"].iloc[1:] == shares).all() and frame["shares"].iloc[0] == 0
    assert frame["costs"].iloc[1] == pytest.approx(commission + shares * (price - opens[1]), rel=1e-9)
    assert frame["cash"].iloc[1] == pytest.approx(cash, rel=1e-12) and cash >= 0
    np.testing.assert_allclose(frame["nav"].to_numpy()[1:], cash + shares * closes[1:], rtol=1e-12)
    metrics = result.metrics["buy_and_hold"]
    assert metrics["n_trades"] == 1
    assert metrics["total_costs"] == pytest.approx(frame["costs"].iloc[1], rel=1e-12)
    assert metrics["total_return"] == pytest.approx((cash + shares * closes[-1]) / ENV.initial_cash - 1, rel=1e-9)


def test_flat_never_trades_and_keeps_its_cash(result: BacktestResult) -> None:
    frame = result.ledgers["flat"].frame
    assert frame["fill_price"].isna().all()
    assert (frame["shares"] == 0).all() and (frame["position"] == 0).all() and (frame["costs"] == 0).all()
    assert (frame["nav"] == ENV.initial_cash).all() and (frame["cash"] == ENV.initial_cash).all()
    metrics = result.metrics["flat"]
    assert metrics["n_trades"] == 0 and metrics["total_return"] == 0.0 and metrics["sharpe"] == 0.0
    assert all(math.isfinite(v) for v in metrics.values())


def test_sma_crossover_follows_the_adjusted_close_averages(result: BacktestResult) -> None:
    bars, _, _ = engine_data()
    adjusted = bars["adj_close"]  # indicators run on the dividend-adjusted series
    fast, slow = adjusted.rolling(30).mean(), adjusted.rolling(60).mean()
    days = result.ledgers["sma_crossover"].frame.index
    expected = np.where(fast[days] > slow[days], 2.0, 0.0)
    actions = result.ledgers["sma_crossover"].frame["action"].to_numpy()
    assert np.isnan(actions[-1])  # the last day has no next day to fill on
    np.testing.assert_array_equal(actions[:-1], expected[:-1])
    assert len(set(expected[:-1])) == 2  # the window holds both regimes


def test_agent_actions_are_valid_and_metrics_complete(result: BacktestResult) -> None:
    actions = result.ledgers[AGENT].frame["action"].to_numpy()
    config = result.config  # the ledger's action: discrete3's action, or the weight decided
    valid = {0.0, 1.0, 2.0} if config.action_space == "discrete3" else set(config.weight_levels)
    assert set(actions[:-1]) <= valid and np.isnan(actions[-1])
    for name, metrics in result.metrics.items():
        assert all(math.isfinite(v) for v in metrics.values()), name
    assert result.warnings == []


def test_meta_describes_the_run(result: BacktestResult, bundle: ModelBundle) -> None:
    _, features, split = engine_data()
    meta = result.meta()
    assert meta["model"] == "engine" and meta["model_path"] == str(bundle.path)
    assert meta["test_start"] == features.index[TRAIN_DAYS].date().isoformat()
    assert meta["test_end"] == features.index[-1].date().isoformat()
    assert meta["days"] == len(features) - TRAIN_DAYS
    assert meta["train_window"] == split.train.to_dict() and meta["validation_window"] is None
    assert meta["execution"]["execution"]["costs"] == {
        "commission_bps": 5.0,
        "spread_bps": 4.0,
        "slippage_bps": 3.0,
        **COSTS_BEFORE_FEES,
    }
    assert meta["execution"]["initial_cash"] == ENV.initial_cash
    assert meta["warnings"] == []


# ------------------------------------------------------------------ reproducibility and no look-ahead


def test_same_bundle_same_data_bit_identical(bundle_path: Path) -> None:
    first = default_run(load_bundle(bundle_path, bundle_path.parent))
    second = default_run(load_bundle(bundle_path, bundle_path.parent))
    for name in first.ledgers:
        a, b = first.ledgers[name].frame, second.ledgers[name].frame
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert a.to_numpy().tobytes() == b.to_numpy().tobytes(), name
    assert first.metrics == second.metrics


def assert_identical_through(base: BacktestResult, other: BacktestResult, t: int) -> None:
    for name in base.ledgers:
        before, after = base.ledgers[name].frame, other.ledgers[name].frame
        pd.testing.assert_frame_equal(before.iloc[: t + 1], after.iloc[: t + 1], check_exact=True, obj=name)


def test_perturbing_features_after_day_t_changes_nothing_up_to_t(result: BacktestResult, bundle: ModelBundle) -> None:
    _, features, _ = engine_data()
    t = 50
    cut = result.prices.index[t]
    perturbed = features.copy()
    later = perturbed.index > cut
    rng = np.random.default_rng(99)
    numeric = perturbed.columns[[pd.api.types.is_float_dtype(d) for d in perturbed.dtypes]]
    perturbed.loc[later, numeric] = perturbed.loc[later, numeric].to_numpy() * rng.uniform(
        0.5, 1.5, (int(later.sum()), len(numeric))
    )
    other = run_backtest(bundle, perturbed, result.window, RISK_FREE_RATE)
    assert_identical_through(result, other, t)
    # the perturbation did reach the backtest after t
    assert not np.array_equal(
        result.ledgers["buy_and_hold"].nav.to_numpy(), other.ledgers["buy_and_hold"].nav.to_numpy()
    )


def test_perturbing_prices_after_day_t_changes_no_action_up_to_t(result: BacktestResult, bundle: ModelBundle) -> None:
    bars, features, _ = engine_data()
    t = 40
    cut = result.prices.index[t]
    later = bars.index > cut
    rng = np.random.default_rng(7)
    shock = np.exp(np.cumsum(rng.normal(-0.004, 0.03, int(later.sum()))))  # a different future path
    changed = bars.copy()
    for column in ("open", "high", "low", "close", "adj_close"):
        changed.loc[later, column] = changed.loc[later, column] * shock
    changed.loc[later, "vix"] = changed.loc[later, "vix"] * 2
    new_features = build_features(changed, SPEC)
    pd.testing.assert_frame_equal(new_features.loc[:cut], features.loc[:cut], check_exact=True)
    other = run_backtest(bundle, new_features, result.window, RISK_FREE_RATE)
    assert_identical_through(result, other, t)
    for name in (AGENT, "sma_crossover"):
        actions = result.ledgers[name].frame["action"].to_numpy()[: t + 1]
        np.testing.assert_array_equal(other.ledgers[name].frame["action"].to_numpy()[: t + 1], actions)
    assert not np.array_equal(
        result.ledgers["buy_and_hold"].nav.to_numpy(), other.ledgers["buy_and_hold"].nav.to_numpy()
    )


# ------------------------------------------------------------------ windows and leakage


def test_default_window_starts_after_training(bundle: ModelBundle) -> None:
    _, features, _ = engine_data()
    window = default_test_window(bundle, pd.DatetimeIndex(features.index))
    assert window == DateWindow(day(TRAIN_DAYS), day(-1))
    assert leakage_warnings(bundle, window) == []


def test_default_window_starts_after_validation(bundle: ModelBundle) -> None:
    _, features, _ = engine_data()
    validated = with_split(bundle, DateWindow(day(0), day(150)), DateWindow(day(151), day(230)))
    window = default_test_window(validated, pd.DatetimeIndex(features.index))
    assert window == DateWindow(day(231), day(-1))
    assert leakage_warnings(validated, window) == []


def test_default_window_needs_two_days_after_what_the_model_saw(bundle: ModelBundle) -> None:
    _, features, _ = engine_data()
    index = pd.DatetimeIndex(features.index)
    late = with_split(bundle, DateWindow(day(0), day(150)), DateWindow(day(151), day(-2)))
    with pytest.raises(DataError, match="no test days after"):
        default_test_window(late, index)
    assert default_test_window(with_split(bundle, DateWindow(day(0), day(-3)), None), index) == DateWindow(
        day(-2), day(-1)
    )


def test_window_overlapping_training_warns_of_leakage(bundle: ModelBundle) -> None:
    _, features, _ = engine_data()
    window = DateWindow(day(TRAIN_DAYS - 30), day(TRAIN_DAYS + 30))
    result = run_backtest(bundle, features, window, RISK_FREE_RATE)
    (warning,) = result.warnings
    assert "DATA LEAKAGE" in warning and "training" in warning and "in-sample" in warning
    assert result.meta()["warnings"] == [warning]
    assert len(result.ledgers[AGENT].frame) == 61


def test_window_overlapping_validation_warns_of_leakage(bundle: ModelBundle) -> None:
    validated = with_split(bundle, DateWindow(day(0), day(150)), DateWindow(day(151), day(200)))
    warnings = leakage_warnings(validated, DateWindow(day(190), day(-1)))
    assert len(warnings) == 1 and "validation" in warnings[0] and "DATA LEAKAGE" in warnings[0]
    both = leakage_warnings(validated, DateWindow(day(100), day(-1)))
    assert len(both) == 2 and "training" in both[0] and "validation" in both[1]


# ------------------------------------------------------------------ refusals


def test_feature_schema_mismatch_is_a_bundle_error(bundle: ModelBundle) -> None:
    bars, features, _ = engine_data()
    without_vix = build_features(bars, feature_spec(use_vix=False))
    window = default_test_window(bundle, pd.DatetimeIndex(features.index))
    with pytest.raises(BundleError, match="feature schema mismatch") as info:
        run_backtest(bundle, without_vix, window, RISK_FREE_RATE)
    assert "vix" in str(info.value)
    with pytest.raises(BundleError, match="feature schema mismatch"):
        run_backtest(bundle, features.drop(columns=["rsi_30"]), window, RISK_FREE_RATE)


def weekend_inside_the_test_window() -> tuple[date, date]:
    index = engine_data()[1].index
    friday = next(d for d in index[TRAIN_DAYS + 5 :] if d.day_of_week == 4)
    return (friday + pd.Timedelta(days=1)).date(), (friday + pd.Timedelta(days=2)).date()


@pytest.mark.parametrize(
    ("which", "fragment"),
    [("weekend", "holds no trading days"), ("after the data", "holds no trading days"), ("one day", "holds 1 day")],
)
def test_empty_or_one_day_window_is_a_data_error(bundle: ModelBundle, which: str, fragment: str) -> None:
    _, features, _ = engine_data()
    window = {
        "weekend": DateWindow(*weekend_inside_the_test_window()),
        "after the data": DateWindow(date(2030, 1, 2), date(2030, 3, 1)),
        "one day": DateWindow(day(TRAIN_DAYS + 10), day(TRAIN_DAYS + 10)),
    }[which]
    assert window.end < day(-1) or which == "after the data"
    with pytest.raises(DataError, match=fragment):
        run_backtest(bundle, features, window, RISK_FREE_RATE)


def test_a_gap_in_the_dates_is_a_data_error(bundle: ModelBundle) -> None:
    _, features, _ = engine_data()
    missing = features.index[TRAIN_DAYS + 20 : TRAIN_DAYS + 28]  # eight sessions, about a week and a half
    window = default_test_window(bundle, pd.DatetimeIndex(features.index))
    with pytest.raises(DataError, match=r"8 NYSE session\(s\) missing"):
        run_backtest(bundle, features.drop(index=missing), window, RISK_FREE_RATE)


def test_a_single_missing_session_is_a_data_error(bundle: ModelBundle) -> None:
    _, features, _ = engine_data()
    index = features.index
    mid_week = next(i for i in range(TRAIN_DAYS + 20, len(index)) if index[i].day_of_week == 2)
    window = default_test_window(bundle, pd.DatetimeIndex(index))
    with pytest.raises(DataError):
        run_backtest(bundle, features.drop(index=[index[mid_week]]), window, RISK_FREE_RATE)


def test_the_sma_baseline_needs_its_averages(bundle: ModelBundle) -> None:
    _, features, _ = engine_data()
    window = default_test_window(bundle, pd.DatetimeIndex(features.index))
    with pytest.raises(DataError, match="close_60_sma"):
        run_backtest(bundle, features.drop(columns=["close_60_sma"]), window, RISK_FREE_RATE)


def test_risk_free_rate_reaches_the_metrics(bundle: ModelBundle, result: BacktestResult) -> None:
    _, features, _ = engine_data()
    with_rf = run_backtest(bundle, features, result.window, risk_free_rate=RISK_FREE_RATE + 0.05)
    assert with_rf.metrics["buy_and_hold"]["sharpe"] < result.metrics["buy_and_hold"]["sharpe"]
    assert with_rf.metrics["buy_and_hold"]["total_return"] == result.metrics["buy_and_hold"]["total_return"]
    for name in result.ledgers:
        assert with_rf.ledgers[name].frame.equals(result.ledgers[name].frame), name
