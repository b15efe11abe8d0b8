"""What a walk-forward leaves in ``<results>/<run>/``: summary.json, nav.csv, folds.csv, report.html.

Everything is computed from the stitched out-of-sample test days only, and nothing written
depends on the clock or the number of workers: a rerun with the same arguments rewrites the
same bytes. The number of trials behind the Deflated Sharpe Ratio comes from a ledger of every
configuration x seed ever evaluated on the same data and fold plan (``trials.jsonl`` beside the
runs), so trying more configurations honestly deflates every later result.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finrl.backtest.engine import AGENT
from finrl.fileio import atomic_write_text, replace_directory
from finrl.performance import TRADING_DAYS, drawdown
from finrl.research import statistics
from finrl.research.walkforward import (
    FoldResult,
    WalkForwardResult,
    digest,
    stitched_nav,
    stitched_returns,
)

OUTPUT_FILES = ("summary.json", "nav.csv", "folds.csv", "report.html")
TRIALS_FILE = "trials.jsonl"


def summarize(result: WalkForwardResult, n_trials: int, sharpe_variance: float) -> dict[str, Any]:
    config = result.config
    cash = config.env.initial_cash
    agent = stitched_returns(result.folds, lambda f: f.agent)
    bench = stitched_returns(result.folds, lambda f: f.buy_and_hold)
    bench_sharpe = statistics.sharpe_ratio(bench.to_numpy())
    test = statistics.sharpe_difference_test(agent.to_numpy(), bench.to_numpy(), seed=0)
    psr_bench = statistics.probabilistic_sharpe_ratio(agent.to_numpy(), benchmark_sharpe=bench_sharpe)
    dsr = statistics.deflated_sharpe_ratio(agent.to_numpy(), n_trials=n_trials, sharpe_variance=sharpe_variance)
    return {
        "run": result.identity | {"key": result.run_key},
        "agent_definition": _agent_definition(len(config.seeds)),
        "folds": [_fold_summary(fold) for fold in result.folds],
        "oos": {
            "days": len(agent),
            "first_day": f"{agent.index[0]:%Y-%m-%d}",
            "last_day": f"{agent.index[-1]:%Y-%m-%d}",
            "agent": _oos_metrics(agent, cash),
            "buy_and_hold": _oos_metrics(bench, cash),
        },
        "stats": {
            "n_trials": n_trials,
            "trial_sharpe_variance": _clean(sharpe_variance),
            "psr_vs_zero": _clean(statistics.probabilistic_sharpe_ratio(agent.to_numpy(), benchmark_sharpe=0.0)),
            "psr_vs_benchmark": _clean(psr_bench),
            "dsr": _clean(dsr),
            "sharpe_diff": _clean(test.difference),
            "sharpe_diff_ci95": [_clean(v) for v in test.ci95],
            "p_value": _clean(test.p_value),
            "bootstrap": {"n_boot": test.n_boot, "mean_block": test.mean_block, "seed": 0},
            "verdict": statistics.verdict(test, psr_bench, dsr),
        },
    }


def _agent_definition(n_seeds: int) -> str:
    if n_seeds == 1:
        return "one seed's policy"
    return f"ensemble: the mean target weight of {n_seeds} seeds' policies"


def _fold_summary(fold: FoldResult) -> dict[str, Any]:
    return {
        "fold": fold.fold.number,
        "train_start": fold.fold.train.start.isoformat(),
        "train_end": fold.fold.train.end.isoformat(),
        "validation_start": fold.fold.validation.start.isoformat(),
        "validation_end": fold.fold.validation.end.isoformat(),
        "test_start": fold.fold.test.start.isoformat(),
        "test_end": fold.fold.test.end.isoformat(),
        "seeds": [
            {
                "seed": run.seed,
                "model": run.bundle.run_name,
                "validation_sharpe": _clean(run.bundle.manifest.training.get("best_validation_sharpe")),
                "agent": {k: _clean(run.agent[k]) for k in ("sharpe", "total_return", "exposure", "max_drawdown")},
                "collapse": run.collapse,
            }
            for run in fold.seeds
        ],
        "agent": _metrics_of(fold.agent["nav"]),
        "buy_and_hold": {
            k: _clean(fold.seeds[0].result.metrics["buy_and_hold"][k])
            for k in ("sharpe", "total_return", "max_drawdown")
        },
    }


def _metrics_of(nav: pd.Series) -> dict[str, float | None]:
    returns = nav.pct_change().dropna().to_numpy()
    return {
        "sharpe": _clean(statistics.annualised(statistics.sharpe_ratio(returns))),
        "total_return": _clean(float(nav.iloc[-1] / nav.iloc[0] - 1.0)),
        "max_drawdown": _clean(float(drawdown(nav).min())),
    }


def _oos_metrics(returns: pd.Series, cash: float) -> dict[str, float | None]:
    nav = stitched_nav(returns, cash)
    return {
        "sharpe": _clean(statistics.annualised(statistics.sharpe_ratio(returns.to_numpy()))),
        "total_return": _clean(float(nav.iloc[-1] / cash - 1.0)),
        "annual_return": _clean(float((nav.iloc[-1] / cash) ** (TRADING_DAYS / len(returns)) - 1.0)),
        "max_drawdown": _clean(float(drawdown(pd.concat([pd.Series([cash]), nav])).min())),
    }


def _clean(value: Any) -> float | None:
    """JSON has no NaN: undefined statistics are null."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------------------- trials


