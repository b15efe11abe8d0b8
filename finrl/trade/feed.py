"""The paper trader's market: the bundle's features over fresh data, reloaded when a newer
session is needed (network sources grow while the service runs; files and the sample do not)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from finrl.meta.data.request import DataRequest
from finrl.meta.dataset import FeatureData, load_feature_data
from finrl.meta.features import FeatureSpec


class MarketFeed:
    def __init__(self, request: DataRequest, datasets_dir: Path, spec: FeatureSpec) -> None:
        self.request, self.datasets_dir, self.spec = request, Path(datasets_dir), spec
        self._data: FeatureData | None = None

    def data(self) -> FeatureData:
        if self._data is None:
            self._data = load_feature_data(self.request, self.datasets_dir, self.spec)
        return self._data

    @property
    def bars(self) -> pd.DataFrame:
        return self.data().market.bars

    def refresh(self) -> bool:
        """Load the source again where it can have grown; True when the data was reloaded."""
        if not self.request.grows:
            return False
        self._data = None
        self.data()
        return True

    def features_until(self, session: date) -> pd.DataFrame:
        """Features up to ``session``'s bar, reloading once when the data ends before it."""
        data = self.data()
        if data.features.index[-1].date() < session:
            self._data = None
            data = self.data()
        return data.features.loc[: pd.Timestamp(session)]
