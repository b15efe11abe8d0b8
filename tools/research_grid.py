"""Walk-forward research over the agent options, chosen by validation only, written to docs/results.md.

Stage 1 runs ``spy-rl walkforward`` once per configuration (action space x reward) on the same data
and fold plan. Stage 2 runs the stage-1 configuration with the best mean validation Sharpe again
with the regime features on (``--regime-features``): they become part of the default only if they
raise the mean validation Sharpe. The choice reads validation windows only, never a test window.
Every configuration x seed lands in the trial ledger, so the Deflated Sharpe Ratio of each later
run counts them all. The chosen configuration then runs with more seeds and timesteps, and the
previous default (discrete3, log return) with the same seeds and timesteps for comparison; the
table, the statistics and the verdict go to ``docs/results.md``.

    python tools/research_grid.py --csv SPY.csv --vix-csv VIX.csv --results-dir research \
        [--seeds 1,2,3] [--timesteps 100000] [--final-seeds 1,2,3,4,5] [--final-timesteps 200000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scipy.stats import spearmanr

Summary = dict[str, Any]  # a run's summary.json

ACTION_SPACES = ("discrete3", "target_weight", "continuous")
REWARDS = ("log_return", "differential_sharpe", "drawdown_penalty", "excess_log_return")
PREVIOUS_DEFAULT = ("discrete3", "log_return")
REGIME = "--regime-features"
PLAN = ("--scheme", "rolling", "--train-years", "4", "--val-months", "12", "--test-months", "12")


def walkforward(args: argparse.Namespace, name: str, extra: list[str]) -> tuple[Summary, float]:
    command = [
        sys.executable, "-m", "finrl.applications.spy_rl_trading.cli", "walkforward",
        "--source", "csv", "--csv", str(args.csv), "--vix-csv", str(args.vix_csv),
        "--start", args.start, "--end", args.end, *PLAN, "--workers", str(args.workers),
        "--results-dir", str(args.results_dir), "--datasets-dir", str(args.results_dir / "datasets"),
        "--tensorboard-dir", str(args.results_dir / "tensorboard"), "--name", name, "--log-level", "WARNING", *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    seconds = time.perf_counter() - started
    trained = int(output.split("trained now:", 1)[1].split()[0])
    timing = args.results_dir / f"{name}.timing.json"  # the wall time of the run that trained, kept across reruns
    if trained or not timing.is_file():
        timing.write_text(json.dumps({"seconds": round(seconds, 1), "trainings": trained}))
    recorded = json.loads(timing.read_text())
    return json.loads((args.results_dir / name / "summary.json").read_text()), float(recorded["seconds"])


def mean_validation_sharpe(summary: Summary) -> float:
    values = [
        s["validation_sharpe"] for f in summary["folds"] for s in f["seeds"] if s["validation_sharpe"] is not None
    ]
    return statistics.fmean(values) if values else float("-inf")


def validation_predicts(grid: dict[str, tuple[Summary, float]]) -> float:
    """Spearman's rank correlation of mean validation Sharpe and out-of-sample Sharpe over the configurations."""
    summaries = [summary for summary, _ in grid.values()]
    validation = [mean_validation_sharpe(s) for s in summaries]
    test = [s["oos"]["agent"]["sharpe"] for s in summaries]
    return float(spearmanr(validation, test).statistic)


def collapse_count(summary: Summary) -> int:
    return sum(bool(s["collapse"]) for f in summary["folds"] for s in f["seeds"])


