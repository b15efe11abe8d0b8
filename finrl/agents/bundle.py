"""The model bundle: everything needed to act exactly as in training, in one directory.

``<models_dir>/<run>/`` holds ``model.zip`` (the stable-baselines3 policy chosen for use),
``final_model.zip``, ``checkpoints/`` and ``bundle.json``: normalisation statistics, feature
specification, data fingerprint and windows, env/PPO configuration, settings, seed, library
versions and training metrics, plus SHA-256 hashes of the model files. A run is assembled in a
hidden staging directory and renamed into place complete; ``<models_dir>/latest`` (a symlink)
moves only after that, so a killed run never leaves ``latest`` pointing at half a bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from finrl.errors import FinRLError
from finrl.fileio import atomic_write_json, fsync_dir
from finrl.meta.env.spy_env import EnvConfig
from finrl.meta.features import FeatureSpec
from finrl.meta.preprocessing import DataSplit, DateWindow, FeatureNormalizer

BUNDLE_FORMAT = 1
MANIFEST_FILE = "bundle.json"
MODEL_FILE = "model.zip"
FINAL_MODEL_FILE = "final_model.zip"
LATEST = "latest"
_LIBRARIES = ("finrl", "torch", "stable-baselines3", "gymnasium", "numpy", "pandas", "stockstats")


class BundleError(FinRLError):
    """A model bundle is missing, incomplete, corrupt or does not fit the data."""


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelBundle:
    path: Path
    manifest: dict[str, Any]

    @property
    def run_name(self) -> str:
        return str(self.manifest["run_name"])

    @property
    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.manifest["feature_spec"])

    @property
    def normalizer(self) -> FeatureNormalizer:
        return FeatureNormalizer.from_dict(self.manifest["normalizer"])

    @property
    def env_config(self) -> EnvConfig:
        return EnvConfig.from_dict(self.manifest["env_config"])

    @property
    def split(self) -> DataSplit:
        windows = self.manifest["split"]
        return DataSplit(
            DateWindow.from_dict(windows["train"]),
            DateWindow.from_dict(windows["validation"]) if windows.get("validation") else None,
            DateWindow.from_dict(windows["test"]) if windows.get("test") else None,
        )

    @property
    def seed(self) -> int:
        return int(self.manifest["seed"])

    def check_features(self, features: pd.DataFrame) -> None:
        """Refuse data whose feature schema differs from the one the model was trained on."""
        expected = list(self.normalizer.columns)
        missing = [c for c in expected if c not in features.columns]
        if missing:
            raise BundleError(
                f"feature schema mismatch: bundle {self.run_name} expects {', '.join(expected)}; "
                f"the data lacks {', '.join(missing)}"
            )

    def load_model(self, device: str = "cpu") -> Any:
        from stable_baselines3 import PPO

        try:
            return PPO.load(self.path / MODEL_FILE, device=device)
        except Exception as exc:  # zip, pickle and torch errors all mean an unusable file
            raise BundleError(f"cannot load {self.path / MODEL_FILE}: {exc}") from exc


def staging_dir(models_dir: Path, run_name: str) -> Path:
    """A fresh hidden folder for one run: never shared with, or polluted by, another run."""
    Path(models_dir).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".staging-{run_name}-", dir=models_dir))


def check_run_name_free(models_dir: Path, run_name: str) -> None:
    if (Path(models_dir) / run_name).exists():
        raise BundleError(f"a model named {run_name} already exists in {models_dir}: choose another --run-name")


def publish_bundle(staging: Path, models_dir: Path, manifest: dict[str, Any]) -> ModelBundle:
    """Hash the model files, write the manifest, move the run into place, then point ``latest`` at it."""
    run_name = str(manifest["run_name"])
    final = Path(models_dir) / run_name
    check_run_name_free(models_dir, run_name)
    files = {name: sha256_file(staging / name) for name in (MODEL_FILE, FINAL_MODEL_FILE) if (staging / name).exists()}
    full = {"format": BUNDLE_FORMAT, **manifest, "files": files, "versions": library_versions()}
    atomic_write_json(staging / MANIFEST_FILE, full)
    staging.rename(final)
    fsync_dir(Path(models_dir))
    point_latest(Path(models_dir), final)
    return ModelBundle(final, full)


def point_latest(models_dir: Path, target: Path) -> None:
    link = models_dir / LATEST
    temporary = models_dir / f".{LATEST}.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target.name, target_is_directory=True)
    temporary.replace(link)  # atomic: readers see the old or the new target
    fsync_dir(models_dir)


def resolve_bundle(reference: str | Path, models_dir: Path) -> Path:
    """A bundle directory from a path, a run name inside ``models_dir``, or ``latest``."""
    candidate = Path(reference)
    if not candidate.exists() and not candidate.is_absolute():
        candidate = Path(models_dir) / reference
    if not candidate.exists():
        hint = " (no training run has finished yet: run spy-rl train)" if str(reference) == LATEST else ""
        raise BundleError(f"model bundle not found: {reference}{hint}")
    return candidate.resolve()


def load_bundle(reference: str | Path, models_dir: Path) -> ModelBundle:
    path = resolve_bundle(reference, models_dir)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{path} is not a complete model bundle (no {MANIFEST_FILE})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"corrupt {manifest_path}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"corrupt {manifest_path}: not a JSON object")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: bundle format {manifest.get('format')!r}, this finrl reads {BUNDLE_FORMAT}")
    for key in ("run_name", "feature_spec", "normalizer", "env_config", "split", "seed", "files"):
        if key not in manifest:
            raise BundleError(f"corrupt {manifest_path}: missing {key!r}")
    for name, expected in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing")
        if sha256_file(file) != expected:
            raise BundleError(f"{path}: {name} does not match its recorded SHA-256 (corrupt or modified)")
    bundle = ModelBundle(path, manifest)
    try:
        bundle.feature_spec, bundle.normalizer, bundle.env_config, bundle.split  # noqa: B018 - parse eagerly
    except (TypeError, ValueError, KeyError, FinRLError) as exc:
        raise BundleError(f"corrupt {manifest_path}: {exc}") from exc
    return bundle
