"""Backtest orchestration for ``spy-rl backtest``: bundles (or ensembles) by reference, data as each
was trained on (unless the user says otherwise), costs as each recorded them (unless the user gives
others), the paper trader's risk limits (unless ``--no-risk-limits``), the test window, reports, and
the multi-seed summary."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from finrl.agents.bundle import MANIFEST_FILE, BundleError, is_ensemble, read_manifest
from finrl.agents.ensemble_bundle import AnyBundle, load_any_bundle
from finrl.applications.spy_rl_trading.settings import COST_FIELDS, Settings
from finrl.backtest.engine import BacktestResult, default_test_window, run_backtest
from finrl.backtest.report import write_report
from finrl.fileio import atomic_write_json, filesystem_errors
from finrl.meta.dataset import FeatureData, load_feature_data
from finrl.meta.env.spy_env import EnvConfig
from finrl.meta.preprocessing import DateWindow
from finrl.performance import summarize_runs
from finrl.trade.risk import RiskLimits


def env_config_for_bundle(settings: Settings, bundle: AnyBundle) -> EnvConfig:
    """The bundle's env config with the costs and fill rule the user gave (a flag or its variable).

    A cost the user did not set keeps the bundle's recorded value, not today's default: re-running
    a bundle means its own costs unless asked otherwise.
    """
    given = settings.model_fields_set
    config = bundle.env_config
    costs = replace(config.execution.costs, **{name: getattr(settings, name) for name in COST_FIELDS if name in given})
    fill_at = settings.fill_at if "fill_at" in given else config.execution.fill_at
    return replace(config, execution=replace(config.execution, costs=costs, fill_at=fill_at))


def backtest_risk_limits(settings: Settings) -> RiskLimits | None:
    """The paper trader's limits (the settings of the same names), or None with ``--no-risk-limits``."""
    if not settings.backtest_risk_limits:
        return None
    return settings.risk_limits()


@dataclass(frozen=True)
class BacktestRun:
    result: BacktestResult
    directory: Path


def run_backtests(settings: Settings, references: list[str]) -> list[BacktestRun]:
    """Backtest each bundle (a path, run name, ``latest`` or a folder of bundles) on its test window."""
    bundles = [load_any_bundle(path, settings.trained_models_dir) for path in expand_references(references)]
    runs: list[BacktestRun] = []
    loaded: dict[str, FeatureData] = {}
    for bundle in bundles:
        effective = settings.with_training_data(bundle.manifest.settings)
        key = repr(effective.data_request()) + repr(bundle.feature_spec)
        if key not in loaded:
            # the user's --vix/--no-vix shapes the data; a mismatch with the bundle is then reported as such
            spec = replace(bundle.feature_spec, use_vix=effective.use_vix)
            loaded[key] = load_feature_data(effective.data_request(), effective.datasets_dir, spec)
        data = loaded[key]
        window = test_window(effective, bundle, data.features)
        env_config = env_config_for_bundle(settings, bundle)
        result = run_backtest(
            bundle,
            data.features,
            window,
            settings.risk_free_rate,
            env_config if env_config != bundle.env_config else None,
            backtest_risk_limits(settings),
        )
        if data.market.fingerprint != bundle.manifest.data_fingerprint:
            result.warnings.append(
                "the data differs from the training data (fingerprint mismatch): fine for new days, "
                "check the source if the windows overlap"
            )
        with filesystem_errors(settings.results_dir, flag="--results-dir"):
            directory = write_report(result, settings.results_dir / f"{bundle.run_name}__{window.start}_{window.end}")
        runs.append(BacktestRun(result, directory))
    return runs


def expand_references(references: list[str]) -> list[Path | str]:
    """A folder holding several bundles (a seed sweep) stands for all of its trained models.

    Ensembles in it (``tune best`` writes the seeds' next to them) and hidden staging folders are not
    seeds: averaging an ensemble in with its own members would count them twice. Name one to test it.
    """
    expanded: list[Path | str] = []
    for reference in references or ["latest"]:
        path = Path(reference)
        if path.is_dir() and not (path / MANIFEST_FILE).exists():
            members = sorted(p for p in path.iterdir() if _is_trained_model(p))
            if members:
                expanded.extend(members)
                continue
        expanded.append(reference)
    return expanded


def _is_trained_model(folder: Path) -> bool:
    if folder.is_symlink() or folder.name.startswith(".") or not (folder / MANIFEST_FILE).is_file():
        return False
    try:
        return not is_ensemble(read_manifest(folder))
    except BundleError:
        return True  # loading it reports the problem in one line


def test_window(settings: Settings, bundle: AnyBundle, features: pd.DataFrame) -> DateWindow:
    """--test-start/--test-end where given, else the days after what the model saw."""
    index = pd.DatetimeIndex(features.index)
    if settings.test_start and settings.test_end:
        return DateWindow(settings.test_start, settings.test_end)
    if settings.test_start:
        return DateWindow(settings.test_start, index[-1].date())
    default = default_test_window(bundle, index)
    return DateWindow(default.start, settings.test_end or default.end)


def write_multi_seed_summary(settings: Settings, runs: list[BacktestRun]) -> Path:
    """Mean and spread of every metric across the models (seeds): a lucky seed is not skill."""
    first = runs[0].result.window
    names = sorted(run.result.bundle.run_name for run in runs)
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:8]
    directory = settings.results_dir / f"multi-{len(runs)}-models__{first.start}_{first.end}__{digest}"
    per_model = {run.result.bundle.run_name: run.result.metrics for run in runs}
    document = {
        "models": names,
        "agent": summarize_runs([m["agent"] for m in per_model.values()]),
        "buy_and_hold": summarize_runs([m["buy_and_hold"] for m in per_model.values()]),
        "per_model": per_model,
        "reports": {run.result.bundle.run_name: str(run.directory) for run in runs},
    }
    with filesystem_errors(settings.results_dir, flag="--results-dir"):
        atomic_write_json(directory / "summary.json", document)
    return directory
