"""Shared fixtures: real sample bars, generated bars on the NYSE calendar, the shared data folder,
and tiny model bundles trained once per session with ``spy-rl train`` on the offline sample."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest

if TYPE_CHECKING:
    from finrl.agents.ppo import PPOConfig
    from finrl.agents.training import TrainingJob
    from finrl.applications.spy_rl_trading.settings import Settings
    from finrl.meta.data.request import DataRequest
    from finrl.meta.env.execution import CostModel, ExecutionConfig
    from finrl.meta.env.spy_env import EnvConfig
    from finrl.meta.features import FeatureSpec
    from finrl.trade.risk import RiskLimits
    from finrl.trade.trader import TraderConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


# ---- the defaults, read from Settings (their one declaration); tests change only what they test


@cache
def default_settings() -> Settings:
    """``Settings()`` from its declared defaults alone: no SPY_*/ALPACA_* variable, .env or secret file."""
    from finrl.applications.spy_rl_trading.settings import Settings

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SPY_", "ALPACA_"))}
    with mock.patch.dict(os.environ, clean, clear=True):
        return Settings(_env_file=None, _secrets_dir=None)


def cost_model(**changes: Any) -> CostModel:
    return replace(default_settings().execution_config().costs, **changes)


def execution_config(**changes: Any) -> ExecutionConfig:
    return replace(default_settings().execution_config(), **changes)


def env_config(**changes: Any) -> EnvConfig:
    return replace(default_settings().env_config(), **changes)


def discrete3_config(**changes: Any) -> EnvConfig:
    """``env_config`` in the sell/hold/buy space with the log-return reward, whatever the default agent is:
    for the tests of those semantics (positions, fills, costs, dividends)."""
    return env_config(**{"action_space": "discrete3", "reward": "log_return", **changes})


def ppo_config(**changes: Any) -> PPOConfig:
    return replace(default_settings().ppo_config(), **changes)


def feature_spec(**changes: Any) -> FeatureSpec:
    return replace(default_settings().feature_spec(), **changes)


def data_request(**changes: Any) -> DataRequest:
    return replace(default_settings().data_request(), **changes)


def risk_limits(**changes: Any) -> RiskLimits:
    return replace(default_settings().risk_limits(), **changes)


def trader_config(**changes: Any) -> TraderConfig:
    from finrl.applications.spy_rl_trading import paper_service

    return replace(paper_service.trader_config(default_settings()), **changes)


def decision_delay() -> timedelta:
    from finrl.applications.spy_rl_trading import paper_service

    return paper_service.decision_delay(default_settings())


def training_job(**fields: Any) -> TrainingJob:
    """A job with the settings' defaults for every value the caller leaves out (as ``spy-rl train`` maps them)."""
    from finrl.agents.training import TrainingJob

    settings = default_settings()
    defaults = {
        "ppo": settings.ppo_config(),
        "env": settings.env_config(),
        "seed": settings.random_seed,
        "total_timesteps": settings.total_timesteps,
        "eval_freq": settings.eval_freq,
        "checkpoint_freq": settings.checkpoint_freq,
    }
    return TrainingJob(**{**defaults, **fields})


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's SPY_*/ALPACA_* variables, .env file or /run/secrets."""
    for name in list(os.environ):
        if name.startswith(("SPY_", "ALPACA_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPY_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("SPY_SECRETS_DIR", str(tmp_path / "absent-secrets"))
    yield


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    """Real S&P 500 bars with VIX from the arch package (2014-01-03..2018-12-31)."""
    from finrl.meta.data.sources import SampleBarSource, SampleVixSource

    bars = SampleBarSource().fetch("SPY", None, None)
    vix = SampleVixSource().fetch_vix(None, None)
    return bars.loc[vix.index[0] :].join(vix, how="left")


def nyse_days(start: str, periods: int) -> pd.DatetimeIndex:
    from finrl.calendar import trading_sessions

    days = trading_sessions(pd.Timestamp(start), pd.Timestamp(start) + pd.Timedelta(days=periods * 2 + 30))
    return days[:periods]


def make_bars(periods: int = 300, start: str = "2016-01-04", seed: int = 0, vix: bool = True) -> pd.DataFrame:
    """Plausible random-walk daily bars on real NYSE sessions (valid under validate_bars)."""
    rng = np.random.default_rng(seed)
    index = nyse_days(start, periods)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, periods)))
    open_ = close * np.exp(rng.normal(0, 0.003, periods))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, periods))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, periods))
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "adj_close": close * 0.9,
            "volume": rng.integers(1_000_000, 5_000_000, periods).astype(float),
        },
        index=pd.DatetimeIndex(index, name="date"),
    )
    if vix:
        frame["vix"] = 15 + 5 * rng.random(periods)
    return frame


