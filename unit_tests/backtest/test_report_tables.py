"""The report's numbers on hand-built ledgers and NAVs: average-cost realised P&L and round trips
(partial rebalances, a flip through flat), yearly and monthly compounding, the worst drawdowns with
their peak, trough, recovery and length, rolling risk, and the tearsheet's offline clean-up."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from finrl.backtest.charts import share_count
from finrl.backtest.tables import monthly_table, rolling_risk, trade_ledger, worst_drawdowns, yearly_table
from finrl.backtest.tearsheet import offline

pytestmark = pytest.mark.unit


def ledger(shares: list[float], prices: list[float], costs: list[float]) -> pd.DataFrame:
    """A ledger frame: a fill on each day whose shares change (at ``prices``, paying ``costs``)."""
    index = pd.bdate_range("2024-01-02", periods=len(shares))
    held = np.array(shares, dtype=float)
    changed = np.diff(np.concatenate([[0.0], held])) != 0
    return pd.DataFrame(
        {
            "shares": held,
            "fill_price": np.where(changed, prices, np.nan),
            "costs": np.where(changed, costs, 0.0),
        },
        index=index,
    )


# ------------------------------------------------------------------ realised P&L and round trips


def test_a_round_trip_with_partial_rebalances_realises_at_average_cost() -> None:
    # buy 10 at 100 (cost 1), add 10 at 110 (cost 1), sell 5 at 120 (cost 0.5), hold, sell 15 at 90 (cost 1.5)
    frame = ledger([10, 20, 15, 15, 0], [100, 110, 120, 0, 90], [1.0, 1.0, 0.5, 0.0, 1.5])
    trades = trade_ledger(frame)
    assert list(trades["side"]) == ["buy", "buy", "sell", "sell"]
    np.testing.assert_allclose(trades["shares"], [10, 10, 5, 15])
    basis = (10 * 100 + 1 + 10 * 110 + 1) / 20  # 105.1 a share, costs included
    assert trades["average_cost"].iloc[1] == pytest.approx(basis)
    first = 5 * (120 - basis) - 0.5
    second = 15 * (90 - basis) - 1.5
    assert math.isnan(trades["realized_pnl"].iloc[0]) and math.isnan(trades["realized_pnl"].iloc[1])
    assert trades["realized_pnl"].iloc[2] == pytest.approx(first)
    assert trades["realized_pnl"].iloc[3] == pytest.approx(second)
    assert trades["average_cost"].iloc[2] == pytest.approx(basis)  # reducing leaves the average cost
    assert math.isnan(trades["average_cost"].iloc[3])  # flat
    assert list(trades["round_trip"]) == [1, 1, 1, 1]
    assert trades["round_trip_pnl"].iloc[:3].isna().all()
    # the trip's P&L is its cash: proceeds less outlays less every cost
    cash = 5 * 120 + 15 * 90 - 10 * 100 - 10 * 110 - (1 + 1 + 0.5 + 1.5)
    assert trades["round_trip_pnl"].iloc[3] == pytest.approx(cash)
    assert first + second == pytest.approx(cash)


def test_round_trips_are_counted_from_flat_to_flat() -> None:
    frame = ledger([5, 0, 0, 8, 0], [10, 12, 0, 11, 10], [0.1, 0.1, 0.0, 0.2, 0.2])
    trades = trade_ledger(frame)
    assert list(trades["round_trip"]) == [1, 1, 2, 2]
    pnl = trades["round_trip_pnl"].dropna().to_numpy()
    np.testing.assert_allclose(pnl, [5 * 2 - 0.2, 8 * -1 - 0.4])


def test_a_flip_through_flat_closes_one_trip_and_opens_the_next() -> None:
    # long 10 at 100, then sell 15 at 110 (closes 10, opens 5 short), then buy 5 at 100 (covers)
    frame = ledger([10, -5, 0], [100, 110, 100], [1.0, 1.5, 0.5])
    trades = trade_ledger(frame)
    long_pnl = 10 * (110 - (100 + 0.1)) - 1.5 * 10 / 15
    short_basis = 110 - (1.5 * 5 / 15) / 5  # short proceeds net of its share of the cost
    short_pnl = 5 * (short_basis - 100) - 0.5
    assert list(trades["round_trip"]) == [1, 1, 2]
    assert trades["realized_pnl"].iloc[1] == pytest.approx(long_pnl)
    assert trades["round_trip_pnl"].iloc[1] == pytest.approx(long_pnl)
    assert trades["average_cost"].iloc[1] == pytest.approx(short_basis)
    assert trades["round_trip_pnl"].iloc[2] == pytest.approx(short_pnl)
    total_cash = -10 * 100 + 15 * 110 - 5 * 100 - 3.0
    assert long_pnl + short_pnl == pytest.approx(total_cash)


def test_costs_already_in_the_fill_price_are_not_charged_twice() -> None:
    # spread, slippage and impact are in the fill price; only the rest (commission, fees) is paid on top
    frame = ledger([10, 0], [100, 110], [3.0, 4.0])
    frame["cost_spread"] = [1.0, 1.5]
    frame["cost_commission"] = frame["costs"] - frame["cost_spread"]
    trades = trade_ledger(frame)
    np.testing.assert_allclose(trades["fees"], [2.0, 2.5])
    np.testing.assert_allclose(trades["costs"], [3.0, 4.0])
    assert trades["round_trip_pnl"].iloc[1] == pytest.approx(10 * 10 - 2.0 - 2.5)


def test_dividends_are_realised_with_the_shares_that_earned_them() -> None:
    # long 10 at 100; 1.50 a share paid on day 2; sell 4 at 100; 1.00 paid on day 4 on the 6 left; sell 6 at 100
    frame = ledger([10, 10, 6, 6, 0], [100, 0, 100, 0, 100], [0.0] * 5)
    trades = trade_ledger(frame, np.array([0.0, 1.5, 0.0, 1.0, 0.0]))
    assert trades["average_cost"].iloc[1] == pytest.approx(100 - 1.5)  # a return of capital
    np.testing.assert_allclose(trades["realized_pnl"].iloc[1:], [4 * 1.5, 6 * (1.5 + 1.0)])
    assert trades["round_trip_pnl"].iloc[-1] == pytest.approx(10 * 1.5 + 6 * 1.0)  # the cash the trip made


def test_a_short_pays_the_dividend() -> None:
    frame = ledger([-5, -5, 0], [100, 0, 100], [0.0] * 3)
    trades = trade_ledger(frame, np.array([0.0, 2.0, 0.0]))
    assert trades["round_trip_pnl"].iloc[-1] == pytest.approx(-5 * 2.0)


def test_a_dividend_paid_on_a_fill_day_belongs_to_the_shares_held_before_the_fill() -> None:
    # held 10 at the previous close; the day's dividend (1.0) is paid before its fill sells all 10
    frame = ledger([10, 0], [100, 100], [0.0, 0.0])
    trades = trade_ledger(frame, np.array([0.0, 1.0]))
    assert trades["round_trip_pnl"].iloc[-1] == pytest.approx(10.0)


def test_realised_and_open_pnl_add_up_to_the_nav_change_through_the_env_with_dividends() -> None:
    from finrl.meta.env.market_arrays import MarketArrays
    from finrl.meta.env.rollout import run_policy, scheduled_policy
    from unit_tests.conftest import discrete3_config

    days = 40
    rng = np.random.default_rng(3)
    close = 100 * np.cumprod(1 + rng.normal(0, 0.01, days))
    dividends = np.zeros(days)
    dividends[[7, 19, 31]] = [0.8, 1.5, 0.6]  # ex-dates while held, while flat, and on a sell day
    market = MarketArrays(
        dates=np.array(pd.bdate_range("2021-01-04", periods=days), dtype="datetime64[ns]"),
        features=np.zeros((days, 2), dtype=np.float32),
        open=close * (1 + rng.normal(0, 0.002, days)),
        close=close,
        dividends=dividends,
    )
    actions = np.ones(days, dtype=int)  # hold
    actions[[2, 24]], actions[[15, 30]] = 2, 0  # buy, sell (filled the next open)
    config = discrete3_config(episode_length=None, random_start=False)
    frame = run_policy(market, config, scheduled_policy(actions)).frame
    trades = trade_ledger(frame, market.dividends)
    held = frame["shares"].iloc[-1]
    open_pnl = held * (close[-1] - trades["average_cost"].iloc[-1]) if held else 0.0
    change = frame["nav"].iloc[-1] - frame["nav"].iloc[0]
    assert trades["realized_pnl"].sum() + open_pnl == pytest.approx(change, abs=1e-6)
    assert trades["round_trip_pnl"].count() == 2


def test_no_fill_no_trade() -> None:
    trades = trade_ledger(ledger([0, 0, 0], [0, 0, 0], [0, 0, 0]))
    assert trades.empty and "round_trip_pnl" in trades.columns


# ------------------------------------------------------------------ period returns


def nav_over(days: pd.DatetimeIndex, seed: int = 3) -> pd.Series:
    returns = np.random.default_rng(seed).normal(0.0004, 0.012, len(days))
    returns[0] = 0.0
    return pd.Series(1000.0 * np.cumprod(1 + returns), index=days)


def test_yearly_and_monthly_returns_compound_the_nav() -> None:
    days = pd.bdate_range("2021-11-15", "2023-02-10")
    navs = {"agent": nav_over(days, 1), "buy_and_hold": nav_over(days, 2)}
    table = yearly_table(navs)
    assert list(table.index) == [2021, 2022, 2023]
    for name, nav in navs.items():
        year_end = nav.groupby(nav.index.year).last()
        previous = pd.concat([pd.Series([nav.iloc[0]]), year_end.iloc[:-1]]).to_numpy()
        np.testing.assert_allclose(table[name].to_numpy(), year_end.to_numpy() / previous - 1, rtol=1e-10)
    months = monthly_table(navs["agent"])
    nav = navs["agent"]
    assert months.loc[2022, 3] == pytest.approx(nav["2022-03"].iloc[-1] / nav["2022-02"].iloc[-1] - 1, rel=1e-10)
    assert months.loc[2021, 11] == pytest.approx(nav["2021-11"].iloc[-1] / nav.iloc[0] - 1, rel=1e-10)
    assert math.isnan(months.loc[2021, 10]) and math.isnan(months.loc[2023, 3])
    assert months.loc[2022, "year"] == pytest.approx(table.loc[2022, "agent"], rel=1e-12)
    np.testing.assert_allclose(np.prod(1 + months.loc[2022, list(range(1, 13))]) - 1, months.loc[2022, "year"])


# ------------------------------------------------------------------ drawdowns


def test_worst_drawdowns_of_a_hand_built_nav() -> None:
    values = [100, 110, 99, 88, 110, 120, 114, 126, 100, 105, 90, 95]
    nav = pd.Series(values, index=pd.bdate_range("2024-03-01", periods=len(values)), dtype=float)
    table = worst_drawdowns(nav)
    days = nav.index
    assert len(table) == 3
    deepest, second, third = (table.iloc[i] for i in range(3))
    # 126 -> 90, not recovered by the window's end (4 trading days after the peak)
    assert deepest["peak"] == days[7] and deepest["trough"] == days[10] and pd.isna(deepest["recovery"])
    assert not deepest["recovered"] and deepest["length_days"] == 4
    assert deepest["depth"] == pytest.approx(90 / 126 - 1)
    # 110 -> 88, back to 110 three days after the peak
    assert second["peak"] == days[1] and second["trough"] == days[3] and second["recovery"] == days[4]
    assert second["recovered"] and second["length_days"] == 3
    assert second["depth"] == pytest.approx(88 / 110 - 1)
    assert third["peak"] == days[5] and third["recovery"] == days[7] and third["depth"] == pytest.approx(-0.05)
    assert list(worst_drawdowns(nav, top=1)["depth"]) == [deepest["depth"]]


def test_a_nav_that_only_rises_has_no_drawdown() -> None:
    nav = pd.Series([1.0, 2.0, 3.0], index=pd.bdate_range("2024-01-01", periods=3))
    assert worst_drawdowns(nav).empty


# ------------------------------------------------------------------ rolling risk


def test_rolling_sharpe_and_volatility_over_126_days() -> None:
    nav = nav_over(pd.bdate_range("2020-01-01", periods=300))
    rolled = rolling_risk(nav, risk_free_rate=0.02)
    returns = nav.pct_change().iloc[1:]
    excess = returns - 0.02 / 252
    expected_sharpe = excess.rolling(126).mean() / excess.rolling(126).std(ddof=1) * math.sqrt(252)
    expected_vol = returns.rolling(126).std(ddof=1) * math.sqrt(252)
    assert len(rolled) == len(returns) - 125 and rolled.index[0] == returns.index[125]
    np.testing.assert_allclose(rolled["sharpe"], expected_sharpe.dropna(), rtol=1e-9)
    np.testing.assert_allclose(rolled["volatility"], expected_vol.dropna(), rtol=1e-9)
    assert rolling_risk(nav.iloc[:100], 0.0).empty


# ------------------------------------------------------------------ the tearsheet, offline


def test_the_tearsheet_loses_its_network_references() -> None:
    page = (
        '<head>\n  <link rel="shortcut icon" href="https://qtpylib.io/favicon.ico" type="image/x-icon">\n</head>'
        '<h4>Generated by <a href="http://quantstats.io" target="quantstats">QuantStats</a> (v. 0.0.86)</h4>'
        '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        '<svg xmlns="http://www.w3.org/2000/svg"><metadata><dc:date>2026-01-01T10:00:00</dc:date></metadata></svg>'
    )
    clean = offline(page)
    assert "qtpylib" not in clean and "quantstats.io" not in clean and "dc:date" not in clean
    assert "Generated by QuantStats (v. 0.0.86)" in clean and "DOCTYPE" not in clean
    assert '<svg xmlns="http://www.w3.org/2000/svg">' in clean  # a namespace name, never fetched
    with pytest.raises(ValueError, match="references a URL"):
        offline('<img src="https://example.com/x.png">')
    with pytest.raises(ValueError, match="references a URL"):
        offline('<script src="//cdn.example.com/x.js"></script>')


def test_the_tearsheet_calls_no_undefined_function_on_load() -> None:
    """quantstats' template runs save() on load, defined only when the page is offered as a download."""
    assert offline('<body onload="save()">\n<div class="container">') == '<body>\n<div class="container">'


@pytest.mark.parametrize(
    ("shares", "shown"), [(12345.0, "12,345"), (-250.0, "-250"), (12.345678, "12.3457"), (0.5, "0.5"), (0.0, "0")]
)
def test_share_counts_read_plainly(shares: float, shown: str) -> None:
    assert share_count(shares) == shown
