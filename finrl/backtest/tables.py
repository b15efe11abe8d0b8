"""The numbers behind the backtest report: trades with realised P&L, period returns, drawdowns, rolling risk.

Pure pandas/NumPy (empyrical where it has the computation); the report's pages only format them.

Realised P&L follows the average-cost rule, so it also covers the weight action spaces' partial
rebalances: a fill that opens or adds to a position folds its shares and fees into the position's
average cost; a fill that reduces it realises ``closed shares x (fill price - average cost)`` (sign
flipped for a short) less that fill's fees. The fill price already carries the spread, slippage and
impact (:mod:`finrl.meta.env.execution`); the fees are what is paid in cash on top of it (commission,
SEC fee, FINRA TAF). A cash dividend received on a long position (paid on a short one) lowers (raises)
its average cost by the dividend a share, as a return of capital, so it is realised with the shares
that earned it; realised P&L plus the open position's P&L therefore add up to the NAV's change exactly.
A **round trip** runs from the fill that opens a position from flat to the fill that brings it back to
flat (or flips it through flat); its P&L is the sum of the realised P&L of its reducing fills: the cash
it made after all costs, dividends included.
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import pandas as pd

from finrl.backtest.engine import AGENT, BacktestResult
from finrl.performance import TRADING_DAYS, daily_returns, drawdown

PRICE_COSTS = ("spread", "slippage", "impact")  # in the fill price; the other components are paid in cash
ROLLING_DAYS = 126  # about six months of trading days
WORST_DRAWDOWNS = 5


def trade_ledger(frame: pd.DataFrame, dividends: np.ndarray | None = None) -> pd.DataFrame:
    """One row per fill of a ledger frame (shares, fill_price, costs, cost_<component>), with realised P&L.

    ``dividends``: the cash per share each row's day pays to the shares held at the previous close
    (:attr:`MarketArrays.dividends` of the same days), paid before that day's fill; None: no dividends.

    Columns: side, shares (traded, > 0), fill_price, notional, costs (every component, as the ledger),
    fees (the part paid in cash on top of the fill price), position_shares (after the fill),
    average_cost (of what stays open, fees included; NaN when flat), realized_pnl (NaN on a fill that
    only opens or adds), round_trip (1, 2, ... the round trip the fill belongs to) and round_trip_pnl
    (on the fill that closes a round trip: the trip's total; NaN elsewhere).
    """
    shares = frame["shares"].to_numpy(dtype=float)
    previous = np.concatenate([[0.0], shares[:-1]])
    filled = frame["fill_price"].notna().to_numpy()
    fees = frame["costs"].fillna(0.0)
    for name in PRICE_COSTS:
        if f"cost_{name}" in frame:
            fees = fees - frame[f"cost_{name}"].fillna(0.0)
    paid = np.zeros(len(frame)) if dividends is None else np.asarray(dividends, dtype=float)
    if len(paid) != len(frame):
        raise ValueError(f"{len(paid)} dividends for a ledger of {len(frame)} days")
    # dividends a share up to each day, its own included (paid at the previous close, before its fill)
    per_share_paid = np.cumsum(paid)
    rows: list[dict[str, Any]] = []
    held, basis, trip, trip_pnl = 0.0, 0.0, 0, 0.0  # basis: average cost a share, fees included
    last_paid = 0.0  # per_share_paid at the previous fill
    for day, before, after, price, fee, cost, paid_so_far in zip(
        frame.index[filled], previous[filled], shares[filled],
        frame["fill_price"].to_numpy(dtype=float)[filled], fees.to_numpy(dtype=float)[filled],
        frame["costs"].fillna(0.0).to_numpy(dtype=float)[filled], per_share_paid[filled], strict=True,
    ):  # fmt: skip
        if held != 0:  # the position is unchanged between fills: every share got the same dividends
            basis -= paid_so_far - last_paid
        last_paid = paid_so_far
        traded = after - before
        if traded == 0:
            continue
        if held == 0:
            trip, trip_pnl = trip + 1, 0.0
        realized = math.nan
        closes_trip = False
        reducing = held != 0 and np.sign(traded) != np.sign(held)
        if reducing:
            closed = min(abs(traded), abs(held))
            share_of_fee = fee * closed / abs(traded)  # a flip pays the rest of the fee on its new position
            realized = closed * (price - basis) * np.sign(held) - share_of_fee
            trip_pnl += realized
            opened = abs(traded) - closed
            closes_trip = abs(after) < 1e-12 or np.sign(after) != np.sign(held)
            held = after
            if opened > 0:  # flipped through flat: the rest opens a new position at this fill
                basis = price + (fee - share_of_fee) / opened * np.sign(after)
            elif abs(after) < 1e-12:
                held, basis = 0.0, 0.0
        else:  # opens or adds: the new shares and their fees join the average cost
            basis = (basis * abs(held) + price * abs(traded) + fee * np.sign(traded)) / abs(after)
            held = after
        rows.append(
            {
                "date": day,
                "side": "buy" if traded > 0 else "sell",
                "shares": abs(traded),
                "fill_price": price,
                "notional": abs(traded) * price,
                "costs": cost,
                "fees": fee,
                "position_shares": after,
                "average_cost": basis if held != 0 else math.nan,
                "realized_pnl": realized,
                "round_trip": trip,
                "round_trip_pnl": trip_pnl if closes_trip else math.nan,
            }
        )
        if closes_trip and held != 0:  # a flip: the new position is the next round trip
            trip, trip_pnl = trip + 1, 0.0
    columns = ["side", "shares", "fill_price", "notional", "costs", "fees", "position_shares", "average_cost",
               "realized_pnl", "round_trip", "round_trip_pnl"]  # fmt: skip
    if not rows:
        return pd.DataFrame(columns=columns, index=pd.DatetimeIndex([], name="date"))
    return pd.DataFrame(rows).set_index("date")[columns]


def agent_trades(result: BacktestResult) -> pd.DataFrame:
    """The agent's fills with realised and round-trip P&L (:func:`trade_ledger`), the window's dividends included."""
    return trade_ledger(result.ledgers[AGENT].frame, result.market.dividends)


def period_returns(nav: pd.Series, period: str) -> pd.Series:
    """Compounded returns per calendar ``period`` ("yearly" or "monthly") of a daily NAV, via empyrical.

    The NAV's first row is the starting state, so the first period counts from the starting capital.
    """
    import empyrical

    returns: pd.Series = empyrical.aggregate_returns(daily_returns(nav), period)
    return returns


def monthly_table(nav: pd.Series) -> pd.DataFrame:
    """Year x month (1..12) table of compounded returns, with the year's total in column "year"."""
    monthly = period_returns(nav, "monthly")
    table = monthly.unstack()
    table = table.reindex(columns=range(1, 13))
    table["year"] = period_returns(nav, "yearly")
    return table


def yearly_table(navs: dict[str, pd.Series]) -> pd.DataFrame:
    """One row per calendar year, one column per strategy: compounded returns."""
    return pd.DataFrame({name: period_returns(nav, "yearly") for name, nav in navs.items()})


def worst_drawdowns(nav: pd.Series, top: int = WORST_DRAWDOWNS) -> pd.DataFrame:
    """The ``top`` deepest drawdowns: peak, trough, recovery (NaT: not recovered), depth and length.

    Written here rather than taken from quantstats' ``drawdown_details``: that table starts a drawdown
    on its first day under water (not at the peak), ends it on its last day under water whether or
    not it recovered, and counts calendar days; a quant reads peak-to-recovery in trading days with an
    unrecovered drawdown said as such. (empyrical has no drawdown table.) Length counts trading days
    from the peak to the recovery, or to the window's last day when not recovered.
    """
    below = drawdown(nav).to_numpy(dtype=float)
    under = below < 0
    rows: list[dict[str, Any]] = []
    i, n = 0, len(below)
    while i < n:
        if not under[i]:
            i += 1
            continue
        start = i - 1  # the peak: the last day at the high-water mark (day 0 is never under water)
        end = i
        while end < n and under[end]:
            end += 1
        trough = i + int(np.argmin(below[i:end]))  # one peak for the whole span: the lowest NAV
        recovered = end < n
        rows.append(
            {
                "peak": nav.index[start],
                "trough": nav.index[trough],
                "recovery": nav.index[end] if recovered else pd.NaT,
                "depth": below[trough],
                "length_days": (end if recovered else n - 1) - start,
                "recovered": recovered,
            }
        )
        i = end
    columns = ["peak", "trough", "recovery", "depth", "length_days", "recovered"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["depth", "peak"], kind="stable").head(top).reset_index(drop=True)


def rolling_risk(nav: pd.Series, risk_free_rate: float, window: int = ROLLING_DAYS) -> pd.DataFrame:
    """Rolling annualised Sharpe (in excess of ``risk_free_rate``) and volatility over ``window`` days."""
    import empyrical

    returns = daily_returns(nav)
    if len(returns) < window:
        return pd.DataFrame({"sharpe": pd.Series(dtype=float), "volatility": pd.Series(dtype=float)})
    with np.errstate(invalid="ignore", divide="ignore"):  # a flat stretch has no Sharpe: NaN, a gap in the line
        sharpe = empyrical.roll_sharpe_ratio(returns, window=window, risk_free=risk_free_rate / TRADING_DAYS)
        volatility = empyrical.roll_annual_volatility(returns, window=window)
    return pd.DataFrame({"sharpe": sharpe, "volatility": volatility}).replace([np.inf, -np.inf], np.nan)


def exposure(frame: pd.DataFrame, close: pd.Series) -> pd.Series:
    """The fraction of equity held in the market at each close (negative when short)."""
    return (frame["shares"] * close / frame["nav"]).fillna(0.0)


def return_stats(nav: pd.Series) -> dict[str, float]:
    """Shape of the daily return distribution: mean, standard deviation, skew, excess kurtosis, extremes."""
    returns = daily_returns(nav)
    return {
        "mean": float(returns.mean()),
        "std": float(returns.std(ddof=1)),
        "skew": float(cast(float, returns.skew())),
        "kurtosis": float(cast(float, returns.kurt())),  # excess (a normal distribution: 0)
        "best": float(np.max(returns.to_numpy(dtype=float))),
        "worst": float(np.min(returns.to_numpy(dtype=float))),
    }
