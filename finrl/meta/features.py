"""Technical features for the agent, computed with stockstats from data up to each day only.

Indicators run on dividend-adjusted OHLC (open/high/low scaled by adj_close/close) so that an
ex-dividend day is not a fake price drop. Indicators measured in price units (MACD, Bollinger
bands, moving averages) enter the observation as ratios to the adjusted close: their level
depends on the adjustment basis and the price era, their ratio does not.

Optional regime features (``FeatureSpec.regime_features``, off by default) describe the market's
state rather than its trend: how volatility now compares with its recent norm (``vol_ratio``), how
far the price sits below its trailing one-year peak (``drawdown``), and how fast fear is moving
(``vix_change``, only with VIX: without a VIX column the regime set has two columns).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from finrl.errors import DataError

DEFAULT_INDICATORS: tuple[str, ...] = (
    "macd",
    "boll_ub",
    "boll_lb",
    "rsi_30",
    "cci_30",
    "dx_30",
    "close_30_sma",
    "close_60_sma",
)
_PRICE_LEVEL = re.compile(r"^(macd[sh]?|boll(_ub|_lb)?(_\d+)?|(open|high|low|close)_\d+_(sma|ema|smma|tema|wma|mstd))$")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close", "volume")
REGIME_FIELDS: tuple[str, ...] = (
    "regime_features",
    "vol_ratio_short",
    "vol_ratio_long",
    "drawdown_window",
    "vix_change_lag",
)


@dataclass(frozen=True)
class FeatureSpec:
    """Which features the observation holds and how they are computed (saved with a model).

    ``use_vix`` is a setting (``Settings`` holds its default); the indicator parameters are not.
    """

    use_vix: bool
    indicators: tuple[str, ...] = DEFAULT_INDICATORS
    volatility_window: int = 20
    turbulence_window: int = 60
    version: int = 1
    regime_features: bool = False  # a setting, like use_vix; the windows below are not
    vol_ratio_short: int = 10  # vol_ratio = realised vol over this many days / over vol_ratio_long days
    vol_ratio_long: int = 60
    drawdown_window: int = 252  # the trailing peak of drawdown: one year of sessions
    vix_change_lag: int = 5  # vix_change = log(VIX_t / VIX_{t-lag}): a trading week

    def __post_init__(self) -> None:
        if not 2 <= self.vol_ratio_short < self.vol_ratio_long:
            raise ValueError(
                f"vol_ratio needs 2 <= short < long windows, got {self.vol_ratio_short}, {self.vol_ratio_long}"
            )
        if self.drawdown_window < 1 or self.vix_change_lag < 1:
            raise ValueError("drawdown_window and vix_change_lag must be at least 1")

    @property
    def warmup_bars(self) -> int:
        """Rows dropped at the start: the longest window, plus the return's lag and turbulence's shift."""
        windows = [self.volatility_window, self.turbulence_window, *map(_window_of, self.indicators)]
        if self.regime_features:
            windows += [self.vol_ratio_long, self.drawdown_window, self.vix_change_lag]
        return max(windows) + 2

    @property
    def observation_columns(self) -> tuple[str, ...]:
        indicator_columns = tuple(f"{n}_rel" if is_price_level(n) else n for n in self.indicators)
        vol = (f"realized_vol_{self.volatility_window}", "turbulence")
        return ("log_return", *indicator_columns, *vol, *(("vix",) if self.use_vix else ()), *self.regime_columns)

    @property
    def regime_columns(self) -> tuple[str, ...]:
        """The regime features' observation columns: none when off, no ``vix_change`` without VIX."""
        if not self.regime_features:
            return ()
        return ("vol_ratio", "drawdown", *(("vix_change",) if self.use_vix else ()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; without regime features, exactly the dict of a spec from before they existed.

        Walk-forward cache keys and the trial ledger hash this dict: a baseline run keeps its
        digest (its cached trainings and its single count as a configuration tried).
        """
        data = asdict(self)
        if not self.regime_features:
            for name in REGIME_FIELDS:
                del data[name]
        data["indicators"] = list(self.indicators)
        data["observation_columns"] = list(self.observation_columns)
        data["warmup_bars"] = self.warmup_bars
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        fields = {k: v for k, v in data.items() if k not in ("observation_columns", "warmup_bars")}
        fields["indicators"] = tuple(fields.get("indicators", DEFAULT_INDICATORS))
        return cls(**fields)


def is_price_level(indicator: str) -> bool:
    return bool(_PRICE_LEVEL.match(indicator))


def _window_of(indicator: str) -> int:
    numbers = [int(n) for n in re.findall(r"_(\d+)", indicator)]
    return max(numbers, default=26 if indicator.startswith("macd") else 20)


def build_features(bars: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Price columns, raw indicators and observation columns; warm-up rows are dropped.

    Every value at row t depends only on rows <= t (see the perturbation test).
    """
    if spec.use_vix and "vix" not in bars.columns:
        raise DataError("features need a vix column: load data with VIX, or use --no-vix")
    if len(bars) <= spec.warmup_bars:
        raise DataError(f"{len(bars)} bars are too few: the indicators need {spec.warmup_bars} warm-up bars")

    factor = bars["adj_close"] / bars["close"]
    adjusted = pd.DataFrame(
        {
            "open": bars["open"] * factor,
            "high": bars["high"] * factor,
            "low": bars["low"] * factor,
            "close": bars["adj_close"],
            "volume": bars["volume"],
        },
        index=pd.DatetimeIndex(bars.index, name="date"),
    )
    indicators = _stockstats(adjusted, spec.indicators)

    out = bars[[c for c in PRICE_COLUMNS if c in bars.columns]].copy()
    for name in spec.indicators:
        out[name] = indicators[name]
    log_return = np.log(bars["adj_close"]).diff()
    out["log_return"] = log_return
    for name in spec.indicators:
        out[f"{name}_rel" if is_price_level(name) else name] = (
            indicators[name] / bars["adj_close"] if is_price_level(name) else indicators[name]
        )
    out[f"realized_vol_{spec.volatility_window}"] = realized_vol(log_return, spec.volatility_window)
    out["turbulence"] = turbulence(log_return, spec.turbulence_window)
    if spec.use_vix:
        out["vix"] = bars["vix"]
    if spec.regime_features:
        for name, values in market_regime(bars, log_return, spec).items():
            out[name] = values

    out = out.iloc[spec.warmup_bars :]
    observation = out[list(spec.observation_columns)].replace([np.inf, -np.inf], np.nan)
    bad = out.index[observation.isna().any(axis=1).to_numpy()]
    if len(bad):
        raise DataError(f"features undefined (NaN/inf) on {len(bad)} day(s), first {bad[0]:%Y-%m-%d}: check the data")
    return out


def realized_vol(log_return: pd.Series, window: int) -> pd.Series:
    """Annualised standard deviation (ddof=1) of the daily log returns of the ``window`` days ending at t."""
    volatility: pd.Series = log_return.rolling(window).std() * np.sqrt(252)
    return volatility


def market_regime(bars: pd.DataFrame, log_return: pd.Series, spec: FeatureSpec) -> dict[str, pd.Series]:
    """``vol_ratio``, ``drawdown`` and (with VIX) ``vix_change`` of each day t, from days <= t only.

    Every window is a full trailing window (the warm-up covers the longest), so a day's value does
    not depend on where the data set starts (beyond the rounding of pandas' running sums). That is
    why ``drawdown``'s peak is the trailing ``drawdown_window`` maximum, not the all-time high since
    the first bar: with the all-time high, the same day would read differently in a data set
    starting in 1993 than in one starting in 2010, so training, backtests and live trading (each
    loading its own range) would disagree.

    pandas' rolling max is used rather than stockstats' ``close_-251~0_max``, which builds one
    shifted column per day of the window.
    """
    adj_close = bars["adj_close"]
    columns = {
        "vol_ratio": realized_vol(log_return, spec.vol_ratio_short) / realized_vol(log_return, spec.vol_ratio_long),
        "drawdown": 1.0 - adj_close / adj_close.rolling(spec.drawdown_window).max(),
    }
    if spec.use_vix:
        columns["vix_change"] = np.log(bars["vix"]).diff(spec.vix_change_lag)
    return columns


def turbulence(log_return: pd.Series, window: int) -> pd.Series:
    """Single-asset turbulence: squared z-score of today's return against the previous ``window`` days.

    The one-dimensional case of the Mahalanobis distance FinRL uses across assets; the mean and
    variance exclude day t so a crash day registers fully.
    """
    history = log_return.shift(1).rolling(window)
    return (log_return - history.mean()) ** 2 / history.var()


def _stockstats(adjusted: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    from stockstats import wrap

    stock = wrap(adjusted.copy())
    try:
        return pd.DataFrame({name: stock[name].astype("float64") for name in names}, index=adjusted.index)
    except (KeyError, ValueError, IndexError) as exc:
        raise DataError(f"unknown stockstats indicator in {list(names)}: {exc}") from exc
