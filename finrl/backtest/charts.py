"""The report's charts: interactive plotly figures for report.html and the static equity.png.

plotly and matplotlib are imported inside the functions: ``import finrl.backtest.report`` stays light
for commands that never draw. Figures carry fixed div ids and no random state, so the same result
gives the same bytes.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from finrl.backtest.engine import AGENT, BacktestResult
from finrl.backtest.tables import ROLLING_DAYS, exposure, rolling_risk
from finrl.performance import daily_returns, drawdown

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

STRATEGY_LABELS = {
    AGENT: "Agent",
    "buy_and_hold": "Buy and hold",
    "flat": "Flat (cash)",
    "sma_crossover": "SMA crossover (30/60)",
}
COLOURS = {AGENT: "#1f4e9c", "buy_and_hold": "#e07b00", "flat": "#8c8c8c", "sma_crossover": "#2e9e5b"}
DASHES = {AGENT: "solid", "buy_and_hold": "dash", "flat": "dot", "sma_crossover": "dashdot"}
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}  # no plotly logo linking to plotly.com


def label(name: str) -> str:
    return STRATEGY_LABELS.get(name, name.replace("_", " "))


def _dates(index: pd.Index) -> list[str]:
    return [f"{day:%Y-%m-%d}" for day in pd.DatetimeIndex(index)]


def _values(series: pd.Series, scale: float = 1.0) -> list[float | None]:
    """Plain floats rounded to 6 significant places (the page's size), NaN as a gap."""
    return [None if not np.isfinite(v) else float(f"{v * scale:.6g}") for v in series.to_numpy(dtype=float)]


def equity_figure(result: BacktestResult, trades: pd.DataFrame) -> Figure:
    """Equity of every strategy, the agent's position as a band, its fills as markers, drawdowns below.

    A button switches the equity axis between linear and log scale.
    """
    from plotly import graph_objects as go
    from plotly.subplots import make_subplots

    agent = result.ledgers[AGENT].frame
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04,
        specs=[[{"secondary_y": True}], [{"secondary_y": False}]],
    )  # fmt: skip
    held = exposure(agent, result.prices["close"])
    fig.add_trace(
        go.Scatter(
            x=_dates(agent.index), y=_values(held, 100), name="Agent position (% of equity)",
            fill="tozeroy", mode="none", line={"shape": "hv"}, fillcolor="rgba(31,78,156,0.12)",
            hovertemplate="%{x}<br>position %{y:.0f}% of equity<extra></extra>",
        ),
        row=1, col=1, secondary_y=True,
    )  # fmt: skip
    for name, ledger in result.ledgers.items():
        fig.add_trace(
            go.Scatter(
                x=_dates(ledger.nav.index), y=_values(ledger.nav), name=label(name), mode="lines",
                line={"color": COLOURS.get(name), "dash": DASHES.get(name, "solid"),
                      "width": 2.2 if name == AGENT else 1.4},
                hovertemplate=f"{label(name)}<br>%{{x}}<br>$%{{y:,.2f}}<extra></extra>",
            ),
            row=1, col=1,
        )  # fmt: skip
    for side, symbol, colour in (("buy", "triangle-up", "#1a9641"), ("sell", "triangle-down", "#d7191c")):
        fills = trades[trades["side"] == side]
        custom = [
            [share_count(p), share_count(s), f"{f:,.2f}", f"{c:,.2f}", dollars(r), dollars(t)]
            for p, s, f, c, r, t in zip(
                fills["position_shares"], fills["shares"], fills["fill_price"], fills["costs"],
                fills["realized_pnl"], fills["round_trip_pnl"], strict=True,
            )
        ]  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=_dates(fills.index), y=_values(agent["nav"].reindex(fills.index)), name=f"Agent {side}s",
                mode="markers", customdata=custom,
                marker={"symbol": symbol, "size": 9, "color": colour, "line": {"width": 0.5, "color": "#222"}},
                hovertemplate=(
                    f"<b>{side}</b> %{{x}}<br>shares %{{customdata[1]}} at $%{{customdata[2]}}<br>"
                    "cost $%{customdata[3]}<br>position after %{customdata[0]} shares<br>"
                    "realised P&L (average cost) %{customdata[4]}<br>round-trip P&L %{customdata[5]}<extra></extra>"
                ),
            ),
            row=1, col=1,
        )  # fmt: skip
    for name in (AGENT, "buy_and_hold"):
        nav = result.ledgers[name].nav
        fig.add_trace(
            go.Scatter(
                x=_dates(nav.index), y=_values(drawdown(nav), 100), name=f"{label(name)} drawdown", mode="lines",
                line={"color": COLOURS[name], "dash": DASHES[name], "width": 1.2},
                fill="tozeroy" if name == AGENT else None, fillcolor="rgba(31,78,156,0.18)",
                hovertemplate=f"{label(name)} drawdown<br>%{{x}}<br>%{{y:.2f}}%<extra></extra>",
            ),
            row=2, col=1,
        )  # fmt: skip
    fig.update_yaxes(title_text="NAV ($)", row=1, col=1, secondary_y=False)
    # the band keeps to the lower part of the chart (100% at 40% of its height): the curves stay readable
    low = min(0.0, float(np.nanmin(held.to_numpy(dtype=float))) * 100)
    ticks = [t for t in (-100, -50, 0, 50, 100) if t >= low - 1e-9]
    fig.update_yaxes(
        title_text="position (% of equity)", row=1, col=1, secondary_y=True, showgrid=False,
        range=[low, max(100.0, float(np.nanmax(held.to_numpy(dtype=float))) * 100) * 2.5], tickvals=ticks,
        ticksuffix="%",
    )  # fmt: skip
    fig.update_yaxes(title_text="drawdown (%)", row=2, col=1)
    fig.update_layout(
        height=720, hovermode="closest", legend={"orientation": "h", "y": -0.08},
        margin={"l": 60, "r": 60, "t": 50, "b": 40}, template="plotly_white",
        updatemenus=[{
            "type": "buttons", "direction": "right", "x": 0.0, "y": 1.08, "xanchor": "left", "showactive": True,
            "buttons": [
                {"label": "Linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                {"label": "Log scale", "method": "relayout", "args": [{"yaxis.type": "log"}]},
            ],
        }],
    )  # fmt: skip
    return fig


def share_count(value: float) -> str:
    """Whole shares as 1,234; fractional ones to four places (12.3457), never in exponent notation."""
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.4f}".rstrip("0")