@pytest.fixture
def bars() -> pd.DataFrame:
    return make_bars()


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "spy_daily.csv").is_file():
        pytest.skip("../shared/data is absent (only development machines and CI have it)")
    return SHARED_DATA


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index_label="date")
    return path


# a model that trains in about a second: enough to exercise every path that reads a bundle
TINY_TRAINING = ("--timesteps", "1024", "--n-envs", "2", "--n-steps", "64", "--batch-size", "64", "--eval-freq", "0",
                 "--checkpoint-freq", "0")  # fmt: skip


def isolated_env(root: Path) -> dict[str, str | None]:
    """For session fixtures, which run before the autouse per-test isolation: no SPY_*/ALPACA_* leaks in."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("SPY_", "ALPACA_"))}
    env.update({"SPY_ENV_FILE": str(root / "absent.env"), "SPY_SECRETS_DIR": str(root / "absent-secrets")})
    return env


@pytest.fixture(scope="session")
def sample_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny bundles (seeds 1 and 2, r1 and r2) trained with ``spy-rl train`` on the offline sample.

    Read-only for tests: copy one before changing it. Their datasets cache is ``<models>/../datasets``.
    """
    from typer.testing import CliRunner

    from finrl.applications.spy_rl_trading.cli import app

    root = tmp_path_factory.mktemp("sample-bundles")
    bundles = {}
    for name, seed in (("r1", 1), ("r2", 2)):
        args = ["train", "--source", "sample", *TINY_TRAINING, "--seed", str(seed), "--run-name", name,
                "--models-dir", root / "models", "--datasets-dir", root / "datasets",
                "--tensorboard-dir", root / "tensorboard"]  # fmt: skip
        result = CliRunner().invoke(app, [str(a) for a in args], env=isolated_env(root), catch_exceptions=False)
        assert result.exit_code == 0, result.output + result.stderr
        bundles[name] = root / "models" / name
    return bundles


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``make test-fast`` runs ``-m unit``: a test that trains, runs a process or takes seconds is not unit."""
    both = [
        item.nodeid
        for item in items
        if item.get_closest_marker("unit")
        and any(item.get_closest_marker(m) for m in ("integration", "slow", "docker"))
    ]
    if both:
        raise pytest.UsageError(f"marked unit and integration/slow/docker at once: {', '.join(both)}")


# the folders the commands write by default: a test that forgets a --*-dir flag writes into the checkout
DEFAULT_OUTPUT_FOLDERS = ("trained_models", "tensorboard_logs", "datasets", "results", "logs", "studies")
_OUTPUTS_BEFORE = pytest.StashKey[set[str]]()


def _default_outputs() -> set[str]:
    found = set()
    for name in DEFAULT_OUTPUT_FOLDERS:
        folder = REPO_ROOT / name
        if folder.is_dir():
            found |= {name, *(f"{name}/{entry.name}" for entry in folder.iterdir())}
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_OUTPUTS_BEFORE] = _default_outputs()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test wrote into the checkout's default output folders."""
    before = session.config.stash.get(_OUTPUTS_BEFORE, None)
    if before is None:
        return
    written = sorted(_default_outputs() - before)
    if written:
        shown = ", ".join(written[:10])
        print(f"\nerror: tests wrote into the checkout (a missing --*-dir flag?): {shown}", flush=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="module")
def latest_workdir(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder as after `make run`: ``trained_models/r1`` (the session's tiny bundle) as ``latest`` and
    its ``datasets`` cache. Copies, one per test module: paper trading refreshes the data it reads."""
    import shutil

    from finrl.agents.bundle import point_latest

    root = tmp_path_factory.mktemp("latest-r1")
    models = root / "trained_models"
    shutil.copytree(sample_bundles["r1"], models / "r1")
    point_latest(models, models / "r1")
    shutil.copytree(sample_bundles["r1"].parent.parent / "datasets", root / "datasets")
    return root


@pytest.fixture(scope="module")
def latest_models(latest_workdir: Path) -> Path:
    """The models folder of :func:`latest_workdir`: r1, and latest pointing at it."""
    return latest_workdir / "trained_models"
