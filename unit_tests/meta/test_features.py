from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finrl.errors import DataError
from finrl.meta.features import DEFAULT_INDICATORS, FeatureSpec, build_features, is_price_level, turbulence
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


@pytest.mark.parametrize("t", [70, 150, 299])
def test_no_look_ahead_features_at_t_ignore_every_later_bar(t: int) -> None:
    """Perturb every bar after day t; every feature at day t must stay bit-identical."""
    bars = make_bars(400, seed=3)
    spec = feature_spec()
    base = build_features(bars, spec)
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