def dollars(value: float) -> str:
    """-$75.57, not $-75.57; a dash for no value (a fill that realised nothing)."""
    if not np.isfinite(value):
        return "\N{EM DASH}"
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def rolling_figure(result: BacktestResult) -> Figure | None:
    """Rolling six-month Sharpe and volatility of the agent and buy-and-hold; None when the window is shorter."""
    from plotly import graph_objects as go
    from plotly.subplots import make_subplots

    rolled = {name: rolling_risk(result.ledgers[name].nav, result.risk_free_rate) for name in (AGENT, "buy_and_hold")}
    if all(frame.empty for frame in rolled.values()):
        return None
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
        subplot_titles=(
            f"Rolling {ROLLING_DAYS}-day Sharpe ratio (annualised, rf {result.risk_free_rate:.2%})",
            f"Rolling {ROLLING_DAYS}-day volatility (annualised, %)",
        ),
    )  # fmt: skip
    for name, frame in rolled.items():
        for row, column, scale in ((1, "sharpe", 1.0), (2, "volatility", 100.0)):
            fig.add_trace(
                go.Scatter(
                    x=_dates(frame.index), y=_values(frame[column], scale), mode="lines",
                    name=f"{label(name)} {column}", legendgroup=name,
                    line={"color": COLOURS[name], "dash": DASHES[name], "width": 1.6},
                    hovertemplate=f"{label(name)}<br>%{{x}}<br>%{{y:.2f}}<extra></extra>",
                ),
                row=row, col=1,
            )  # fmt: skip
    fig.update_layout(
        height=520, template="plotly_white", legend={"orientation": "h", "y": -0.1},
        margin={"l": 60, "r": 30, "t": 50, "b": 40},
    )  # fmt: skip
    return fig