def record_trials(results_root: Path, result: WalkForwardResult) -> tuple[int, float]:
    """Add this run's configuration x seeds to the trial ledger; the study's trial count and Sharpe variance.

    A study is the data plus the fold plan; a trial is one training configuration with one seed,
    scored by its own stitched out-of-sample daily Sharpe (its test windows, without the ensemble).
    """
    identity = result.identity
    study = digest({"data": identity["data"], "plan": identity["plan"]})[:16]
    config = digest({k: v for k, v in identity.items() if k not in ("data", "plan", "seeds")})[:16]
    path = Path(results_root) / TRIALS_FILE
    trials = _read_trials(path)
    for seed in result.config.seeds:
        returns = stitched_returns(result.folds, partial(_seed_ledger, seed=seed))
        trials[(study, config, seed)] = statistics.sharpe_ratio(returns.to_numpy())
    lines = [
        json.dumps({"study": s, "config": c, "seed": seed, "daily_sharpe": sharpe}, sort_keys=True)
        for (s, c, seed), sharpe in sorted(trials.items())
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")
    sharpes = [sharpe for (s, _, _), sharpe in trials.items() if s == study]
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    return len(sharpes), variance


def _read_trials(path: Path) -> dict[tuple[str, str, int], float]:
    trials: dict[tuple[str, str, int], float] = {}
    if not path.is_file():
        return trials
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
            trials[(str(entry["study"]), str(entry["config"]), int(entry["seed"]))] = float(entry["daily_sharpe"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn line from a killed run: that trial is recorded again by its rerun
    return trials


def _seed_ledger(fold: FoldResult, seed: int) -> pd.DataFrame:
    """One seed's own test ledger in ``fold`` (as if it traded alone, without the ensemble)."""
    return next(run for run in fold.seeds if run.seed == seed).result.ledgers[AGENT].frame


# ---------------------------------------------------------------------------- files


def nav_frame(result: WalkForwardResult) -> pd.DataFrame:
    cash = result.config.env.initial_cash
    agent = stitched_nav(stitched_returns(result.folds, lambda f: f.agent), cash)
    bench = stitched_nav(stitched_returns(result.folds, lambda f: f.buy_and_hold), cash)
    return pd.DataFrame({"agent": agent, "buy_and_hold": bench}, index=pd.DatetimeIndex(agent.index, name="date"))


def folds_frame(summary: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for fold in summary["folds"]:
        for seed in fold["seeds"]:
            rows.append(
                {
                    "fold": fold["fold"],
                    "test_start": fold["test_start"],
                    "test_end": fold["test_end"],
                    "seed": seed["seed"],
                    "validation_sharpe": seed["validation_sharpe"],
                    **{f"agent_{k}": v for k, v in seed["agent"].items()},
                    **{f"buy_and_hold_{k}": v for k, v in fold["buy_and_hold"].items()},
                    "collapse": ";".join(seed["collapse"]),
                    "model": seed["model"],
                }
            )
    return pd.DataFrame(rows)


def write_outputs(result: WalkForwardResult, summary: dict[str, Any], directory: Path) -> Path:
    """Write the run's files into ``directory``, replaced whole (staged, then swapped in)."""
    nav = nav_frame(result)

    def fill(staging: Path) -> None:
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        nav.to_csv(staging / "nav.csv")
        folds_frame(summary).to_csv(staging / "folds.csv", index=False)
        (staging / "report.html").write_text(report_html(summary, nav))

    return replace_directory(directory, fill)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})  # no timestamps: byte-identical reruns
    return base64.b64encode(buffer.getvalue()).decode()


def charts(summary: dict[str, Any], nav: pd.DataFrame) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_nav, ax_dd) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, dpi=100
    )
    ax_nav.plot(nav.index, nav["agent"], label="agent (out of sample)", color="#1f77b4", lw=1.4)
    ax_nav.plot(nav.index, nav["buy_and_hold"], label="buy and hold", color="#555555", lw=1.1, ls="--")
    for fold in summary["folds"][1:]:
        ax_nav.axvline(pd.Timestamp(fold["test_start"]), color="#bbbbbb", lw=0.8)
    ax_nav.set_ylabel("NAV")
    ax_nav.set_title("Stitched out-of-sample test windows (vertical lines: fold boundaries)")
    ax_nav.legend(loc="upper left")
    ax_nav.grid(alpha=0.3)
    ax_dd.fill_between(nav.index, drawdown(nav["agent"]) * 100, 0, color="#1f77b4", alpha=0.35, label="agent")
    ax_dd.plot(nav.index, drawdown(nav["buy_and_hold"]) * 100, color="#555555", lw=0.9, ls="--", label="buy and hold")
    ax_dd.set_ylabel("drawdown %")
    ax_dd.legend(loc="lower left")
    ax_dd.grid(alpha=0.3)
    fig.tight_layout()
    equity = _png(fig)
    plt.close(fig)

    folds = summary["folds"]
    fig, ax = plt.subplots(figsize=(11, 3.5), dpi=100)
    x = np.arange(len(folds))
    n_seeds = len(folds[0]["seeds"])
    width = 0.8 / (n_seeds + 1)
    for i in range(n_seeds):
        values = [f["seeds"][i]["agent"]["sharpe"] or 0.0 for f in folds]
        ax.bar(x + i * width, values, width, label=f"seed {folds[0]['seeds'][i]['seed']}", alpha=0.8)
    ax.bar(x + n_seeds * width, [f["buy_and_hold"]["sharpe"] or 0.0 for f in folds], width, color="#555555",
           label="buy and hold")  # fmt: skip
    ax.set_xticks(x + n_seeds * width / 2, [f"{f['test_start'][:7]}..{f['test_end'][:7]}" for f in folds])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("test Sharpe")
    ax.legend(fontsize=8, ncol=min(n_seeds + 1, 6))
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    bars = _png(fig)
    plt.close(fig)
    return equity, bars


