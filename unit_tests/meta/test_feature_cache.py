"""Features are cached beside the cached bars (features.csv + features.json), read back only when
the bars and the feature spec are the ones they were computed from, bit for bit."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from finrl.meta import dataset
from finrl.meta.dataset import FEATURES_FILE, FEATURES_META_FILE, load_feature_data
from finrl.meta.features import FeatureSpec
from unit_tests.conftest import data_request, make_bars, write_csv

pytestmark = pytest.mark.unit
SPEC = FeatureSpec(use_vix=False)


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the feature computations."""
    calls: list[int] = []
    build = dataset.build_features

    def counting(bars: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
        calls.append(len(bars))
        return build(bars, spec)

    monkeypatch.setattr(dataset, "build_features", counting)
    return calls


def csv_request(tmp_path: Path, rows: int = 300):
    path = write_csv(make_bars(rows, vix=False), tmp_path / "spy.csv")
    return data_request(source="csv", csv_path=path, use_vix=False)


def test_a_load_leaves_both_files_and_a_second_reuses_them(tmp_path: Path, computed: list[int]) -> None:
    request, cache = csv_request(tmp_path), tmp_path / "datasets"
    first = load_feature_data(request, cache, SPEC)
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    assert {p.name for p in folder.iterdir()} >= {"bars.csv", "metadata.json", FEATURES_FILE, FEATURES_META_FILE}
    meta = json.loads((folder / FEATURES_META_FILE).read_text())
    assert meta["data"]["fingerprint"] == first.market.fingerprint and meta["feature_spec"] == SPEC.to_dict()
    assert [name for name, _ in meta["columns"]] == list(first.features.columns) and meta["fingerprint"]
    second = load_feature_data(request, cache, SPEC)
    assert len(computed) == 1
    pd.testing.assert_frame_equal(second.features, first.features, check_exact=True)
    assert second.features.to_numpy().tobytes() == first.features.to_numpy().tobytes()


def test_another_spec_computes_again(tmp_path: Path, computed: list[int]) -> None:
    request, cache = csv_request(tmp_path), tmp_path / "datasets"
    load_feature_data(request, cache, SPEC)
    regime = load_feature_data(request, cache, replace(SPEC, regime_features=True))
    assert len(computed) == 2 and regime.features.columns[-1] not in load_feature_data(request, cache, SPEC).features
    assert len(computed) == 3  # the cache holds one spec: the last one computed


def test_features_from_other_feature_code_are_computed_again(
    tmp_path: Path, computed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade that changes the feature code (or stockstats), a shared cache is not reused."""
    request, cache = csv_request(tmp_path), tmp_path / "datasets"
    load_feature_data(request, cache, SPEC)
    monkeypatch.setattr(dataset, "feature_code_digest", lambda: "other-code")
    load_feature_data(request, cache, SPEC)
    assert len(computed) == 2


def test_a_tampered_features_file_is_never_trusted(tmp_path: Path, computed: list[int]) -> None:
    request, cache = csv_request(tmp_path), tmp_path / "datasets"
    first = load_feature_data(request, cache, SPEC)
    path = first.market.directory / FEATURES_FILE
    frame = pd.read_csv(path)
    frame.loc[10, "log_return"] = 0.5
    frame.to_csv(path, index=False)
    again = load_feature_data(request, cache, SPEC)
    assert len(computed) == 2
    pd.testing.assert_frame_equal(again.features, first.features, check_exact=True)


def test_features_of_other_bars_are_not_used(tmp_path: Path, computed: list[int]) -> None:
    cache = tmp_path / "datasets"
    first = load_feature_data(csv_request(tmp_path), cache, SPEC)
    meta_path = first.market.directory / FEATURES_META_FILE
    meta = json.loads(meta_path.read_text())
    meta["data"]["fingerprint"] = "0" * 64  # as if computed from other bars
    meta_path.write_text(json.dumps(meta))
    load_feature_data(csv_request(tmp_path), cache, SPEC)
    assert len(computed) == 2


def test_a_read_only_cache_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from finrl.errors import FileSystemError

    def refuse(*_: object, **__: object) -> None:
        raise FileSystemError("x", "read-only file system", "mount it writable")

    request, cache = csv_request(tmp_path), tmp_path / "datasets"
    monkeypatch.setattr(dataset, "write_feature_dataset", refuse)
    assert len(load_feature_data(request, cache, SPEC).features) > 0
