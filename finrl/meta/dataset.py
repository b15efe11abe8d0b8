"""The feature dataset written beside the cached bars: what ``spy-rl data fetch`` leaves on disk."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from finrl.fileio import atomic_write, atomic_write_json
from finrl.meta.data.market_data import MarketData
from finrl.meta.features import FeatureSpec

FEATURES_FILE = "features.csv"
FEATURES_META_FILE = "features.json"


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
