"""The model bundle: everything needed to act exactly as in training, in one directory.

``<models_dir>/<run>/`` holds ``model.zip`` (the stable-baselines3 policy chosen for use),
``policy.npz`` (the same policy as NumPy arrays: backtests and paper trading act without torch),
``final_model.zip``, ``checkpoints/``, ``drift_reference.json`` (the training window's distribution
of every observed feature and the kept policy's action mix there, which the paper trader's drift
metrics compare live data with) and ``bundle.json``: normalisation statistics, feature
specification, data fingerprint and windows, env/PPO configuration, settings, seed, library
versions and training metrics, plus SHA-256 hashes of the model files. A run is assembled in a
hidden staging directory and renamed into place complete; ``<models_dir>/latest`` (a symlink)
moves only after that, so a killed run never leaves ``latest`` pointing at half a bundle.

A ``bundle.json`` whose ``kind`` is ``ensemble`` describes several bundles acting as one
(:mod:`finrl.agents.ensemble_bundle`); :func:`load_bundle` refuses it in one line, where a single
model is needed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import signal
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator

from finrl.agents.numpy_policy import NumpyPolicy, PolicyError
from finrl.errors import FileSystemError, FinRLError
from finrl.fileio import (
    atomic_write_json,
    filesystem_errors,
    folder_mode,
    fsync_dir,
    missing_folders,
    remove_empty_folders,
    remove_quietly,
    share_tree,
)
from finrl.log import get_logger
from finrl.meta.env.spy_env import EnvConfig
from finrl.meta.features import FeatureSpec
from finrl.meta.preprocessing import DataSplit, DateWindow, FeatureNormalizer
from finrl.schemas import validate_file

BUNDLE_FORMAT = 1
MANIFEST_FILE = "bundle.json"
MODEL_FILE = "model.zip"
FINAL_MODEL_FILE = "final_model.zip"
POLICY_FILE = "policy.npz"  # the model.zip policy as NumPy arrays (torch-free inference)
DRIFT_FILE = "drift_reference.json"  # DriftReference: bundles written before it have none (no drift metrics)
BUNDLE_FILES = (MODEL_FILE, FINAL_MODEL_FILE, POLICY_FILE, DRIFT_FILE)
LATEST = "latest"
ENSEMBLE_KIND = "ensemble"  # bundle.json's "kind" of an ensemble of bundles (finrl.agents.ensemble_bundle)
_LIBRARIES = ("finrl", "torch", "stable-baselines3", "gymnasium", "numpy", "pandas", "stockstats")


log = get_logger(__name__)


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


def _parsed(parse: Callable[[Any], Any], dump: Callable[[Any], Any]) -> tuple[Any, Any]:
    """Validator and serializer for a library config object kept in the manifest as JSON."""

    def validate(value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        try:
            return parse(value)
        except (TypeError, ValueError, KeyError, AttributeError, FinRLError) as exc:
            raise ValueError(f"{type(exc).__name__}: {exc}") from None

    return PlainValidator(validate), PlainSerializer(dump)


def _split_from_dict(data: dict[str, Any]) -> DataSplit:
    windows = {k: data.get(k) for k in ("validation", "test")}
    return DataSplit(
        DateWindow.from_dict(data["train"]),
        *(DateWindow.from_dict(w) if w else None for w in windows.values()),
    )


FeatureSpecField = Annotated[FeatureSpec, *_parsed(FeatureSpec.from_dict, FeatureSpec.to_dict)]
NormalizerField = Annotated[FeatureNormalizer, *_parsed(FeatureNormalizer.from_dict, FeatureNormalizer.to_dict)]
EnvConfigField = Annotated[EnvConfig, *_parsed(EnvConfig.from_dict, EnvConfig.to_dict)]
SplitField = Annotated[DataSplit, *_parsed(_split_from_dict, DataSplit.to_dict)]


class TuneOrigin(BaseModel):
    """Where a bundle trained by ``spy-rl tune best`` came from: the study, its best trial, that trial's
    validation score and the parameters it drew, and the days that chose them (the study's first training
    day to its last validation day): a test over any of them is not out of sample. Bundles written before
    the selection was recorded load without it."""

    model_config = ConfigDict(frozen=True)

    study: str = Field(min_length=1)
    trial: int = Field(ge=0)
    value: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    selection_start: date | None = None
    selection_end: date | None = None


class Manifest(BaseModel):
    """``bundle.json``, parsed and validated once: every field typed, unknown fields kept as they are."""

    model_config = ConfigDict(frozen=True, extra="allow", arbitrary_types_allowed=True)

    format: int
    run_name: str = Field(min_length=1)
    seed: int
    feature_spec: FeatureSpecField
    normalizer: NormalizerField
    env_config: EnvConfigField
    split: SplitField
    files: dict[str, str]
    created_at: str | None = None
    algorithm: str = "PPO"
    data: dict[str, Any] = Field(default_factory=dict)
    ppo_config: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    tune: TuneOrigin | None = None  # bundles of spy-rl tune best; absent in every other bundle

    @classmethod
    def parse(cls, document: Any, source: Path) -> Manifest:
        """The manifest in ``document``; a malformed field is one :class:`BundleError` line naming it."""
        if not isinstance(document, dict):
            raise BundleError(f"corrupt {source}: not a JSON object")
        if document.get("format") != BUNDLE_FORMAT:
            raise BundleError(
                f"{source.parent}: bundle format {document.get('format')!r}, this finrl reads {BUNDLE_FORMAT}"
            )
        return validate_document(cls, document, source)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def data_fingerprint(self) -> str | None:
        value = self.data.get("fingerprint")
        return str(value) if value is not None else None


ManifestModel = TypeVar("ManifestModel", bound=BaseModel)


def validate_document(model: type[ManifestModel], document: dict[str, Any], source: Path) -> ManifestModel:
    """``document`` as ``model``; the first malformed field is one :class:`BundleError` line naming it."""
    return validate_file(model, document, source, BundleError)


# ---------------------------------------------------------------- the training distribution (drift reference)

DRIFT_QUANTILES = tuple(i / 10 for i in range(1, 10))  # decile edges of each feature over the training window
WEIGHT_BUCKET = 0.25  # a continuous policy's target weights are counted in buckets centred on multiples of this


@dataclass(frozen=True)
class Binned:
    """A distribution as the share of values in each bin. The sorted ``edges`` e_1 < ... < e_k cut the
    line into k + 1 bins, (-inf, e_1), [e_1, e_2), ..., [e_k, inf): :func:`bin_shares` puts values in them,
    live and in training alike. ``labels`` name the bins where they mean something (actions)."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.shares) != len(self.edges) + 1 or (self.labels and len(self.labels) != len(self.shares)):
            raise ValueError(f"{len(self.edges)} edges need {len(self.edges) + 1} shares and labels")
        if list(self.edges) != sorted(set(self.edges)):
            raise ValueError("bin edges must be distinct and increasing")

    @classmethod
    def of(cls, values: Any, edges: tuple[float, ...], labels: tuple[str, ...] = ()) -> Binned:
        return cls(edges, tuple(bin_shares(values, edges).tolist()), labels)

    @classmethod
    def deciles(cls, values: Any) -> Binned:
        """The bins of the deciles of ``values`` (observed values: a feature with few distinct values gets an
        edge at each, repeated edges merging)."""
        finite = _finite(values)
        if not len(finite):
            raise ValueError("no finite values to fit bins on")
        edges = tuple(float(e) for e in np.unique(np.quantile(finite, DRIFT_QUANTILES, method="higher")))
        return cls.of(finite, edges)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"edges": list(self.edges), "shares": list(self.shares)}
        if self.labels:
            data["labels"] = list(self.labels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Binned:
        return cls(
            tuple(float(e) for e in data["edges"]),
            tuple(float(s) for s in data["shares"]),
            tuple(str(label) for label in data.get("labels", ())),
        )


def bin_shares(values: Any, edges: tuple[float, ...]) -> np.ndarray:
    """The share of the finite ``values`` in each bin of ``edges`` (see :class:`Binned`); zeros when none."""
    finite = _finite(values)
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=np.float64), finite, side="right"),
                         minlength=len(edges) + 1).astype(np.float64)  # fmt: skip
    return counts / len(finite) if len(finite) else counts


