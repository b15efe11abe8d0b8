from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from finrl.errors import DataError
from finrl.meta.features import (
    DEFAULT_INDICATORS,
    FeatureSpec,
    build_features,
    is_price_level,
    turbulence,
)
from unit_tests.conftest import feature_spec, make_bars

pytestmark = pytest.mark.unit


def test_required_indicators_and_observation_columns(sample_bars: pd.DataFrame) -> None:
    spec = feature_spec()
    features = build_features(sample_bars, spec)
    for name in ("macd", "boll_ub", "boll_lb", "rsi_30", "cci_30", "dx_30", "close_30_sma", "close_60_sma"):
        assert name in features.columns
    assert {"vix", "turbulence", "realized_vol_20", "log_return"} <= set(spec.observation_columns)
    assert len(features) == len(sample_bars) - spec.warmup_bars
    assert np.isfinite(features[list(spec.observation_columns)].to_numpy()).all()
    # the raw traded prices are kept for execution
    assert features["open"].equals(sample_bars["open"].iloc[spec.warmup_bars :])


def test_indicators_match_stockstats_on_adjusted_prices() -> None:
    from stockstats import wrap

    bars = make_bars(250)
    features = build_features(bars, feature_spec())
    factor = bars["adj_close"] / bars["close"]
    adjusted = pd.DataFrame(
        {c: bars[c] * factor for c in ("open", "high", "low")} | {"close": bars["adj_close"], "volume": bars["volume"]}
    )
    expected = wrap(adjusted)["rsi_30"].iloc[feature_spec().warmup_bars :]
    np.testing.assert_allclose(features["rsi_30"].to_numpy(), expected.to_numpy(), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("regime", "t"), [(False, 70), (False, 150), (False, 299), (True, 260), (True, 400), (True, 599)]
)
def test_no_look_ahead_features_at_t_ignore_every_later_bar(regime: bool, t: int) -> None:
    """Perturb every bar after day t; every feature at day t (regime features included) must stay bit-identical."""
    bars = make_bars(700, seed=3)
    spec = feature_spec(regime_features=regime)
    base = build_features(bars, spec)
    assert bars.index[t] in base.index and set(spec.regime_columns) <= set(base.columns)
    rng = np.random.default_rng(99)
    perturbed = bars.copy()
    later = perturbed.index > perturbed.index[t]
    scale = np.exp(rng.normal(0, 0.2, later.sum()))
    for column in ("open", "high", "low", "close", "adj_close"):
        perturbed.loc[later, column] = perturbed.loc[later, column] * scale
    perturbed.loc[later, "volume"] = perturbed.loc[later, "volume"] * 3
    perturbed.loc[later, "vix"] = 80.0
    changed = build_features(perturbed, spec)
    day = bars.index[t]
    pd.testing.assert_frame_equal(base.loc[:day], changed.loc[:day], check_exact=True)
    assert not base.loc[day:].iloc[1:].equals(changed.loc[day:].iloc[1:])  # the perturbation did bite


def test_price_level_indicators_are_scale_free() -> None:
    bars = make_bars(300)
    scaled = bars.copy()
    scaled[["open", "high", "low", "close", "adj_close"]] *= 7.0
    spec = feature_spec()
    a = build_features(bars, spec)[list(spec.observation_columns)]
    b = build_features(scaled, spec)[list(spec.observation_columns)]
    pd.testing.assert_frame_equal(a, b, rtol=1e-9)


def test_price_level_classification() -> None:
    assert is_price_level("macd") and is_price_level("boll_ub") and is_price_level("close_30_sma")
    assert not any(is_price_level(n) for n in ("rsi_30", "cci_30", "dx_30"))


def test_turbulence_uses_only_previous_days() -> None:
    returns = pd.Series(np.r_[np.zeros(5), np.random.default_rng(1).normal(0, 0.01, 60), 0.10])
    values = turbulence(returns, 60)
    history = returns.iloc[5:65]
    assert values.iloc[-1] == pytest.approx((0.10 - history.mean()) ** 2 / history.var())


def test_spec_round_trip_and_warmup() -> None:
    spec = feature_spec(indicators=(*DEFAULT_INDICATORS, "close_100_sma"), use_vix=False)
    assert spec.warmup_bars == 102
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    assert "vix" not in spec.observation_columns


