"""The runs of a models folder and the backtest reports of each, read from their files.

A run is a bundle folder (a trained model or an ensemble); its backtests are the report folders
``<results>/<run>__<test start>_<test end>/`` that ``spy-rl backtest`` writes, newest first. Only
manifests and ``metrics.json`` files are read: no model is loaded and no file hashed, so listing many
runs stays quick, and a run whose manifest cannot be read becomes one entry saying why (loading it
for a backtest reports the rest). Hidden staging folders, ``latest`` and ``<run>.interrupted``
(a stopped run's checkpoint, never published) are not runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from finrl.agents.bundle import (
    LATEST,
    MANIFEST_FILE,
    BundleError,
    Manifest,
    is_ensemble,
    read_manifest,
    resolve_bundle,
)
from finrl.errors import FinRLError

INTERRUPTED_SUFFIX = ".interrupted"
REPORT_SEPARATOR = "__"  # <run>__<test start>_<test end>: backtest_runs names the report folders so
METRICS_FILE = "metrics.json"
NAV_FILE = "nav.csv"
REPORT_HTML = "report.html"
AGENT, BUY_AND_HOLD = "agent", "buy_and_hold"

RunKind = Literal["model", "ensemble"]


@dataclass(frozen=True)
class Span:
    """A window of days as the manifests and reports record it (ISO dates)."""

    start: str
    end: str

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"

    @classmethod
    def of(cls, data: Any) -> Span | None:
        if not isinstance(data, dict) or not data.get("start") or not data.get("end"):
            return None
        return cls(str(data["start"]), str(data["end"]))

    def to_json(self) -> dict[str, str]:
        return {"start": self.start, "end": self.end}


@dataclass(frozen=True)
class BacktestReport:
    """One report folder of a run: its test window and the metrics of the agent and each baseline."""

    path: Path
    model: str
    test: Span
    written_at: float  # metrics.json's modification time: "the last backtest" is the one written last
    metrics: dict[str, dict[str, float]]
    warnings: tuple[str, ...] = ()
    risk_free_rate: float | None = None  # annual, as the report's Sharpe used it (None: a report from before)

    def metric(self, strategy: str, name: str) -> float | None:
        value = self.metrics.get(strategy, {}).get(name)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    @property
    def html(self) -> Path:
        return self.path / REPORT_HTML

    @property
    def nav(self) -> Path:
        return self.path / NAV_FILE

    def to_json(self) -> dict[str, Any]:
        shown = ("total_return", "sharpe", "max_drawdown", "exposure", "n_trades")
        return {
            "path": str(self.path),
            "report_html": str(self.html),
            "test": self.test.to_json(),
            "written_at": _utc(self.written_at),
            "agent": {name: self.metric(AGENT, name) for name in shown},
            "buy_and_hold": {name: self.metric(BUY_AND_HOLD, name) for name in shown},
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Run:
    """A bundle folder as its manifest describes it; ``problem`` says why one could not be read."""

    name: str
    path: Path
    kind: RunKind = "model"
    created_at: str | None = None
    seed: int | None = None
    data_source: str | None = None
    train: Span | None = None
    validation: Span | None = None
    timesteps: int | None = None
    validation_sharpe: float | None = None  # of the model kept in the bundle, on the validation window
    reports: tuple[BacktestReport, ...] = ()  # newest first
    members: tuple[str, ...] = ()  # an ensemble's models
    member_seeds: tuple[int, ...] = ()
    problem: str | None = None
    document: dict[str, Any] = field(default_factory=dict, repr=False)  # bundle.json as read

    @property
    def last_report(self) -> BacktestReport | None:
        return self.reports[0] if self.reports else None

    @property
    def seeds(self) -> str:
        if self.seed is not None:
            return str(self.seed)
        return ",".join(map(str, self.member_seeds))

    def to_json(self) -> dict[str, Any]:
        last = self.last_report
        return {
            "name": self.name,
            "path": str(self.path),
            "kind": self.kind,
            "created_at": self.created_at,
            "seed": self.seed,
            "members": [{"name": n, "seed": s} for n, s in zip(self.members, self.member_seeds, strict=False)]
            if self.kind == "ensemble"
            else None,
            "data_source": self.data_source,
            "train": self.train.to_json() if self.train else None,
            "validation": self.validation.to_json() if self.validation else None,
            "timesteps": self.timesteps,
            "validation_sharpe": _finite(self.validation_sharpe),
            "last_backtest": last.to_json() if last else None,
            "backtests": len(self.reports),
            "problem": self.problem,
        }


@dataclass(frozen=True)
class Catalog:
    """The runs of a models folder, newest first, and the names of interrupted runs (not runs: no bundle)."""

    models_dir: Path
    results_dir: Path
    runs: tuple[Run, ...]
    interrupted: tuple[str, ...] = ()
    latest: str | None = None  # the run the ``latest`` link names


def latest_name(models_dir: Path) -> str | None:
    """The folder ``<models_dir>/latest`` points at (None: no link, or it points nowhere)."""
    link = Path(models_dir) / LATEST
    try:
        return link.resolve(strict=True).name if link.is_symlink() else None
    except OSError:
        return None


def list_runs(models_dir: Path, results_dir: Path) -> Catalog:
    """Every run in ``models_dir`` (unreadable ones flagged), newest first, with its reports in ``results_dir``."""
    reports = scan_reports(results_dir)
    runs, interrupted = [], []
    for folder in _entries(Path(models_dir)):
        if folder.name.endswith(INTERRUPTED_SUFFIX):
            interrupted.append(folder.name)
        else:
            runs.append(read_run(folder, reports))
    runs.sort(key=_age, reverse=True)
    return Catalog(
        Path(models_dir), Path(results_dir), tuple(runs), tuple(sorted(interrupted)), latest_name(models_dir)
    )


def find_run(
    reference: str | Path,
    models_dir: Path,
    results_dir: Path,
    reports: Mapping[str, list[BacktestReport]] | None = None,
) -> Run:
    """One run by name, path or ``latest``; a missing one names the runs there (as ``--model`` does).

    ``reports``: :func:`scan_reports` of ``results_dir`` when the caller has it (several runs, one scan)."""
    path = resolve_bundle(reference, models_dir)
    run = read_run(path, scan_reports(results_dir) if reports is None else reports)
    if run.problem:
        raise BundleError(f"{path}: unreadable: {run.problem}")
    return run


def _entries(models_dir: Path) -> list[Path]:
    try:
        children = list(models_dir.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise FinRLError(f"cannot read the models folder {models_dir}: {exc.strerror or exc}") from exc
    return [
        p for p in children if p.is_dir() and not p.is_symlink() and not p.name.startswith(".") and p.name != LATEST
    ]


def _age(run: Run) -> float:
    if run.created_at:
        try:
            return datetime.fromisoformat(run.created_at).timestamp()
        except ValueError:
            pass
    try:
        return run.path.stat().st_mtime
    except OSError:
        return 0.0


def read_run(path: Path, reports: Mapping[str, list[BacktestReport]] | None = None) -> Run:
    """The run in bundle folder ``path``: never raises for a bad manifest, the run says why instead.

    ``reports`` (:func:`scan_reports`) are matched by the run name in the manifest, the name a backtest
    records (``meta.model``): a folder copied or renamed keeps its manifest's name, and its reports.
    """
    by_model = reports or {}

    def reports_of(name: str) -> tuple[BacktestReport, ...]:
        return tuple(sorted(by_model.get(name, []), key=lambda r: r.written_at, reverse=True))

    ordered = reports_of(path.name)
    try:
        document = read_manifest(path)
        ordered = reports_of(str(document.get("run_name") or path.name))
        if is_ensemble(document):
            return _ensemble_run(path, document, ordered)
        manifest = Manifest.parse(document, path / MANIFEST_FILE)
    except FinRLError as exc:
        return Run(path.name, path, problem=_reason(exc, path), reports=ordered)
    except OSError as exc:
        return Run(path.name, path, problem=f"cannot read {MANIFEST_FILE}: {exc.strerror or exc}", reports=ordered)
    split = manifest.split
    timesteps = manifest.training.get("timesteps")
    return Run(
        name=path.name,
        path=path,
        created_at=manifest.created_at,
        seed=manifest.seed,
        data_source=_source(manifest.data),
        train=Span(split.train.start.isoformat(), split.train.end.isoformat()),
        validation=Span(split.validation.start.isoformat(), split.validation.end.isoformat())
        if split.validation
        else None,
        timesteps=int(timesteps) if isinstance(timesteps, int | float) else None,
        validation_sharpe=kept_validation_sharpe(manifest.training),
        reports=ordered,
        document=document,
    )


def _ensemble_run(path: Path, document: dict[str, Any], reports: tuple[BacktestReport, ...]) -> Run:
    from finrl.agents.ensemble_bundle import MEMBERS_DIR, EnsembleManifest

    manifest = EnsembleManifest.parse(document, path / MANIFEST_FILE)
    members = [Manifest.parse(read_manifest(path / MEMBERS_DIR / m.run_name), path) for m in manifest.members]
    trains = [m.split.train for m in members]
    validations = [m.split.validation for m in members if m.split.validation]
    return Run(
        name=path.name,
        path=path,
        kind="ensemble",
        created_at=manifest.created_at,
        data_source=_source(manifest.data) or (_source(members[0].data) if members else None),
        train=Span(min(w.start for w in trains).isoformat(), max(w.end for w in trains).isoformat())
        if trains
        else None,
        validation=Span(min(w.start for w in validations).isoformat(), max(w.end for w in validations).isoformat())
        if validations
        else None,
        reports=reports,
        members=tuple(m.run_name for m in manifest.members),
        member_seeds=tuple(m.seed for m in members),
        document=document,
    )


def _reason(exc: FinRLError, path: Path) -> str:
    """The error without the folder's own path in front (the row already names the run)."""
    text = str(exc).replace(str(path / MANIFEST_FILE), MANIFEST_FILE).replace(str(path), "the folder")
    return text.removeprefix("the folder: ")