def _finite(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    finite: np.ndarray = array[np.isfinite(array)]
    return finite


def action_bins(config: EnvConfig) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """``(edges, labels)`` of the action mix of ``config``'s action space, by what each decision asks for.

    ``discrete3``: sell, hold, buy (the action 0/1/2); ``target_weight``: each weight level; ``continuous``:
    the clipped target weight in buckets of :data:`WEIGHT_BUCKET` centred on 0, 0.25, ... 1 (from -1 with
    shorting). Edges sit halfway between the values, so each value is alone in its bin.
    """
    labels: tuple[str, ...] = ("sell", "hold", "buy")
    if config.action_space == "discrete3":
        centres = [0.0, 1.0, 2.0]
    else:
        if config.action_space == "target_weight":
            centres = sorted(config.weight_levels)
        else:
            low = -1.0 if config.execution.allow_short else 0.0
            centres = [low + i * WEIGHT_BUCKET for i in range(round((1.0 - low) / WEIGHT_BUCKET) + 1)]
        labels = tuple(f"{c:g}" for c in centres)
    return tuple((a + b) / 2 for a, b in itertools.pairwise(centres)), labels


@dataclass(frozen=True)
class DriftReference:
    """``drift_reference.json``: what the model saw in training, for the paper trader's drift metrics.

    ``features``: the decile bins of each observed feature (raw values, before normalisation: binning
    is unchanged by the monotone scaling) over the training window. ``actions``: the kept policy's action
    mix replayed over that window from flat (the backtest's rollout), binned by :func:`action_bins`.
    """

    window: DateWindow
    features: dict[str, Binned]
    actions: Binned
    action_space: str

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, columns: tuple[str, ...] | list[str], actions: Any, config: EnvConfig
    ) -> DriftReference:
        """The reference of the training ``frame``; ``actions`` are the ledger's decisions there
        (the action for ``discrete3``, the decided target weight otherwise)."""
        index = pd.DatetimeIndex(frame.index)
        edges, labels = action_bins(config)
        return cls(
            window=DateWindow(index[0].date(), index[-1].date()),
            features={name: Binned.deciles(frame[name].to_numpy()) for name in columns},
            actions=Binned.of(actions, edges, labels),
            action_space=config.action_space,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.to_dict(),
            "features": {name: binned.to_dict() for name, binned in self.features.items()},
            "actions": self.actions.to_dict(),
            "action_space": self.action_space,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReference:
        return cls(
            window=DateWindow.from_dict(data["window"]),
            features={str(name): Binned.from_dict(binned) for name, binned in data["features"].items()},
            actions=Binned.from_dict(data["actions"]),
            action_space=str(data["action_space"]),
        )

    def save(self, directory: Path) -> None:
        atomic_write_json(Path(directory) / DRIFT_FILE, self.to_dict())


@dataclass(frozen=True)
class ModelBundle:
    path: Path
    manifest: Manifest

    @property
    def run_name(self) -> str:
        return self.manifest.run_name

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.manifest.feature_spec

    @property
    def normalizer(self) -> FeatureNormalizer:
        return self.manifest.normalizer

    @property
    def env_config(self) -> EnvConfig:
        return self.manifest.env_config

    @property
    def split(self) -> DataSplit:
        return self.manifest.split

    @property
    def seed(self) -> int:
        return self.manifest.seed

    def check_features(self, features: pd.DataFrame) -> None:
        """Refuse data whose feature schema differs from the one the model was trained on."""
        expected = list(self.normalizer.columns)
        missing = [c for c in expected if c not in features.columns]
        if missing:
            raise BundleError(
                f"feature schema mismatch: bundle {self.run_name} expects {', '.join(expected)}; "
                f"the data lacks {', '.join(missing)}"
            )

    @property
    def drift_reference(self) -> DriftReference | None:
        """The training distribution the paper trader measures drift against; None in bundles written before it."""
        if DRIFT_FILE not in self.manifest.files:
            return None
        path = self.path / DRIFT_FILE
        try:
            return DriftReference.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, FinRLError) as exc:  # JSON errors too
            raise BundleError(f"corrupt {path}: {type(exc).__name__}: {exc}") from exc

    def load_policy(self) -> NumpyPolicy:
        """The deterministic policy as NumPy arrays: what backtests and paper trading act with (no torch)."""
        if POLICY_FILE in self.manifest.files:
            try:
                return NumpyPolicy.load(self.path / POLICY_FILE)
            except PolicyError as exc:
                raise BundleError(str(exc)) from exc
        return self._policy_from_model()

    def _policy_from_model(self) -> NumpyPolicy:
        """A bundle written before ``policy.npz`` existed: convert its model in memory where SB3 is installed."""
        convert = f"spy-rl runs convert {self.path}"
        try:
            import stable_baselines3  # noqa: F401  # the inference install has no SB3
        except ImportError:
            raise BundleError(
                f"{self.path} predates torch-free inference (no {POLICY_FILE}): "
                f"convert it once with `{convert}` where finrl[train] is installed"
            ) from None
        log.warning("bundle_without_policy_arrays", model=self.run_name, hint=f"convert it once: {convert}")
        try:
            return NumpyPolicy.from_sb3(self.load_model())
        except PolicyError as exc:
            raise BundleError(f"{self.path}: {exc}") from exc

    def load_model(self, device: str = "cpu") -> Any:
        """The stable-baselines3 model (needs finrl[train]); acting needs only :meth:`load_policy`."""
        from stable_baselines3 import PPO

        try:
            return PPO.load(self.path / MODEL_FILE, device=device)
        except Exception as exc:  # zip, pickle and torch errors all mean an unusable file
            raise BundleError(f"cannot load {self.path / MODEL_FILE}: {exc}") from exc