def row(name: str, summary: Summary) -> str:
    oos, stats = summary["oos"], summary["stats"]
    runs = sum(len(f["seeds"]) for f in summary["folds"])
    return (
        f"| {name} | {mean_validation_sharpe(summary):.2f} | {oos['agent']['sharpe']:.2f} | "
        f"{oos['buy_and_hold']['sharpe']:.2f} | {oos['agent']['total_return']:.1%} | "
        f"{oos['buy_and_hold']['total_return']:.1%} | {oos['agent']['max_drawdown']:.1%} | "
        f"{collapse_count(summary)}/{runs} | {stats['p_value']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--vix-csv", type=Path, required=True)
    parser.add_argument("--start", default="2015-01-01")
    parser.add_argument("--end", default="2024-12-31")
    parser.add_argument("--results-dir", type=Path, default=Path("research"))
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--final-seeds", default="1,2,3,4,5")
    parser.add_argument("--final-timesteps", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args()

    grid: dict[str, tuple[Summary, float]] = {}
    for space in ACTION_SPACES:
        for reward in REWARDS:
            name = f"grid-{space}-{reward}"
            grid[name] = walkforward(args, name, [*agent_flags(space, reward), *stage_flags(args)])
            print(row(name, grid[name][0]), flush=True)
    best = max(grid, key=lambda n: mean_validation_sharpe(grid[n][0]))  # validation only, never a test window
    space, reward = best.removeprefix("grid-").split("-", 1)
    regime = f"{best}-regime"
    grid[regime] = walkforward(args, regime, [*agent_flags(space, reward), REGIME, *stage_flags(args)])
    print(row(regime, grid[regime][0]), flush=True)
    chosen = max((best, regime), key=lambda n: mean_validation_sharpe(grid[n][0]))
    chosen_flags = [*agent_flags(space, reward), *([REGIME] if chosen == regime else [])]
    final_flags = ["--seeds", args.final_seeds, "--timesteps", str(args.final_timesteps)]
    final = walkforward(args, "final", [*chosen_flags, *final_flags])
    previous = walkforward(args, "previous-default", [*agent_flags(*PREVIOUS_DEFAULT), *final_flags])
    print(row("final", final[0]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(args, grid, chosen, final, previous))
    print(f"wrote {args.output}")


def agent_flags(space: str, reward: str) -> list[str]:
    return ["--action-space", space, "--reward", reward]


def stage_flags(args: argparse.Namespace) -> list[str]:
    return ["--seeds", args.seeds, "--timesteps", str(args.timesteps)]


def oos_row(label: str, metrics: dict[str, float]) -> str:
    return f"| {label} | {metrics['sharpe']:.2f} | {metrics['total_return']:.1%} | {metrics['max_drawdown']:.1%} |"


def commit() -> str:
    """The commit the runs came from (their numbers reproduce from it), marked when the tree had changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return f"{head or 'unknown'}{' (with uncommitted changes)' if dirty.stdout.strip() else ''}"


def render(  # type: ignore[no-untyped-def]  # a report script
    args, grid, chosen, final, previous
) -> str:
    (fsum, fseconds), (psum, pseconds) = final, previous
    header = (
        "| configuration | mean validation Sharpe | OOS Sharpe agent | OOS Sharpe buy & hold | OOS return agent | "
        "OOS return buy & hold | OOS max drawdown agent | collapsed runs | p-value |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines = [row(name, summary) for name, (summary, _) in grid.items()]
    fs, ps = fsum["stats"], psum["stats"]
    execution = fsum["run"]["env"]["execution"]
    costs = ", ".join(f"{name} {value}" for name, value in execution["costs"].items())
    years = f"{fsum['folds'][0]['test_start'][:4]}..{fsum['folds'][-1]['test_end'][:4]}"
    low, high = fs["sharpe_diff_ci95"]
    n_seeds = len(args.final_seeds.split(","))
    return f"""# Research results: does the agent beat buy-and-hold out of sample?

Generated by `tools/research_grid.py` at commit {commit()} (rerun it there to reproduce; every
number below is read from the runs' `summary.json`). Data: real SPY daily bars with VIX,
{args.start} .. {args.end} (the shared development data set; not in the repository). Walk-forward:
rolling, 4-year training, 12-month validation, 12-month test windows stepping 12 months:
{len(fsum["folds"])} folds, test years {years}, every test day once. Costs as the runs recorded them:
{costs}; fills at the {execution["fill_at"].replace("_", " ")}.

## How the default was chosen

Stage 1: each configuration (action space x reward) ran with seeds {args.seeds} at {args.timesteps:,}
timesteps. Stage 2: the stage-1 configuration with the best **mean validation Sharpe** (over every
fold and seed; each seed's model is itself kept by its validation window) ran again with the regime
features (`--regime-features`: realised-volatility ratio, drawdown from the trailing peak, VIX
change); they are kept only if they raise the mean validation Sharpe. Test windows choose nothing:
their columns are shown only to report, after the choice. Every configuration x seed is counted in
the trial ledger, so the Deflated Sharpe Ratio below deflates for all {fs["n_trials"]} trials. The
p-value column is the two-sided stationary-bootstrap test of Sharpe(agent) - Sharpe(buy-and-hold)
per configuration (a small p with a lower agent Sharpe means it significantly underperforms),
before any correction for having tried {len(grid)} configurations; collapsed runs count fold x seed
runs flagged always_long, always_flat or constant_action.

{header}
{chr(10).join(lines)}

Chosen by validation: **{chosen.removeprefix("grid-")}**; it is the default agent of `Settings`.

Does validation predict the test years? Over these {len(grid)} configurations the Spearman rank
correlation between mean validation Sharpe and out-of-sample Sharpe is {validation_predicts(grid):.2f}
(1 would mean validation ranks them as the test years do). Each seed's validation Sharpe is that of
its best checkpoint on the validation window, so it is optimistic by construction.

## The chosen configuration out of sample

Seeds {args.final_seeds} at {args.final_timesteps:,} timesteps; the agent is the seeds' mean-weight ensemble.

| | Sharpe | total return | max drawdown |
|---|---|---|---|
{oos_row("agent", fsum["oos"]["agent"])}
{oos_row("buy and hold", fsum["oos"]["buy_and_hold"])}

- Sharpe difference {fs["sharpe_diff"]:.2f}, 95% CI [{low:.2f}, {high:.2f}] (stationary bootstrap),
  p = {fs["p_value"]:.2f}; PSR vs 0 {fs["psr_vs_zero"]:.2f}, vs buy-and-hold {fs["psr_vs_benchmark"]:.2f};
  DSR {fs["dsr"]:.2f} over {fs["n_trials"]} trials.
- **Verdict: {fs["verdict"]}**
- Wall time of this {len(fsum["folds"])}-fold x {n_seeds}-seed walk-forward at the default
  {args.final_timesteps:,} timesteps on 2 cores ({args.workers} workers): {fseconds:.0f} s.

## The previous default (discrete3, log return) for comparison

Same folds, seeds and timesteps: agent Sharpe {psum["oos"]["agent"]["sharpe"]:.2f} vs buy-and-hold
{psum["oos"]["buy_and_hold"]["sharpe"]:.2f}; return {psum["oos"]["agent"]["total_return"]:.1%} vs
{psum["oos"]["buy_and_hold"]["total_return"]:.1%}; mean validation Sharpe {mean_validation_sharpe(psum):.2f}.
Verdict: {ps["verdict"]} ({pseconds:.0f} s).
"""


if __name__ == "__main__":
    main()
