"""``spy-rl tune init`` and ``spy-rl tune report`` only write and read the study: they run with torch and
stable-baselines3 unimportable (a report host, or the machine that creates the study, needs no training
stack). The workers and ``tune best`` train, and import them."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from finrl.research.tune.trials import FOLD_SCORES_ATTR, MOMENTS_ATTR, SEED_SHARPES_ATTR, ReturnMoments
from unit_tests.applications.test_startup import TRAINING_ONLY, run_cli
from unit_tests.research.tune_study import init_args

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def add_finished_trial(storage: str, study: str) -> None:
    """A complete trial as a worker leaves it (its parameters, score and the attributes the report reads)."""
    moments = ReturnMoments(250, 0.05, -0.2, 4.0)
    trial = optuna.trial.create_trial(
        params={"learning_rate": 3e-4, "reward": "log_return"},
        distributions={
            "learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-3, log=True),
            "reward": optuna.distributions.CategoricalDistribution(["log_return", "differential_sharpe"]),
        },
        value=0.8,
        user_attrs={FOLD_SCORES_ATTR: [0.8], SEED_SHARPES_ATTR: [0.05], MOMENTS_ATTR: moments.to_json()},
    )
    optuna.load_study(study_name=study, storage=storage).add_trial(trial)


def test_tune_init_and_report_run_without_torch(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/studies/spy.db"
    code, modules, output = run_cli(init_args(tmp_path, "light", storage), tmp_path, blocked=TRAINING_ONLY)
    assert code == 0 and "light (created)" in output, output
    assert not modules & set(TRAINING_ONLY), sorted(modules & set(TRAINING_ONLY))

    add_finished_trial(storage, "light")
    page = tmp_path / "report.html"
    args = ["tune", "report", "--study", "light", "--storage", storage, "--output", str(page)]
    code, modules, output = run_cli(args, tmp_path, blocked=TRAINING_ONLY)
    assert code == 0 and "best trial:   0" in output, output
    assert not modules & set(TRAINING_ONLY), sorted(modules & set(TRAINING_ONLY))
    assert page.is_file()