class StoppedError(FinRLError):
    """SIGTERM arrived while bundles were being assembled: their staging was removed, nothing was published."""

    exit_code = 128 + signal.SIGTERM  # 143, as docker stop and Kubernetes expect


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """For the duration, SIGTERM raises :class:`StoppedError` (as Ctrl-C raises KeyboardInterrupt), so that
    the ``finally`` blocks that remove staging folders run: SIGTERM's default action would end the process
    without them. The handler is then the previous one again, so a second SIGTERM during that cleanup ends
    the process as before. Signals reach only the main thread: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None:  # installed outside Python: restore the default
        previous = signal.SIG_DFL

    def stop(_signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, previous)
        raise StoppedError("stopped by SIGTERM: nothing was published")

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def staging_dir(models_dir: Path, run_name: str) -> Path:
    """A fresh hidden folder for one run: never shared with, or polluted by, another run. Made readable
    by the group as ``mkdir`` would (``mkdtemp`` makes it private), so the published bundle is too."""
    made = missing_folders(Path(models_dir))
    with filesystem_errors(models_dir, name_path=True, flag="--models-dir"):
        try:
            Path(models_dir).mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".staging-{run_name}-", dir=models_dir))
        except BaseException:
            remove_empty_folders(made)
            raise
        try:
            staging.chmod(folder_mode())
        except BaseException:
            remove_quietly(staging)
            raise
    return staging


def check_run_name_free(models_dir: Path, run_name: str) -> None:
    with filesystem_errors(name_path=True, path=Path(models_dir) / run_name, flag="--name"):
        taken = (Path(models_dir) / run_name).exists()  # a name too long for the file system: one line
    if taken:
        raise BundleError(f"a model named {run_name} already exists in {models_dir}: choose another --name")


def check_latest_movable(models_dir: Path) -> None:
    """Refuse, before minutes of training, a ``latest`` that a new run could not replace: a real folder (copied
    or synced without symlinks). A symlink, dangling or not, or a plain file is replaced atomically."""
    link = Path(models_dir) / LATEST
    if link.is_dir() and not link.is_symlink():
        raise BundleError(
            f"{link} is a folder, not a symlink (copied or synced without links?): rename it "
            f"(mv {link} {link}.old) or remove it, and training points {LATEST} at the new run"
        )


def publish_bundle(staging: Path, models_dir: Path, manifest: dict[str, Any]) -> ModelBundle:
    """Hash the model files, write the manifest, move the run into place, then point ``latest`` at it."""
    run_name = str(manifest["run_name"])
    final = Path(models_dir) / run_name
    check_run_name_free(models_dir, run_name)  # latest is checked after the rename: a finished run is kept
    with filesystem_errors(staging, flag="--models-dir"):
        full = Manifest.parse(
            {"format": BUNDLE_FORMAT, **manifest, "files": hash_files(staging), "versions": library_versions()},
            staging / MANIFEST_FILE,
        )
        atomic_write_json(staging / MANIFEST_FILE, full.to_json())
        share_tree(staging)
        try:
            staging.rename(final)
        except OSError:
            if not final.exists():
                raise
            check_run_name_free(models_dir, run_name)  # another run took the name since the check above: one line
        fsync_dir(Path(models_dir))
    try:
        point_latest(Path(models_dir), final)
    except FileSystemError as exc:
        raise FileSystemError(
            exc.path,
            exc.problem,
            f"{exc.hint}; the bundle {final} is complete, {LATEST} still points where it did",
            exc.errno,
        ) from exc
    except BundleError as exc:  # latest became a real folder during training: the run is published all the same
        raise BundleError(f"the bundle {final} is complete, {LATEST} unchanged: {exc}") from exc
    return ModelBundle(final, full)


def hash_files(directory: Path) -> dict[str, str]:
    """SHA-256 of every bundle file that is present: a load refuses any that changed."""
    return {name: sha256_file(directory / name) for name in BUNDLE_FILES if (directory / name).exists()}


def export_policy(directory: Path) -> None:
    """Write ``policy.npz`` from ``directory/model.zip`` (training side: needs stable-baselines3)."""
    from stable_baselines3 import PPO

    NumpyPolicy.from_sb3(PPO.load(directory / MODEL_FILE, device="cpu")).save(directory / POLICY_FILE)


def convert_bundle(bundle: ModelBundle) -> ModelBundle:
    """Give a bundle written before ``policy.npz`` existed its policy arrays; the manifest is rewritten atomically."""
    if POLICY_FILE in bundle.manifest.files:
        return bundle
    policy = NumpyPolicy.from_sb3(bundle.load_model())
    written = not (bundle.path / POLICY_FILE).exists()
    try:
        policy.save(bundle.path / POLICY_FILE)
        manifest = bundle.manifest.model_copy(update={"files": hash_files(bundle.path)})
        atomic_write_json(bundle.path / MANIFEST_FILE, manifest.to_json())
    except BaseException:
        if written:  # the bundle as it was: no policy file its manifest does not list
            remove_quietly(bundle.path / POLICY_FILE)
        raise
    return ModelBundle(bundle.path, manifest)


def point_latest(models_dir: Path, target: Path) -> None:
    """Point ``latest`` at ``target`` atomically. The temporary link's name is unique across machines
    and containers sharing the folder (where every process may be PID 1), so two runs never clash.
    A ``latest`` that is a real folder is refused in one line (:func:`check_latest_movable`)."""
    check_latest_movable(models_dir)
    link = models_dir / LATEST
    temporary = models_dir / f".{LATEST}.{os.getpid()}.{uuid.uuid4().hex}"
    with filesystem_errors(link, name_path=True, flag="--models-dir"):
        try:
            temporary.symlink_to(target.name, target_is_directory=True)
            temporary.replace(link)  # atomic: readers see the old or the new target
        finally:
            remove_quietly(temporary)  # gone after the rename
        fsync_dir(models_dir)


def resolve_bundle(reference: str | Path, models_dir: Path) -> Path:
    """A bundle directory from a path, a run name inside ``models_dir``, or ``latest``."""
    candidate = Path(reference)
    if not candidate.exists() and not candidate.is_absolute():
        candidate = Path(models_dir) / reference
    if not candidate.exists():
        runs = bundle_names(models_dir)
        shown = ", ".join(runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")
        if str(reference) == LATEST:
            hint = (
                " (no training run has finished yet: run spy-rl train)"
                if not runs
                else (
                    f" ({models_dir}/latest points nowhere: pass --model with one of its runs, newest first: {shown}; "
                    "or run spy-rl train)"
                )
            )
        elif runs:
            hint = f" in {models_dir} (its runs, newest first: {shown})"
        else:
            hint = f" (no model bundles in {models_dir}: run spy-rl train, or pass --models-dir)"
        raise BundleError(f"model bundle not found: {reference}{hint}")
    return candidate.resolve()


def bundle_names(models_dir: Path) -> list[str]:
    """The bundles (models and ensembles) in ``models_dir``, newest first: what a --model can name."""
    try:
        folders = [
            p for p in Path(models_dir).iterdir() if p.is_dir() and not p.is_symlink() and (p / MANIFEST_FILE).is_file()
        ]
    except OSError:  # no such folder, or unreadable: nothing to offer
        return []
    return [p.name for p in sorted(folders, key=lambda p: (p / MANIFEST_FILE).stat().st_mtime, reverse=True)]


def read_manifest(path: Path) -> Any:
    """The JSON document of the bundle folder ``path`` (a model or an ensemble), not yet validated."""
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{path} is not a complete model bundle (no {MANIFEST_FILE})")
    try:
        return json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"corrupt {manifest_path}: {exc}") from exc


def is_ensemble(document: Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == ENSEMBLE_KIND


def load_bundle(reference: str | Path, models_dir: Path) -> ModelBundle:
    """A single model bundle; an ensemble is refused in one line (``load_any_bundle`` takes both)."""
    path = resolve_bundle(reference, models_dir)
    document = read_manifest(path)
    if is_ensemble(document):
        raise BundleError(f"{path} is an ensemble of model bundles: this needs a single model bundle")
    return bundle_from_manifest(path, document)


def bundle_from_manifest(path: Path, document: Any) -> ModelBundle:
    """The bundle in folder ``path`` whose ``bundle.json`` holds ``document``: every listed file hash-checked."""
    manifest = Manifest.parse(document, path / MANIFEST_FILE)
    for name, expected in manifest.files.items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing")
        if sha256_file(file) != expected:
            raise BundleError(f"{path}: {name} does not match its recorded SHA-256 (corrupt or modified)")
    return ModelBundle(path, manifest)
