"""Everything the environment reads, as NumPy arrays prepared once (no pandas in ``step``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike

from finrl.errors import DataError
from finrl.meta.env.execution import dividends_per_share
from finrl.meta.preprocessing import FeatureNormalizer

LIQUIDITY_WINDOW = 20  # trading days, as the realized_vol_20 feature


def trailing_liquidity(
    log_return: ArrayLike, volume: ArrayLike, window: int = LIQUIDITY_WINDOW
) -> tuple[np.ndarray, np.ndarray]:
    """``(volatility, adv)`` of each day t from the ``window`` sessions ending at t (bar t included).

    ``volatility`` is the sample standard deviation (ddof=1) of the daily log returns (the raw
    ``realized_vol_20`` feature over sqrt(252)), ``adv`` the mean volume in shares; NaNs are skipped.
    The first ``window - 1`` days use the history there is (volatility needs two returns, else NaN,
    which means no impact). Each value is computed from its own window alone, so a series that
    starts earlier gives the same value for the same sessions (the backtest and the simulated
    broker agree), and no value depends on a later bar.
    """
    returns = np.ascontiguousarray(log_return, dtype=np.float64)
    shares = np.ascontiguousarray(volume, dtype=np.float64)
    n = len(returns)
    volatility, adv = np.full(n, np.nan), np.full(n, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN window is NaN (no impact), not a warning
        for t in range(min(window - 1, n)):
            if np.count_nonzero(~np.isnan(returns[: t + 1])) >= 2:
                volatility[t] = np.nanstd(returns[: t + 1], ddof=1)
            adv[t] = np.nanmean(shares[: t + 1])
        if n >= window:
            volatility[window - 1 :] = np.nanstd(sliding_window_view(returns, window), axis=1, ddof=1)
            adv[window - 1 :] = np.nanmean(sliding_window_view(shares, window), axis=1)
    return volatility, adv


def bars_liquidity(bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """:func:`trailing_liquidity` of daily bars or a features frame: the raw log return of the adjusted
    close (the features' ``log_return``, never a normalised column) and ``volume``; bars without a
    volume column have no impact inputs (zeros)."""
    if "volume" not in bars.columns:
        return np.zeros(len(bars)), np.zeros(len(bars))
    log_return = bars["log_return"] if "log_return" in bars.columns else np.log(bars["adj_close"]).diff()
    return trailing_liquidity(log_return, bars["volume"])


@dataclass(frozen=True)
class MarketArrays:
    dates: np.ndarray  # datetime64[ns], one per session
    features: np.ndarray  # float32 [T, F], normalised observation features of day t
    open: np.ndarray  # float64 traded open
    close: np.ndarray  # float64 traded close
    dividends: np.ndarray  # float64 cash per share paid to holders at the previous close
    feature_bound: float = 10.0  # |features| never exceed this (the normaliser clips)
    # the market-impact inputs known at day t's close (trailing_liquidity); None = no data, no impact
    volatility: np.ndarray | None = None  # float64 daily volatility of log returns
    adv: np.ndarray | None = None  # float64 average daily volume in shares

    def __post_init__(self) -> None:
        n = len(self.dates)
        if n < 2:
            raise DataError(f"a trading window needs at least 2 days, got {n}")
        for name in ("volatility", "adv"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.zeros(n))
        arrays = (self.features, self.open, self.close, self.dividends, self.volatility, self.adv)
        if not all(a is not None and len(a) == n for a in arrays):
            raise ValueError("market arrays have different lengths")

    def __len__(self) -> int:
        return len(self.dates)

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def liquidity(self) -> tuple[np.ndarray, np.ndarray]:
        """``(volatility, adv)``: the impact inputs of each day (zeros when the market has none)."""
        assert self.volatility is not None and self.adv is not None  # set in __post_init__
        return self.volatility, self.adv

    @classmethod
    def from_features(
        cls, frame: pd.DataFrame, normalizer: FeatureNormalizer, history: pd.DataFrame | None = None
    ) -> MarketArrays:
        """Arrays for ``frame`` (output of :func:`finrl.meta.features.build_features`) with a fitted normaliser.

        The impact inputs are trailing windows over ``history`` (a features frame holding ``frame``'s
        days and those before them, e.g. all the data a test window was cut from) when given, else
        over ``frame`` alone (its first days then have a shorter history).
        """
        if history is None:
            volatility, adv = bars_liquidity(frame)
        else:
            rows = pd.DatetimeIndex(history.index).get_indexer(pd.DatetimeIndex(frame.index))
            if (rows < 0).any():
                raise ValueError("history must hold every day of the frame")
            volatility, adv = (a[rows] for a in bars_liquidity(history))
        return cls(
            dates=frame.index.to_numpy(dtype="datetime64[ns]"),
            features=np.ascontiguousarray(normalizer.transform(frame)),
            open=frame["open"].to_numpy(dtype=np.float64),
            close=frame["close"].to_numpy(dtype=np.float64),
            dividends=dividends_per_share(frame["close"], frame["adj_close"]),
            feature_bound=normalizer.clip,
            volatility=volatility,
            adv=adv,
        )

    def window(self, start: int, stop: int) -> MarketArrays:
        volatility, adv = self.liquidity
        return MarketArrays(
            self.dates[start:stop],
            self.features[start:stop],
            self.open[start:stop],
            self.close[start:stop],
            self.dividends[start:stop],
            self.feature_bound,
            volatility[start:stop],
            adv[start:stop],
        )