def report_html(summary: dict[str, Any], nav: pd.DataFrame) -> str:
    equity, bars = charts(summary, nav)
    stats, oos = summary["stats"], summary["oos"]

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2%}"

    def num(value: float | None, digits: int = 3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    fold_rows = ""
    for fold in summary["folds"]:
        for seed in fold["seeds"]:
            flags = ", ".join(seed["collapse"]) or "none"
            fold_rows += (
                f"<tr><td>{fold['fold']}</td><td>{fold['test_start']} .. {fold['test_end']}</td><td>{seed['seed']}</td>"
                f"<td>{num(seed['validation_sharpe'])}</td><td>{num(seed['agent']['sharpe'])}</td>"
                f"<td>{pct(seed['agent']['total_return'])}</td><td>{pct(seed['agent']['exposure'])}</td>"
                f"<td>{num(fold['buy_and_hold']['sharpe'])}</td><td>{pct(fold['buy_and_hold']['total_return'])}</td>"
                f"<td class='{'warn' if seed['collapse'] else ''}'>{html.escape(flags)}</td></tr>"
            )
    lo, hi = stats["sharpe_diff_ci95"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Walk-forward {html.escape(summary["run"]["key"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th {{ background: #f3f3f3; }} .warn {{ color: #b00; font-weight: bold; }}
.verdict {{ font-size: 1.25em; padding: .6em 1em; background: #f6f6f6; border-left: 5px solid #1f77b4; }}
</style></head><body>
<h1>Walk-forward: does the agent beat buy-and-hold out of sample?</h1>
<p class="verdict">{html.escape(stats["verdict"])}</p>
<p>Agent: {html.escape(summary["agent_definition"])}. Out-of-sample days: {oos["days"]}
({oos["first_day"]} .. {oos["last_day"]}), {len(summary["folds"])} folds; every test window was unseen by
training and by model selection (each seed's model was kept by its validation window only).</p>
<h2>Out of sample, stitched</h2>
<table><tr><th></th><th>Sharpe</th><th>total return</th><th>annual return</th><th>max drawdown</th></tr>
<tr><td>agent</td><td>{num(oos["agent"]["sharpe"])}</td><td>{pct(oos["agent"]["total_return"])}</td>
<td>{pct(oos["agent"]["annual_return"])}</td><td>{pct(oos["agent"]["max_drawdown"])}</td></tr>
<tr><td>buy and hold</td><td>{num(oos["buy_and_hold"]["sharpe"])}</td>
<td>{pct(oos["buy_and_hold"]["total_return"])}</td><td>{pct(oos["buy_and_hold"]["annual_return"])}</td><td>{pct(oos["buy_and_hold"]["max_drawdown"])}</td></tr></table>
<img alt="stitched equity" width="1100" src="data:image/png;base64,{equity}">
<h2>Statistics</h2>
<table>
<tr><td>Sharpe(agent) - Sharpe(buy and hold), annualised</td><td>{num(stats["sharpe_diff"])}</td></tr>
<tr><td>95% interval (stationary bootstrap, {stats["bootstrap"]["n_boot"]} resamples)</td>
<td>[{num(lo)}, {num(hi)}]</td></tr>
<tr><td>p-value (difference = 0)</td><td>{num(stats["p_value"])}</td></tr>
<tr><td>Probabilistic Sharpe Ratio vs 0</td><td>{num(stats["psr_vs_zero"])}</td></tr>
<tr><td>Probabilistic Sharpe Ratio vs buy and hold's Sharpe</td><td>{num(stats["psr_vs_benchmark"])}</td></tr>
<tr><td>Deflated Sharpe Ratio ({stats["n_trials"]} trials counted on this data and fold plan)</td>
<td>{num(stats["dsr"])}</td></tr>
</table>
<h2>Per fold and seed</h2>
<img alt="per-fold Sharpe" width="1100" src="data:image/png;base64,{bars}">
<table><tr><th>fold</th><th>test window</th><th>seed</th><th>validation Sharpe</th><th>test Sharpe</th>
<th>test return</th><th>exposure</th><th>buy-and-hold Sharpe</th><th>buy-and-hold return</th><th>collapse</th></tr>
{fold_rows}</table>
<p>Collapse flags: always_long (long on at least 95% of test days: buy-and-hold in disguise), always_flat
(flat on at least 95%), constant_action (the same action for at least 95% of observations).</p>
</body></html>
"""