def _source(data: dict[str, Any]) -> str | None:
    source = data.get("source")
    if source is None:
        return None
    symbol = data.get("symbol")
    return f"{source} {symbol}" if symbol else str(source)


def kept_validation_sharpe(training: dict[str, Any]) -> float | None:
    """The validation Sharpe of the model in ``model.zip``: the best evaluation's where the best was kept,
    else the last evaluation's (the final model's); None when training did not validate."""
    kept = training.get("kept_validation")
    if isinstance(kept, dict):
        return _finite(kept.get("sharpe"))
    if training.get("model_choice") == "best_validation_sharpe":
        return _finite(training.get("best_validation_sharpe"))
    history = training.get("validation_history") or []
    return _finite(history[-1].get("sharpe")) if history and isinstance(history[-1], dict) else None


def scan_reports(results_dir: Path) -> dict[str, list[BacktestReport]]:
    """The backtest reports in ``results_dir`` by run name. Folders that are not reports (multi-seed
    summaries, comparisons, staging) or whose metrics cannot be read are passed over."""
    found: dict[str, list[BacktestReport]] = {}
    try:
        folders = [p for p in Path(results_dir).iterdir() if REPORT_SEPARATOR in p.name and not p.name.startswith(".")]
    except OSError:
        return found
    for folder in folders:
        report = read_report(folder)
        if report is not None:
            found.setdefault(report.model, []).append(report)
    return found


