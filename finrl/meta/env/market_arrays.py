"""Everything the environment reads, as NumPy arrays prepared once (no pandas in ``step``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from finrl.errors import DataError
from finrl.meta.env.execution import dividends_per_share
from finrl.meta.preprocessing import FeatureNormalizer


@dataclass(frozen=True)
class MarketArrays:
    dates: np.ndarray  # datetime64[ns], one per session
    features: np.ndarray  # float32 [T, F], normalised observation features of day t
    open: np.ndarray  # float64 traded open
    close: np.ndarray  # float64 traded close
    dividends: np.ndarray  # float64 cash per share paid to holders at the previous close
    feature_bound: float = 10.0  # |features| never exceed this (the normaliser clips)

    def __post_init__(self) -> None:
        n = len(self.dates)
        if n < 2:
            raise DataError(f"a trading window needs at least 2 days, got {n}")
        if not all(len(a) == n for a in (self.features, self.open, self.close, self.dividends)):
            raise ValueError("market arrays have different lengths")

    def __len__(self) -> int:
        return len(self.dates)

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @classmethod
    def from_features(cls, frame: pd.DataFrame, normalizer: FeatureNormalizer) -> MarketArrays:
        """Arrays for ``frame`` (output of :func:`finrl.meta.features.build_features`) with a fitted normaliser."""
        return cls(
            dates=frame.index.to_numpy(dtype="datetime64[ns]"),
            features=np.ascontiguousarray(normalizer.transform(frame)),
            open=frame["open"].to_numpy(dtype=np.float64),
            close=frame["close"].to_numpy(dtype=np.float64),
            dividends=dividends_per_share(frame["close"], frame["adj_close"]),
            feature_bound=normalizer.clip,
        )

    def window(self, start: int, stop: int) -> MarketArrays:
        return MarketArrays(
            self.dates[start:stop],
            self.features[start:stop],
            self.open[start:stop],
            self.close[start:stop],
            self.dividends[start:stop],
            self.feature_bound,
        )
