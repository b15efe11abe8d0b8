"""Market data with its features: what training, backtests and the trader read, and the
feature dataset written beside the cached bars (what ``spy-rl data fetch`` leaves on disk)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from finrl.fileio import atomic_write, atomic_write_json
from finrl.meta.data.market_data import MarketData, load_market_data
from finrl.meta.data.request import DataRequest
from finrl.meta.features import FeatureSpec, build_features

FEATURES_FILE = "features.csv"
FEATURES_META_FILE = "features.json"


@dataclass(frozen=True)
class FeatureData:
    """Validated bars, the feature specification, and the features computed from them."""

    market: MarketData
    spec: FeatureSpec
    features: pd.DataFrame


def load_feature_data(
    request: DataRequest, datasets_dir: Path, spec: FeatureSpec, now: datetime | None = None
) -> FeatureData:
    """Features over the final bars as of ``now`` (default: the machine's clock)."""
    market = load_market_data(request, datasets_dir, now)
    return FeatureData(market, spec, build_features(market.bars, spec))


def write_feature_dataset(data: MarketData, features: pd.DataFrame, spec: FeatureSpec) -> Path:
    """Write ``features.csv`` then ``features.json`` (last, so its presence means complete)."""
    path = data.directory / FEATURES_FILE
    atomic_write(path, lambda f: features.to_csv(f, index_label="date"))
    atomic_write_json(
        data.directory / FEATURES_META_FILE,
        {
            "data": data.describe(),
            "feature_spec": spec.to_dict(),
            "rows": len(features),
            "first_date": f"{features.index[0]:%Y-%m-%d}",
            "last_date": f"{features.index[-1]:%Y-%m-%d}",
        },
    )
    return path