def read_report(folder: Path) -> BacktestReport | None:
    path = folder / METRICS_FILE
    try:
        document = json.loads(path.read_text())
        written = path.stat().st_mtime
    except (OSError, ValueError):
        return None
    meta = document.get("meta") if isinstance(document, dict) else None
    if not isinstance(meta, dict) or not isinstance(document.get(AGENT), dict):
        return None
    test = Span.of({"start": meta.get("test_start"), "end": meta.get("test_end")})
    model = meta.get("model") or folder.name.split(REPORT_SEPARATOR)[0]
    if test is None:
        return None
    metrics = {k: v for k, v in document.items() if k != "meta" and isinstance(v, dict)}
    warnings = tuple(str(w) for w in meta.get("warnings") or [])
    rate = meta.get("risk_free_rate")
    rate = float(rate) if isinstance(rate, int | float) else None
    return BacktestReport(folder, str(model), test, written, metrics, warnings, rate)


def run_details(run: Run) -> dict[str, Any]:
    """Everything ``spy-rl runs show`` says about a run, as JSON-ready data."""
    details = run.to_json()
    details["backtests"] = [r.to_json() for r in run.reports]
    document = run.document
    if run.kind == "ensemble":
        details["ensemble"] = {"rule": document.get("rule"), "anchor": document.get("anchor")}
    data = document.get("data") or {}
    details["data"] = {k: data.get(k) for k in ("source", "symbol", "label", "fingerprint", "first_date", "last_date")}
    env = document.get("env_config") or {}
    details["test"] = (document.get("split") or {}).get("test")
    details["ppo"] = document.get("ppo_config")
    details["action_space"] = {
        k: env.get(k) for k in ("action_space", "weight_levels", "rebalance_band", "episode_length") if k in env
    }
    details["reward"] = {k: env.get(k) for k in ("reward", "dsr_eta", "drawdown_penalty") if k in env}
    details["execution"] = env.get("execution")
    details["initial_cash"] = env.get("initial_cash")
    spec = document.get("feature_spec") or {}
    details["features"] = {
        "observed": spec.get("observation_columns"),
        "indicators": spec.get("indicators"),
        "use_vix": spec.get("use_vix"),
    }
    training = document.get("training") or {}
    details["training"] = {
        k: training.get(k)
        for k in (
            "timesteps",
            "wall_seconds",
            "steps_per_second",
            "model_choice",
            "best_validation_timesteps",
            "kept_validation",
            "validation_buy_and_hold",
            "tensorboard_run",
        )
    }
    details["training"]["evaluations"] = len(training.get("validation_history") or [])
    details["tune"] = document.get("tune")
    return details


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