def distribution_figure(result: BacktestResult) -> Figure:
    """Histograms of the agent's and buy-and-hold's daily returns (%) on the same bins."""
    from plotly import graph_objects as go

    returns = {name: daily_returns(result.ledgers[name].nav) * 100 for name in (AGENT, "buy_and_hold")}
    low = min(float(r.min()) for r in returns.values())
    high = max(float(r.max()) for r in returns.values())
    size = max((high - low) / 60, 1e-6)
    fig = go.Figure()
    for name, series in returns.items():
        fig.add_trace(
            go.Histogram(
                x=_values(series), name=label(name), opacity=0.6, marker={"color": COLOURS[name]},
                xbins={"start": low, "end": high + size, "size": size},
                hovertemplate=f"{label(name)}<br>%{{x}}%: %{{y}} days<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(
        barmode="overlay", height=380, template="plotly_white", xaxis_title="daily return (%)",
        yaxis_title="days", legend={"orientation": "h", "y": -0.2}, margin={"l": 60, "r": 30, "t": 20, "b": 40},
    )  # fmt: skip
    return fig


def figure_html(fig: Figure, div_id: str) -> str:
    """A figure as a ``<div>`` and its script, without plotly.js (the page embeds it once)."""
    html: str = fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOTLY_CONFIG, include_mathjax=False
    )
    return html


def plotly_js() -> str:
    """plotly.js itself, to embed once per page (offline, no CDN)."""
    from plotly.offline import get_plotlyjs

    script: str = get_plotlyjs()
    return script


def equity_png(result: BacktestResult) -> bytes:
    """Agent vs buy-and-hold with the agent's fills, and both drawdowns, as a PNG (README and CI show it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agent = result.ledgers[AGENT].frame
    bench = result.ledgers["buy_and_hold"].nav
    # the default style whatever another library (seaborn via quantstats) set: reruns draw the same pixels
    with plt.style.context("default"):
        fig, (ax_nav, ax_dd) = plt.subplots(
            2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, dpi=100
        )
        _draw_equity(ax_nav, ax_dd, agent, bench)
        title = f"Agent vs buy-and-hold, {result.window.start} \N{EN DASH} {result.window.end}"
        fig.suptitle(title, fontsize=13, fontweight="bold")
        ax_nav.set_title(result.bundle.run_name, fontsize=8, color="#666666")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})  # no timestamps: reruns are byte-identical
        plt.close(fig)
    return buffer.getvalue()


def _draw_equity(ax_nav: Any, ax_dd: Any, agent: pd.DataFrame, bench: pd.Series) -> None:
    agent_colour, bench_colour = COLOURS[AGENT], COLOURS["buy_and_hold"]
    # buy-and-hold under the agent, dashed and in a contrasting colour: where they overlap both stay visible
    ax_nav.plot(bench.index, bench, label="Buy and hold", color=bench_colour, lw=1.6, ls="--", zorder=2)
    ax_nav.plot(agent.index, agent["nav"], label="Agent", color=agent_colour, lw=1.6, zorder=3)
    delta = agent["shares"].diff()
    buys, sells = agent.index[delta > 0], agent.index[delta < 0]
    ax_nav.scatter(buys, agent.loc[buys, "nav"], marker="^", color="#1a9641", s=26, label="Agent buy", zorder=4)
    ax_nav.scatter(sells, agent.loc[sells, "nav"], marker="v", color="#d7191c", s=26, label="Agent sell", zorder=4)
    ax_nav.set_ylabel("NAV ($)")
    ax_nav.legend(loc="upper left", fontsize=9)
    ax_nav.grid(alpha=0.3)
    ax_dd.fill_between(agent.index, drawdown(agent["nav"]) * 100, 0, color=agent_colour, alpha=0.3, label="Agent")
    ax_dd.plot(bench.index, drawdown(bench) * 100, color=bench_colour, lw=1.1, ls="--", label="Buy and hold")
    ax_dd.set_ylabel("drawdown (%)")
    ax_dd.legend(loc="lower left", fontsize=8)
    ax_dd.grid(alpha=0.3)
