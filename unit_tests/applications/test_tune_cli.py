"""``spy-rl tune`` on the embedded SQLite storage, end to end with tiny trainings: a study is created
once, a worker finishes it, a rerun adds nothing, repeated parameters reuse the walk-forward cache,
the report is one offline page with the Deflated Sharpe Ratio against the study's trials, and the
best configuration becomes normal bundles that record their origin. User errors are one line."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from finrl.agents.bundle import load_bundle
from finrl.applications.spy_rl_trading.cli import app
from finrl.backtest.engine import default_test_window
from finrl.meta.preprocessing import DateWindow
from finrl.research.folds import Fold
from unit_tests.research.tune_study import folders, init_args

pytestmark = pytest.mark.integration


def spy_rl(*args: str, code: int = 0) -> str:
    outcome = CliRunner().invoke(app, ["--log-level", "WARNING", *args], catch_exceptions=False)
    text = outcome.output  # stdout and stderr, as a terminal shows them
    assert outcome.exit_code == code, text
    return text


def line(output: str, label: str) -> str:
    return next(row for row in output.splitlines() if row.startswith(label)).split(":", 1)[1].strip()


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/studies/spy.db"


def test_a_sqlite_study_from_init_to_best_bundles(tmp_path: Path, storage: str) -> None:
    created = spy_rl(*init_args(tmp_path, "small", storage))
    assert "small (created)" in created and "3 x 1 seed(s)" in created
    assert "small (exists)" in spy_rl(*init_args(tmp_path, "small", storage))  # init twice: harmless

    output = spy_rl("tune", "run", "--study", "small", "--storage", storage, "--n-trials", "3", *folders(tmp_path))
    assert line(output, "study:") == "3 of 3 trials finished"
    again = spy_rl("tune", "run", "--study", "small", "--storage", storage, "--n-trials", "3", *folders(tmp_path))
    assert line(again, "trials here:") == "none"  # the study is done: a late worker adds nothing

    study = optuna.load_study(study_name="small", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    for trial in study.trials:
        assert len(trial.user_attrs["fold_scores"]) == 3 == len(trial.intermediate_values)  # one value per fold
        assert trial.value == pytest.approx(sum(trial.user_attrs["fold_scores"]) / 3)

    page = tmp_path / "report.html"
    report = spy_rl("tune", "report", "--study", "small", "--storage", storage, "--output", str(page))
    assert "(3 distinct configurations x seeds counted)" in line(report, "DSR:")
    text = page.read_text()
    assert "<script src" not in text and "Plotly.newPlot" in text  # plotly.js inlined: opens offline
    for title in ("Optimisation history", "Parameter importances", "Parallel coordinates", "Deflated Sharpe Ratio"):
        assert title in text

    models = tmp_path / "models"
    best = spy_rl("tune", "best", "--study", "small", "--storage", storage, "--seeds", "4,5", "--models-dir",
                  str(models), *folders(tmp_path))  # fmt: skip
    paths = [
        Path(line) for line in (row.split(":", 1)[1].strip() for row in best.splitlines() if row.startswith("model:"))
    ]
    assert [p.name for p in paths] == [f"tune-small-trial{study.best_trial.number}-seed{s}" for s in (4, 5)]
    folds = study_folds(tmp_path)
    first, last = folds[0], folds[-1]
    days = pd.read_csv(tmp_path / "market" / "bars.csv", index_col="date", parse_dates=True).index
    for path, seed in zip(paths, (4, 5), strict=True):
        bundle = load_bundle(path, models)  # hashes still match: the origin went into bundle.json only
        assert bundle.seed == seed and bundle.manifest.tune is not None
        assert bundle.manifest.tune.study == "small" and bundle.manifest.tune.trial == study.best_trial.number
        assert bundle.manifest.tune.params == study.best_trial.params
        # trained as the study's last fold: the study chose nothing with the days of the default backtest
        assert (bundle.split.train, bundle.split.validation) == (last.train, last.validation)
        assert (bundle.manifest.tune.selection_start, bundle.manifest.tune.selection_end) == (
            first.train.start,
            last.validation.end,
        )
        assert default_test_window(bundle, days).start > last.validation.end
    assert (models / "latest").resolve() == paths[-1].resolve()
    assert line(best, "chosen on:").startswith(f"{first.train.start}..{last.validation.end}")
    ensemble = Path(line(best, "ensemble:"))  # the seeds as one bundle: spy-rl ensemble's, mean weight
    assert ensemble.name == f"tune-small-trial{study.best_trial.number}-ensemble"
    manifest = json.loads((ensemble / "bundle.json").read_text())
    assert manifest["kind"] == "ensemble" and manifest["rule"] == "mean_weight"
    assert date.fromisoformat(manifest["anchor"]) > last.validation.end
    assert [m["run_name"] for m in manifest["members"]] == [p.name for p in paths]
    assert not [p for p in models.iterdir() if p.name.startswith(".")]  # no staging left behind


def study_folds(root: Path) -> list[Fold]:
    """The folds the study's trials trained, as the walk-forward cache's bundles record them."""
    cache = root / "results" / "walkforward-cache"
    recorded = {json.dumps(load_bundle(p, cache).manifest.settings["walkforward_fold"], sort_keys=True)
                for p in cache.iterdir() if (p / "bundle.json").is_file()}  # fmt: skip
    folds = [json.loads(text) for text in recorded]
    return sorted(
        (Fold(f["fold"], *(DateWindow.from_dict(f[k]) for k in ("train", "validation", "test"))) for f in folds),
        key=lambda fold: fold.number,
    )


def test_repeated_parameters_train_nothing_new(tmp_path: Path, storage: str) -> None:
    args = init_args(tmp_path, "fixed-space", storage)
    (tmp_path / "space.yaml").write_text("reward: {type: categorical, choices: [log_return]}\n")
    spy_rl(*args)
    spy_rl("tune", "run", "--study", "fixed-space", "--storage", storage, "--n-trials", "2", *folders(tmp_path))
    cache = tmp_path / "results" / "walkforward-cache"
    trained = [p for p in cache.iterdir() if (p / "bundle.json").is_file() and not p.is_symlink()]
    assert len(trained) == 3  # 3 folds x 1 seed, trained once for both trials
    study = optuna.load_study(study_name="fixed-space", storage=storage)
    assert study.trials[0].value == study.trials[1].value


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("total_timesteps: {type: int, low: 100, high: 200}\n", "'total_timesteps' is not a setting a trial can draw"),
        ("reward: {type: categorical, choices: [log_return, sharpe_please]}\n", "search space: reward='sharpe_please'"),
        ("reward: {type: categorical, choices: [log_return]\n", "not valid YAML"),
    ],
)
def test_a_bad_search_space_is_refused_in_one_line(tmp_path: Path, storage: str, space: str, message: str) -> None:
    args = init_args(tmp_path, "bad", storage)
    (tmp_path / "space.yaml").write_text(space)
    output = spy_rl(*args, code=2)
    errors = [row for row in output.splitlines() if row.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], output
    assert not (tmp_path / "studies").exists() or "bad" not in json.dumps(
        [s.study_name for s in optuna.get_all_study_summaries(storage)]
    )


def test_overlapping_validation_windows_are_refused_in_one_line(tmp_path: Path, storage: str) -> None:
    """A trial's validation returns are its folds' windows end to end: overlapping ones would count days twice."""
    args = [*init_args(tmp_path, "overlap", storage), "--val-months", "6", "--step-months", "3"]
    output = spy_rl(*args, code=2)
    errors = [row for row in output.splitlines() if row.startswith("error:")]
    assert errors == [
        "error: --step-months 3 is shorter than --val-months 6: validation windows would overlap and the report's "
        "Deflated Sharpe Ratio would count their shared days twice"
    ], output
    assert not (tmp_path / "studies").exists()  # refused before the storage was touched


def test_a_worker_without_a_study_is_one_line(tmp_path: Path, storage: str) -> None:
    output = spy_rl("tune", "run", "--study", "absent", "--storage", storage, "--n-trials", "1", code=1)
    assert f"error: no study named 'absent' in {storage}: create it with spy-rl tune init" in output
    assert "error: --study 'a b'" in spy_rl("tune", "report", "--study", "a b", "--storage", storage, code=2)
    refused = spy_rl("tune", "report", "--study", "x", "--storage", "mysql://h/db", code=2)
    assert "error: --storage: expected sqlite:///FILE or postgresql+psycopg://" in refused
