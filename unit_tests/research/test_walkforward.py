"""``spy-rl walkforward`` end to end on generated markets: the interface others rely on, cached
and resumable fold x seed training, byte-identical reruns, results independent of the worker
count, collapse flags, and a verdict that finds a planted edge and no edge in noise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from finrl.applications.spy_rl_trading.cli import app
from unit_tests.conftest import make_bars

pytestmark = pytest.mark.integration

TINY = ["--timesteps", "512", "--n-envs", "2", "--n-steps", "64", "--batch-size", "64", "--eval-freq", "256",
        "--episode-length", "40", "--net-arch", "16,16"]  # fmt: skip
PLAN = ["--train-years", "1", "--val-months", "3", "--test-months", "3"]
OUTPUTS = ("summary.json", "nav.csv", "folds.csv", "report.html")


def write_market(bars: pd.DataFrame, root: Path) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    bars.drop(columns="vix").to_csv(root / "bars.csv", index_label="date")
    bars[["vix"]].to_csv(root / "vix.csv", index_label="date")
    return ["--source", "csv", "--csv", str(root / "bars.csv"), "--vix-csv", str(root / "vix.csv")]


def walkforward(data: list[str], results: Path, *args: str) -> tuple[Path, str]:
    folders = ["--results-dir", str(results), "--datasets-dir", str(results.parent / "datasets"),
               "--tensorboard-dir", str(results.parent / "tb")]  # fmt: skip
    outcome = CliRunner().invoke(app, ["walkforward", *data, *TINY, *PLAN, *folders, *args], catch_exceptions=False)
    assert outcome.exit_code == 0, outcome.output + outcome.stderr
    report = next(line for line in outcome.output.splitlines() if line.startswith("report:"))
    return Path(report.split(":", 1)[1].strip()), outcome.output


@pytest.fixture(scope="module")
def random_walk(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return write_market(make_bars(560, start="2016-01-04", seed=5), tmp_path_factory.mktemp("random-walk"))


def test_outputs_follow_the_interface_and_a_rerun_trains_nothing(random_walk: list[str], tmp_path: Path) -> None:
    run, output = walkforward(random_walk, tmp_path / "results", "--seeds", "3")
    assert "trained now: 3" in output
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["folds"]) == 3
    for fold in summary["folds"]:
        assert {"test_start", "test_end", "seeds", "buy_and_hold"} <= fold.keys()
        (seed,) = fold["seeds"]
        assert seed["seed"] == 3 and {"sharpe", "total_return", "exposure"} <= seed["agent"].keys()
        assert isinstance(seed["collapse"], list)
        assert {"sharpe", "total_return"} <= fold["buy_and_hold"].keys()
    for who in ("agent", "buy_and_hold"):
        assert {"sharpe", "total_return", "max_drawdown"} <= summary["oos"][who].keys()
    stats = summary["stats"]
    assert stats["n_trials"] == 1
    assert {
        "psr_vs_zero",
        "psr_vs_benchmark",
        "dsr",
        "sharpe_diff",
        "sharpe_diff_ci95",
        "p_value",
        "verdict",
    } <= stats.keys()
    assert "buy-and-hold" in stats["verdict"]

    nav = pd.read_csv(run / "nav.csv", index_col="date", parse_dates=True)
    assert list(nav.columns) == ["agent", "buy_and_hold"] and nav.index.is_unique and nav.index.is_monotonic_increasing
    folds = pd.read_csv(run / "folds.csv")
    assert len(folds) == 3 and set(folds["seed"]) == {3}
    tested = sum(len(nav.loc[f["test_start"] : f["test_end"]]) for f in summary["folds"])
    assert tested == len(nav) == summary["oos"]["days"]  # each test day in exactly one fold
    assert stats["verdict"] in (run / "report.html").read_text()

    before = {name: (run / name).read_bytes() for name in OUTPUTS}
    again, output = walkforward(random_walk, tmp_path / "results", "--seeds", "3")
    assert again == run and "trained now: 0" in output
    assert {name: (run / name).read_bytes() for name in OUTPUTS} == before


def test_an_interrupted_or_extended_run_trains_only_what_is_missing(random_walk: list[str], tmp_path: Path) -> None:
    walkforward(random_walk, tmp_path / "results", "--seeds", "3")
    cache = tmp_path / "results" / "walkforward-cache"
    trained = sorted(p for p in cache.iterdir() if (p / "bundle.json").is_file() and not p.is_symlink())
    assert len(trained) == 3
    import shutil

    shutil.rmtree(trained[-1])  # as if killed before the last fold finished
    _, output = walkforward(random_walk, tmp_path / "results", "--seeds", "3")
    assert "trained now: 1" in output


def test_several_seeds_trade_their_mean_weight_and_workers_change_nothing(
    random_walk: list[str], tmp_path: Path
) -> None:
    one, _ = walkforward(random_walk, tmp_path / "one-worker", "--seeds", "1,2")
    two, output = walkforward(random_walk, tmp_path / "two-workers", "--seeds", "1,2", "--workers", "2")
    assert "trained now: 6" in output
    for name in OUTPUTS:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    summary = json.loads((one / "summary.json").read_text())
    assert summary["agent_definition"] == "ensemble: the mean target weight of 2 seeds' policies"
    assert summary["stats"]["n_trials"] == 2
    nav = pd.read_csv(one / "nav.csv", index_col="date", parse_dates=True)
    for fold in summary["folds"]:
        # an equal split of two traders is about their mean (it trades the mean weight, costs netted)
        seeds = [s["agent"]["total_return"] for s in fold["seeds"]]
        assert fold["agent"]["total_return"] == pytest.approx(np.mean(seeds), abs=0.01)
    assert len(nav) == summary["oos"]["days"]


def test_each_configuration_tried_counts_as_trials(random_walk: list[str], tmp_path: Path) -> None:
    walkforward(random_walk, tmp_path / "results", "--seeds", "3")
    run, _ = walkforward(random_walk, tmp_path / "results", "--seeds", "3", "--learning-rate", "0.001")
    assert json.loads((run / "summary.json").read_text())["stats"]["n_trials"] == 2
    again, _ = walkforward(random_walk, tmp_path / "results", "--seeds", "3")  # a rerun is not a new trial
    assert json.loads((again / "summary.json").read_text())["stats"]["n_trials"] == 2


# ---------------------------------------------------------------- does the verdict find edges, and only edges?

LEARNING = ["--n-envs", "8", "--n-steps", "128", "--batch-size", "512", "--learning-rate", "0.001", "--ent-coef", "0",
            "--episode-length", "200", "--eval-freq", "20000"]  # fmt: skip
EDGE_PLAN = ["--train-years", "2", "--val-months", "6", "--test-months", "6"]


def edge_walkforward(bars: pd.DataFrame, root: Path, timesteps: int) -> dict[str, object]:
    data = write_market(bars, root / "market")
    folders = ["--results-dir", str(root / "results"), "--datasets-dir", str(root / "datasets"),
               "--tensorboard-dir", str(root / "tb")]  # fmt: skip
    args = ["walkforward", *data, *LEARNING, *EDGE_PLAN, *folders, "--timesteps", str(timesteps), "--seeds", "7"]
    outcome = CliRunner().invoke(app, args, catch_exceptions=False)
    assert outcome.exit_code == 0, outcome.output + outcome.stderr
    report = next(line for line in outcome.output.splitlines() if line.startswith("report:"))
    summary: dict[str, object] = json.loads((Path(report.split(":", 1)[1].strip()) / "summary.json").read_text())
    return summary


@pytest.mark.slow
def test_a_planted_edge_is_judged_real_at_95_percent(tmp_path: Path) -> None:
    """VIX on day t gives the sign of day t+1's move: an edge a policy can learn and keep out of sample."""
    from unit_tests.agents.test_learning import DAYS, market

    rng = np.random.default_rng(1)
    signal = rng.choice([-1.0, 1.0], DAYS)
    moves = np.r_[0.0, 0.006 * signal[:-1]] + rng.normal(0, 0.004, DAYS)
    summary = edge_walkforward(market(moves, vix=20 + 5 * signal), tmp_path, timesteps=60_000)
    stats = summary["stats"]
    assert isinstance(stats, dict)
    assert stats["verdict"].startswith("beats buy-and-hold at 95% confidence"), stats
    assert stats["p_value"] < 0.05 and stats["sharpe_diff_ci95"][0] > 0


