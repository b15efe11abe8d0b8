"""Walk-forward research over the agent options, chosen by validation only, written to docs/results.md.

Runs ``spy-rl walkforward`` once per configuration (action space x reward) on the same data and
fold plan, then picks the configuration with the best mean validation Sharpe over every fold and
seed: the test windows never choose. Every configuration x seed lands in the trial ledger, so the
Deflated Sharpe Ratio of each later run counts them all. Finally it writes the table, the chosen
configuration's out-of-sample statistics and the verdict to ``docs/results.md``.

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

ACTION_SPACES = ("discrete3", "target_weight", "continuous")
REWARDS = ("log_return", "differential_sharpe", "drawdown_penalty", "excess_log_return")
PLAN = ("--scheme", "rolling", "--train-years", "4", "--val-months", "12", "--test-months", "12")


def walkforward(args: argparse.Namespace, name: str, extra: list[str]) -> tuple[dict, float]:
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


def mean_validation_sharpe(summary: dict) -> float:
    values = [
        s["validation_sharpe"] for f in summary["folds"] for s in f["seeds"] if s["validation_sharpe"] is not None
    ]
    return statistics.fmean(values) if values else float("-inf")


def collapse_count(summary: dict) -> int:
    return sum(bool(s["collapse"]) for f in summary["folds"] for s in f["seeds"])


def row(name: str, summary: dict) -> str:
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

    grid: dict[str, tuple[dict, float]] = {}
    for space in ACTION_SPACES:
        for reward in REWARDS:
            name = f"grid-{space}-{reward}"
            extra = [
                "--action-space",
                space,
                "--reward",
                reward,
                "--seeds",
                args.seeds,
                "--timesteps",
                str(args.timesteps),
            ]
            grid[name] = walkforward(args, name, extra)
            print(row(name, grid[name][0]), flush=True)
    chosen = max(grid, key=lambda n: mean_validation_sharpe(grid[n][0]))  # validation only, never a test window
    space, reward = chosen.removeprefix("grid-").split("-", 1)
    final_extra = ["--action-space", space, "--reward", reward, "--seeds", args.final_seeds,
                   "--timesteps", str(args.final_timesteps)]  # fmt: skip
    final, final_seconds = walkforward(args, "final", final_extra)
    default, default_seconds = walkforward(
        args, "default", ["--seeds", args.final_seeds, "--timesteps", str(args.final_timesteps)]
    )
    print(row("final", final), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(args, grid, chosen, final, final_seconds, default, default_seconds))
    print(f"wrote {args.output}")


def oos_row(label: str, metrics: dict) -> str:
    return f"| {label} | {metrics['sharpe']:.2f} | {metrics['total_return']:.1%} | {metrics['max_drawdown']:.1%} |"


def render(  # type: ignore[no-untyped-def]  # a report script
    args, grid, chosen, final, final_seconds, default, default_seconds
) -> str:
    header = (
        "| configuration | mean validation Sharpe | OOS Sharpe agent | OOS Sharpe buy & hold | OOS return agent | "
        "OOS return buy & hold | OOS max drawdown agent | collapsed runs | p-value |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines = [row(name, summary) for name, (summary, _) in grid.items()]
    fs, ds = final["stats"], default["stats"]
    execution = final["run"]["env"]["execution"]
    costs = ", ".join(f"{name} {value}" for name, value in execution["costs"].items())
    years = f"{final['folds'][0]['test_start'][:4]}..{final['folds'][-1]['test_end'][:4]}"
    low, high = fs["sharpe_diff_ci95"]
    return f"""# Research results: does the agent beat buy-and-hold out of sample?

Generated by `tools/research_grid.py` (rerun it to reproduce; every number below is read from the
runs' `summary.json`). Data: real SPY daily bars with VIX, {args.start} .. {args.end} (the shared
development data set; not in the repository). Walk-forward: rolling, 4-year training, 12-month
validation, 12-month test windows stepping 12 months: {len(final["folds"])} folds, test years
{years}, every test day once. Costs as the runs recorded them: {costs};
fills at the {execution["fill_at"].replace("_", " ")}.

## How the default was chosen

Each configuration (action space x reward) ran with seeds {args.seeds} at {args.timesteps:,} timesteps. The
configuration with the best **mean validation Sharpe** (over every fold and seed; each seed's
model is itself kept by its validation window) is chosen. Test windows choose nothing: their
columns are shown only to report, after the choice. Every configuration x seed is counted in the
trial ledger, so the Deflated Sharpe Ratio below deflates for all {fs["n_trials"]} trials. The p-value
column is the two-sided stationary-bootstrap test of Sharpe(agent) - Sharpe(buy-and-hold) per
configuration (a small p with a lower agent Sharpe means it significantly underperforms), before
any correction for having tried {len(grid)} configurations; collapsed runs count fold x seed runs
flagged always_long, always_flat or constant_action.

{header}
{chr(10).join(lines)}

Chosen by validation: **{chosen.removeprefix("grid-")}**.

## The chosen configuration out of sample

Seeds {args.final_seeds} at {args.final_timesteps:,} timesteps; the agent is the seeds' mean-weight ensemble.

| | Sharpe | total return | max drawdown |
|---|---|---|---|
{oos_row("agent", final["oos"]["agent"])}
{oos_row("buy and hold", final["oos"]["buy_and_hold"])}

- Sharpe difference {fs["sharpe_diff"]:.2f}, 95% CI [{low:.2f}, {high:.2f}] (stationary bootstrap),
  p = {fs["p_value"]:.2f}; PSR vs 0 {fs["psr_vs_zero"]:.2f}, vs buy-and-hold {fs["psr_vs_benchmark"]:.2f};
  DSR {fs["dsr"]:.2f} over {fs["n_trials"]} trials.
- **Verdict: {fs["verdict"]}**
- Wall time of this {len(final["folds"])}-fold x {len(args.final_seeds.split(","))}-seed walk-forward on 2 cores
  ({args.workers} workers): {final_seconds:.0f} s.

## Today's default agent (discrete3, log return) for comparison

Same folds, seeds and timesteps: agent Sharpe {default["oos"]["agent"]["sharpe"]:.2f} vs buy-and-hold
{default["oos"]["buy_and_hold"]["sharpe"]:.2f}; return {default["oos"]["agent"]["total_return"]:.1%} vs
{default["oos"]["buy_and_hold"]["total_return"]:.1%}. Verdict: {ds["verdict"]} ({default_seconds:.0f} s).
"""


if __name__ == "__main__":
    main()
