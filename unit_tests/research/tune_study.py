"""A tiny tuning study shared by the tune tests: a generated market, seconds-long trainings, and the
``spy-rl tune`` command lines (in process, or as the real worker processes a deployment starts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from unit_tests.conftest import make_bars

TINY = ["--n-envs", "2", "--n-steps", "64", "--batch-size", "64", "--eval-freq", "128",
        "--episode-length", "40", "--net-arch", "8,8"]  # fmt: skip
PLAN = ["--train-years", "1", "--val-months", "3", "--test-months", "3", "--seeds", "1"]
# two settings, small ranges: every drawn combination is valid and each trial takes seconds
SPACE = """\
learning_rate: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}
reward: {type: categorical, choices: [log_return, differential_sharpe]}
"""


def write_market(root: Path) -> list[str]:
    """A 560-day generated market (3 folds of the plan above) as CSV files; the data flags that read it."""
    root.mkdir(parents=True, exist_ok=True)
    bars = make_bars(560, start="2016-01-04", seed=5)
    bars.drop(columns="vix").to_csv(root / "bars.csv", index_label="date")
    bars[["vix"]].to_csv(root / "vix.csv", index_label="date")
    return ["--source", "csv", "--csv", str(root / "bars.csv"), "--vix-csv", str(root / "vix.csv")]


def folders(root: Path) -> list[str]:
    return ["--datasets-dir", str(root / "datasets"), "--results-dir", str(root / "results"),
            "--tensorboard-dir", str(root / "tb")]  # fmt: skip


def init_args(root: Path, study: str, storage: str, *, timesteps: int = 256) -> list[str]:
    """``spy-rl tune init`` of the tiny study; ``timesteps`` per training (a large number keeps a trial
    training for as long as a test needs it to)."""
    (root / "space.yaml").write_text(SPACE)
    return ["tune", "init", "--study", study, "--storage", storage, "--search-space", str(root / "space.yaml"),
            *write_market(root / "market"), *TINY, "--timesteps", str(timesteps), *PLAN, *folders(root)]  # fmt: skip


def worker(root: Path, study: str, storage: str, n_trials: int, env: dict[str, str]) -> subprocess.Popen[str]:
    """``spy-rl tune run`` as its own process (what Compose and the Indexed Job start)."""
    command = [sys.executable, "-m", "finrl.applications.spy_rl_trading.cli", "--log-level", "INFO", "tune", "run",
               "--study", study, "--storage", storage, "--n-trials", str(n_trials), *folders(root)]  # fmt: skip
    log = (root / f"worker-{env.get('JOB_COMPLETION_INDEX', 'x')}.log").open("w")
    return subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, text=True,
                            cwd=root)  # fmt: skip