def test_missing_vix_is_an_error_not_zeros() -> None:
    with pytest.raises(DataError, match="vix"):
        build_features(make_bars(vix=False), feature_spec(use_vix=True))
    features = build_features(make_bars(vix=False), feature_spec(use_vix=False))
    assert "vix" not in features.columns


def test_too_few_bars_and_unknown_indicator() -> None:
    with pytest.raises(DataError, match="too few"):
        build_features(make_bars(50), feature_spec())
    with pytest.raises(DataError, match="stockstats"):
        build_features(make_bars(200), feature_spec(indicators=("not_an_indicator_5",)))


def test_flat_prices_give_a_clear_error() -> None:
    bars = make_bars(200)
    bars[["open", "high", "low", "close", "adj_close"]] = 100.0
    with pytest.raises(DataError, match="NaN/inf"):
        build_features(bars, feature_spec())


# ---------------------------------------------------------------- regime features (off by default)

REGIME = ("vol_ratio", "drawdown", "vix_change")


@pytest.mark.parametrize("use_vix", [True, False])
def test_regime_columns_only_when_on(use_vix: bool) -> None:
    bars = make_bars(400, vix=use_vix)
    off = feature_spec(use_vix=use_vix)
    on = replace(off, regime_features=True)
    assert not off.regime_features  # the default
    assert not set(REGIME) & set(build_features(bars, off).columns)
    expected = REGIME if use_vix else REGIME[:2]  # without VIX there is no vix_change
    assert on.observation_columns == (*off.observation_columns, *expected)  # appended: the rest keeps its order
    assert on.warmup_bars == 252 + 2  # the trailing year of the drawdown's peak
    features = build_features(bars, on)
    assert len(features) == len(bars) - on.warmup_bars
    assert np.isfinite(features[list(on.observation_columns)].to_numpy()).all()
    assert (features["drawdown"] >= 0).all() and (features["drawdown"] < 1).all()


def test_regime_values_match_an_independent_computation() -> None:
    """Each value from its own trailing window, by NumPy, day by day."""
    bars = make_bars(120, seed=5)
    spec = feature_spec(regime_features=True, vol_ratio_short=3, vol_ratio_long=7, drawdown_window=15, vix_change_lag=2)
    features = build_features(bars, spec)
    price, vix = bars["adj_close"].to_numpy(), bars["vix"].to_numpy()
    returns = np.r_[np.nan, np.diff(np.log(price))]
    expected = []
    for day in features.index:
        t = bars.index.get_loc(day)
        short, long = (np.std(returns[t - n + 1 : t + 1], ddof=1) for n in (3, 7))
        peak = price[t - 15 + 1 : t + 1].max()
        expected.append((short / long, 1 - price[t] / peak, np.log(vix[t] / vix[t - 2])))
    np.testing.assert_allclose(features[list(REGIME)].to_numpy(), np.array(expected), rtol=1e-9, atol=1e-12)


def test_drawdown_reads_the_trailing_peak_not_the_data_start() -> None:
    """A day's drawdown is the same whether the data starts years or a year and a bit earlier."""
    bars = make_bars(700, seed=7)
    spec = feature_spec(regime_features=True)
    full = build_features(bars, spec)["drawdown"]
    late = build_features(bars.iloc[300:], spec)["drawdown"]
    pd.testing.assert_series_equal(full.loc[late.index], late, check_exact=True)


def test_spec_without_regime_fields_loads_as_off_and_off_writes_the_old_dict() -> None:
    """A bundle from before regime features loads unchanged; a spec without them writes what it wrote
    then, so walk-forward cache keys and trial counts of baseline runs do not move."""
    old = {
        "use_vix": True,
        "indicators": list(DEFAULT_INDICATORS),
        "volatility_window": 20,
        "turbulence_window": 60,
        "version": 1,
        "observation_columns": list(feature_spec(use_vix=True).observation_columns),
        "warmup_bars": 62,
    }
    spec = FeatureSpec.from_dict(old)
    assert not spec.regime_features and spec == FeatureSpec(use_vix=True)
    assert spec.to_dict() == old
    on = feature_spec(regime_features=True, drawdown_window=126)
    assert FeatureSpec.from_dict(on.to_dict()) == on
    assert on.to_dict()["observation_columns"][-3:] == list(REGIME)


@pytest.mark.parametrize("windows", [{"vol_ratio_short": 60, "vol_ratio_long": 10}, {"drawdown_window": 0}])
def test_bad_regime_windows_are_refused(windows: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"vol_ratio|drawdown_window"):
        feature_spec(regime_features=True, **windows)