@pytest.mark.slow
def test_a_noise_market_is_not_judged_an_edge(tmp_path: Path) -> None:
    """i.i.d. moves, and VIX that encodes the same day's move: nothing to learn without look-ahead."""
    from unit_tests.agents.test_learning import DAYS, market

    rng = np.random.default_rng(2)
    moves = rng.normal(0, 0.004, DAYS)
    summary = edge_walkforward(market(moves, vix=20 + 500 * moves), tmp_path, timesteps=30_000)
    stats = summary["stats"]
    assert isinstance(stats, dict)
    assert stats["verdict"].startswith("does not beat buy-and-hold"), stats


@pytest.mark.shared_data
def test_the_issue_walkforward_on_real_spy_twice_identically(shared_data: Path, tmp_path: Path) -> None:
    """The documented command on 2015-2024 SPY + VIX: a second run trains nothing and rewrites the same bytes."""
    args = ["walkforward", "--source", "csv", "--csv", str(shared_data / "spy_daily.csv"),
            "--vix-csv", str(shared_data / "vix_daily.csv"), "--start", "2015-01-01", "--end", "2024-12-31",
            "--scheme", "rolling", "--train-years", "5", "--val-months", "12", "--test-months", "12",
            "--seeds", "1,2", "--timesteps", "20000", "--results-dir", str(tmp_path / "R"),
            "--datasets-dir", str(tmp_path / "datasets"), "--tensorboard-dir", str(tmp_path / "tb")]  # fmt: skip
    outputs = []
    for expected_training in ("trained now: 8", "trained now: 0"):
        outcome = CliRunner().invoke(app, args, catch_exceptions=False)
        assert outcome.exit_code == 0 and expected_training in outcome.output, outcome.output + outcome.stderr
        run = Path(next(ln for ln in outcome.output.splitlines() if ln.startswith("report:")).split(":", 1)[1].strip())
        outputs.append({name: (run / name).read_bytes() for name in OUTPUTS})
    assert outputs[0] == outputs[1]
    summary = json.loads(outputs[0]["summary.json"])
    assert [f["test_start"][:4] for f in summary["folds"]] == ["2021", "2022", "2023", "2024"]
