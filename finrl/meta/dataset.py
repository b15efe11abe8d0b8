"""Market data with its features: what training, backtests and the trader read.

The features are cached beside the cached bars (``features.csv``, then ``features.json``: the
feature spec, the bars' fingerprint and the features' own). A later load of the same bars with
the same spec reads them back, verified against that fingerprint; anything else (other bars,
another spec, a file that no longer matches, a half-written pair) computes them again. Bars that
were not cached (a partial bar was dropped, a provider lagged) leave no features either.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finrl.errors import FileSystemError
from finrl.fileio import atomic_write, atomic_write_json
from finrl.log import get_logger
from finrl.meta.data.market_data import METADATA_FILE, MarketData, load_market_data
from finrl.meta.data.request import DataRequest
from finrl.meta.features import FeatureSpec, build_features

FEATURES_FILE = "features.csv"
FEATURES_META_FILE = "features.json"


@functools.cache  # the code does not change while the process runs; each features load asks
def feature_code_digest() -> str:
    """What computed the features: the feature module's source and stockstats' version. An upgrade that
    changes an indicator's formula must not reuse features cached by the old code (a shared volume)."""
    from importlib.metadata import version

    import finrl.meta.features as features_module

    digest = hashlib.sha256(Path(features_module.__file__).read_bytes())
    digest.update(f"stockstats {version('stockstats')}".encode())
    return digest.hexdigest()[:16]


log = get_logger(__name__)


@dataclass(frozen=True)
class FeatureData:
    """Validated bars, the feature specification, and the features computed from them."""

    market: MarketData
    spec: FeatureSpec
    features: pd.DataFrame


def load_feature_data(
    request: DataRequest, datasets_dir: Path, spec: FeatureSpec, now: datetime | None = None
) -> FeatureData:
    """Features over the final bars as of ``now`` (default: the machine's clock), from the cache when
    it holds them for these bars and this spec, else computed and cached beside the bars."""
    market = load_market_data(request, datasets_dir, now)
    features = read_cached_features(market, spec)
    if features is None:
        features = build_features(market.bars, spec)
        if _bars_cached(market):
            try:
                write_feature_dataset(market, features, spec)
            except (FileSystemError, OSError) as exc:  # a read-only cache (Compose's backtest): computed each time
                log.warning("features_cache_not_written", path=str(market.directory), error=str(exc))
    return FeatureData(market, spec, features)


def features_fingerprint(features: pd.DataFrame) -> str:
    """A content hash of a feature frame: dates, columns, dtypes and values (every NaN alike)."""
    digest = hashlib.sha256()
    digest.update(",".join(f"{name}:{dtype}" for name, dtype in features.dtypes.items()).encode())
    digest.update(pd.DatetimeIndex(features.index).asi8.tobytes())
    values = features.to_numpy(dtype="float64")
    digest.update(np.where(np.isnan(values), np.nan, values).tobytes())  # a NaN's bits vary, its meaning not
    return digest.hexdigest()


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
            "index_name": features.index.name,
            "columns": [[str(name), str(dtype)] for name, dtype in features.dtypes.items()],  # in order
            "fingerprint": features_fingerprint(features),
            "feature_code": feature_code_digest(),
        },
    )
    return path


def read_cached_features(data: MarketData, spec: FeatureSpec) -> pd.DataFrame | None:
    """The cached features of ``data``'s bars under ``spec``, or None (absent, stale or unreadable)."""
    meta_path, csv_path = data.directory / FEATURES_META_FILE, data.directory / FEATURES_FILE
    try:
        if not (meta_path.is_file() and csv_path.is_file()):
            return None
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if (
            meta.get("data", {}).get("fingerprint") != data.fingerprint
            or meta.get("feature_spec") != json.loads(json.dumps(spec.to_dict()))  # as JSON holds it
            or meta.get("feature_code") != feature_code_digest()
            or not isinstance(meta.get("columns"), list)
        ):
            return None  # other bars, another spec or other code: computed again (and the cache rewritten)
        features = pd.read_csv(csv_path, index_col="date", parse_dates=["date"])  # pandas reads floats exactly
        features.index = pd.DatetimeIndex(features.index, name=meta.get("index_name")).astype("datetime64[ns]")
        columns = [str(name) for name, _ in meta["columns"]]
        features = features.astype(dict(meta["columns"]))
    except (ValueError, KeyError, TypeError, OSError, pd.errors.ParserError) as exc:  # recomputed, never fatal
        log.warning("features_cache_unreadable", path=str(data.directory), error=str(exc))
        return None
    if list(features.columns) != columns or features_fingerprint(features) != meta.get("fingerprint"):
        log.warning("features_cache_stale", path=str(data.directory), note="fingerprint mismatch, computing again")
        return None
    log.info("features_cache_hit", path=str(data.directory), rows=len(features))
    return features


def _bars_cached(data: MarketData) -> bool:
    """Whether the cache folder holds these very bars (features are cached only beside them)."""
    try:
        meta = json.loads((data.directory / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("fingerprint") == data.fingerprint
