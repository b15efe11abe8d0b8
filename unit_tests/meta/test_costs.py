"""The cost components: hand-computed fills, no look-ahead in the impact inputs, never negative and
monotone in size, the breakdown sums to the total, and old env configs keep their meaning."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from finrl.meta.env.execution import COST_COMPONENTS, COSTS_BEFORE_FEES, fill_order, impact_fraction
from finrl.meta.env.market_arrays import MarketArrays, trailing_liquidity
from finrl.meta.env.rollout import run_policy, scheduled_policy
from finrl.meta.env.spy_env import EnvConfig
from finrl.meta.features import build_features
from finrl.meta.preprocessing import FeatureNormalizer
from unit_tests.conftest import cost_model, env_config, execution_config, feature_spec, make_bars

pytestmark = pytest.mark.unit

# 1 bp commission, 2 bp spread (1 paid), 3 bp slippage; SEC $20 per million, TAF 1 cent a share up to $5
COSTS = cost_model(commission_bps=1.0, spread_bps=2.0, slippage_bps=3.0, sec_fee_per_million=20.0,
                   finra_taf_per_share=0.01, finra_taf_max=5.0, impact_coef=0.5)  # fmt: skip
CONFIG = execution_config(costs=COSTS)


def test_buy_pays_no_regulatory_fees() -> None:
    # 100 shares at 50; vol 2%, ADV 10,000: impact 0.5 * 0.02 * sqrt(0.01) = 0.001 (10 bp)
    fill = fill_order(100.0, 50.0, CONFIG, volatility=0.02, adv=10_000.0)
    assert fill.price == pytest.approx(50.0 * (1 + 4e-4 + 1e-3), rel=1e-12)
    assert fill.spread == pytest.approx(100 * 50 * 1e-4, rel=1e-12)  # 0.50
    assert fill.slippage == pytest.approx(100 * 50 * 3e-4, rel=1e-12)  # 1.50
    assert fill.impact == pytest.approx(100 * 50 * 1e-3, rel=1e-12)  # 5.00
    assert fill.commission == pytest.approx(100 * 50.07 * 1e-4, rel=1e-12)  # 0.5007
    assert fill.sec_fee == 0.0 and fill.taf == 0.0
    assert fill.cost == pytest.approx(0.5 + 1.5 + 5.0 + 0.5007, rel=1e-12)
    assert fill.charges == fill.commission


def test_sell_pays_sec_fee_and_taf_below_the_cap() -> None:
    fill = fill_order(-200.0, 50.0, CONFIG)  # no liquidity data: no impact
    price = 50.0 * (1 - 4e-4)  # 49.98
    assert fill.price == pytest.approx(price, rel=1e-12) and fill.impact == 0.0
    assert fill.sec_fee == pytest.approx(200 * price * 20e-6, rel=1e-12)  # $20 per million of 9,996 proceeds
    assert fill.taf == pytest.approx(2.0, rel=1e-12)  # 200 shares x 1 cent
    assert fill.charges == pytest.approx(fill.commission + fill.sec_fee + fill.taf, rel=1e-15)
    assert fill.cost == pytest.approx(200 * 50 * 4e-4 + 200 * price * 1e-4 + fill.sec_fee + 2.0, rel=1e-12)


def test_sell_taf_is_capped_per_trade() -> None:
    assert fill_order(-499.0, 10.0, CONFIG).taf == pytest.approx(4.99, rel=1e-12)
    assert fill_order(-500.0, 10.0, CONFIG).taf == pytest.approx(5.0, rel=1e-12)
    assert fill_order(-20_000.0, 10.0, CONFIG).taf == 5.0  # 200 dollars uncapped


def test_default_fees_are_the_settings_values() -> None:
    costs = cost_model()
    fill = fill_order(-100_000.0, 100.0, execution_config(costs=costs))
    assert fill.sec_fee == pytest.approx(100_000 * fill.price * costs.sec_fee_per_million / 1e6, rel=1e-12)
    assert fill.taf == costs.finra_taf_max  # 100,000 shares x $0.000166 = $16.60 > the cap


@pytest.mark.parametrize("factor", [4.0, 9.0, 100.0])
def test_impact_scales_with_the_square_root_of_size(factor: float) -> None:
    small = fill_order(100.0, 50.0, CONFIG, volatility=0.02, adv=1e6)
    large = fill_order(100.0 * factor, 50.0, CONFIG, volatility=0.02, adv=1e6)
    per_share = (large.impact / (100.0 * factor)) / (small.impact / 100.0)
    assert per_share == pytest.approx(math.sqrt(factor), rel=1e-12)  # the fraction grows as sqrt(size)
    assert large.impact / small.impact == pytest.approx(factor**1.5, rel=1e-12)  # the cost as size^1.5
    assert impact_fraction(400.0, 0.01, 1e4, 1.0) == pytest.approx(0.01 * 0.2, rel=1e-12)


@pytest.mark.parametrize(("volatility", "adv"), [(math.nan, 1e6), (0.02, math.nan), (0.0, 1e6), (0.02, 0.0)])
def test_no_liquidity_data_no_impact(volatility: float, adv: float) -> None:
    fill = fill_order(100.0, 50.0, CONFIG, volatility=volatility, adv=adv)
    assert fill.impact == 0.0 and fill.price == 50.0 * (1 + COSTS.price_impact)


def test_costs_never_negative_monotone_in_size_and_summing_to_the_total() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        bps = {name: float(rng.uniform(0, 10)) if rng.random() < 0.8 else 0.0
               for name in ("commission_bps", "spread_bps", "slippage_bps")}  # fmt: skip
        costs = cost_model(**bps, sec_fee_per_million=float(rng.uniform(0, 50)),
                           finra_taf_per_share=float(rng.uniform(0, 0.01)), finra_taf_max=float(rng.uniform(0, 10)),
                           impact_coef=float(rng.uniform(0, 2)))  # fmt: skip
        config = execution_config(costs=costs)
        price, vol, adv = float(rng.uniform(1, 500)), float(rng.uniform(0, 0.05)), float(rng.uniform(1e3, 1e8))
        sign = 1 if rng.random() < 0.5 else -1
        sizes = np.sort(rng.uniform(0, 1e5, 6))
        fills = [fill_order(sign * float(q), price, config, vol, adv) for q in sizes]
        for fill in fills:
            parts = [getattr(fill, name) for name in COST_COMPONENTS]
            assert min(parts) >= 0 and fill.cost >= 0
            assert fill.cost == pytest.approx(math.fsum(parts), rel=1e-12, abs=1e-12)
            if sign > 0:
                assert fill.sec_fee == 0.0 and fill.taf == 0.0
        for before, after in itertools.pairwise(fills):
            assert after.cost >= before.cost
            for name in COST_COMPONENTS:
                assert getattr(after, name) >= getattr(before, name), name


# ---------------------------------------------------------------------------- impact inputs


def test_trailing_liquidity_is_the_raw_realized_vol_and_the_mean_volume() -> None:
    frame = build_features(make_bars(200), feature_spec())
    volatility, adv = trailing_liquidity(frame["log_return"], frame["volume"])
    raw = frame["realized_vol_20"].to_numpy() / math.sqrt(252)  # the un-normalised feature
    np.testing.assert_allclose(volatility[19:], raw[19:], rtol=1e-9)
    np.testing.assert_allclose(adv[19:], frame["volume"].rolling(20).mean().to_numpy()[19:], rtol=1e-12)
    assert np.isnan(volatility[0])  # one return: no volatility yet (no impact)
    assert adv[0] == frame["volume"].iloc[0]  # the first days: the history there is


@pytest.mark.parametrize("t", [3, 40, 120])
def test_no_look_ahead_in_the_impact_inputs(t: int) -> None:
    """Perturb every bar after day t: the impact inputs up to t, and the cost of the fill decided at t, stay."""
    bars = make_bars(260, seed=t)
    spec = feature_spec()
    frame = build_features(bars, spec)
    day = frame.index[t]
    later = bars.index > day
    rng = np.random.default_rng(t)
    perturbed = bars.copy()
    scale = np.exp(rng.normal(0, 0.05, later.sum()))
    for column in ("open", "high", "low", "close", "adj_close"):
        perturbed.loc[later, column] *= scale
    perturbed.loc[later, "volume"] *= rng.uniform(0.1, 10.0, later.sum())
    other = build_features(perturbed, spec)
    normalizer = FeatureNormalizer.fit(frame, spec.observation_columns)
    a = MarketArrays.from_features(frame, normalizer)
    b = MarketArrays.from_features(other, normalizer)
    for x, y in zip(a.liquidity, b.liquidity, strict=True):
        np.testing.assert_array_equal(x[: t + 1], y[: t + 1])
        assert not np.array_equal(x[t + 1 :], y[t + 1 :])
    # the fill decided at t (day t+1's open moved too: fill both at the unperturbed open) costs the same
    config = execution_config(costs=cost_model(impact_coef=1.0))
    reference = float(a.open[t + 1])
    fill_a = fill_order(-500.0, reference, config, a.liquidity[0][t], a.liquidity[1][t])
    fill_b = fill_order(-500.0, reference, config, b.liquidity[0][t], b.liquidity[1][t])
    assert fill_a == fill_b and fill_a.impact > 0
    # and through the env: everything up to the fill decided at t is identical
    env = env_config(execution=config, episode_length=None)
    actions = np.tile([2, 1, 0], len(a))[: len(a)]
    ledger_a = run_policy(a, env, scheduled_policy(actions)).frame
    ledger_b = run_policy(b, env, scheduled_policy(actions)).frame
    columns = [f"cost_{name}" for name in COST_COMPONENTS]
    pd.testing.assert_frame_equal(ledger_a[columns].iloc[: t + 1], ledger_b[columns].iloc[: t + 1])


def test_ledger_breakdown_sums_to_the_costs() -> None:
    frame = build_features(make_bars(300), feature_spec())
    market = MarketArrays.from_features(frame, FeatureNormalizer.fit(frame, feature_spec().observation_columns))
    config = env_config(execution=execution_config(costs=cost_model(impact_coef=1.0)), episode_length=None)
    actions = np.random.default_rng(1).integers(0, 3, len(market))
    ledger = run_policy(market, config, scheduled_policy(actions)).frame
    parts = ledger[[f"cost_{name}" for name in COST_COMPONENTS]]
    np.testing.assert_allclose(parts.sum(axis=1), ledger["costs"], rtol=1e-12, atol=1e-12)
    assert (parts.to_numpy() >= 0).all()
    sells = ledger["shares"].diff() < 0
    buys = ledger["shares"].diff() > 0
    assert (ledger.loc[sells, "cost_sec_fee"] > 0).all() and (ledger.loc[sells, "cost_taf"] > 0).all()
    assert (ledger.loc[buys, ["cost_sec_fee", "cost_taf"]] == 0).all().all()
    assert (ledger.loc[buys | sells, "cost_impact"].iloc[1:] > 0).all()  # the first day may lack history


# ---------------------------------------------------------------------------- compatibility


@pytest.mark.parametrize("version", [1, 2])
def test_an_env_config_without_the_new_fields_loads_them_as_zero(version: int) -> None:
    recorded = env_config().to_dict()
    recorded["version"] = version
    for name in COSTS_BEFORE_FEES:
        del recorded["execution"]["costs"][name]
    if version == 1:
        for name in ("action_space", "weight_levels", "rebalance_band", "reward", "dsr_eta", "drawdown_penalty"):
            del recorded[name]
    loaded = EnvConfig.from_dict(recorded)
    costs = loaded.execution.costs
    assert {name: getattr(costs, name) for name in COSTS_BEFORE_FEES} == COSTS_BEFORE_FEES
    assert costs.commission_bps == env_config().execution.costs.commission_bps
    assert EnvConfig.from_dict(env_config().to_dict()) == env_config()  # the current version round-trips


def test_a_current_env_config_must_record_every_cost() -> None:
    recorded = env_config().to_dict()
    del recorded["execution"]["costs"]["impact_coef"]
    with pytest.raises(TypeError, match="impact_coef"):
        EnvConfig.from_dict(recorded)
