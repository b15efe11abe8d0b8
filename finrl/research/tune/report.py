"""``spy-rl tune report``: one offline HTML page about a study, and the Deflated Sharpe Ratio of its best trial.

The best trial was chosen among every configuration the study tried, on the validation windows;
its validation Sharpe is therefore the maximum of many noisy estimates and flatters it. The
Deflated Sharpe Ratio (:func:`finrl.research.statistics.deflated_sharpe_ratio`) asks whether it
still beats what the luckiest of that many skill-less configurations would show: the number of
trials is every distinct configuration x seed the study evaluated on at least one fold (pruned and
failed trials too; a configuration drawn again, or a dead worker's trial retried, once), and their
variance is that of the seeds' daily validation Sharpe ratios. Each seed's checkpoint was also chosen
on the validation window (the best of its periodic evaluations); those choices are correlated
snapshots of one training, not independent trials, and are not counted: the DSR is optimistic.

The page inlines plotly's JavaScript once, so it opens without a network.
"""

from __future__ import annotations

import html
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finrl.errors import FinRLError
from finrl.fileio import atomic_write_text
from finrl.research import statistics
from finrl.research.tune.trials import (
    FOLD_SCORES_ATTR,
    MOMENTS_ATTR,
    SEED_SHARPES_ATTR,
    WORKER_ATTR,
    ReturnMoments,
    evaluated_configurations,
    state_counts,
)

if TYPE_CHECKING:
    import optuna


class NoFinishedTrialError(FinRLError):
    """The study has no complete trial yet: nothing is best."""


@dataclass(frozen=True)
class StudySummary:
    study: str
    states: dict[str, int]
    best_number: int
    best_value: float  # mean over folds of the seeds' annualised validation Sharpe ratios
    best_params: dict[str, Any]
    best_fold_scores: list[float]
    n_trials: int  # distinct configurations x seeds evaluated: what the DSR deflates by
    sharpe_variance: float  # of their daily validation Sharpe ratios
    best_daily_sharpe: float | None
    dsr: float | None


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise NoFinishedTrialError(f"study {study.study_name!r} has no complete trial yet: run spy-rl tune run first")
    return study.best_trial


def summarize(study: optuna.Study) -> StudySummary:
    best = best_trial(study)
    tried = evaluated_configurations(study.get_trials(deepcopy=False))
    sharpes = [float(s) for t in tried for s in t.user_attrs[SEED_SHARPES_ATTR]]
    n_trials = max(len(sharpes), 1)
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    moments = ReturnMoments.from_json(best.user_attrs[MOMENTS_ATTR]) if MOMENTS_ATTR in best.user_attrs else None
    enough = moments is not None and moments.days >= statistics.MIN_OBSERVATIONS
    return StudySummary(
        study=study.study_name,
        states=dict(sorted(state_counts(study).items())),
        best_number=best.number,
        best_value=float(best.value) if best.value is not None else math.nan,
        best_params=dict(best.params),
        best_fold_scores=[float(v) for v in best.user_attrs.get(FOLD_SCORES_ATTR, [])],
        n_trials=n_trials,
        sharpe_variance=variance,
        best_daily_sharpe=moments.daily_sharpe if moments and enough else None,
        dsr=_dsr(moments, n_trials, variance) if moments and enough else None,
    )


def _dsr(moments: ReturnMoments, n_trials: int, variance: float) -> float:
    """:func:`~finrl.research.statistics.deflated_sharpe_ratio` from the moments the trial kept."""
    luck = statistics.expected_max_sharpe(n_trials, variance)
    return statistics.psr_from_moments(moments.daily_sharpe, luck, moments.days, moments.skew, moments.kurtosis)


def write_report(study: optuna.Study, path: Path) -> StudySummary:
    """Write the page to ``path`` (atomically) and return the summary it shows."""
    summary = summarize(study)
    atomic_write_text(Path(path), _page(study, summary))
    return summary


def _figures(study: optuna.Study) -> list[tuple[str, str]]:
    """(title, HTML) of each chart; a chart Optuna cannot draw yet (too few trials) says why instead."""
    import optuna.visualization as vis

    charts: list[tuple[str, Callable[[optuna.Study], Any]]] = [
        ("Optimisation history", vis.plot_optimization_history),
        ("Parameter importances (fANOVA)", vis.plot_param_importances),
        ("Parallel coordinates", vis.plot_parallel_coordinate),
        ("Intermediate values (per fold)", vis.plot_intermediate_values),
    ]
    parts, inlined = [], False
    for title, plot in charts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figure = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            parts.append((title, f"<p>not drawn: {html.escape(str(exc))}</p>"))
            continue
        # plotly.js is inlined once, in the first chart: the page works offline
        parts.append((title, figure.to_html(full_html=False, include_plotlyjs=not inlined)))
        inlined = True
    return parts


def _page(study: optuna.Study, summary: StudySummary) -> str:
    def num(value: float | None, digits: int = 3) -> str:
        return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"

    params = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in sorted(summary.best_params.items())
    )
    states = ", ".join(f"{count} {state.lower()}" for state, count in summary.states.items())
    folds = ", ".join(num(v) for v in summary.best_fold_scores)
    worker = html.escape(str(study.trials[summary.best_number].user_attrs.get(WORKER_ATTR, "?")))
    charts = "\n".join(f"<h2>{html.escape(title)}</h2>\n{body}" for title, body in _figures(study))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Study {html.escape(summary.study)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
</style></head><body>
<h1>Study {html.escape(summary.study)}</h1>
<p>Trials: {html.escape(states)}. Score: the walk-forward validation score, the mean over folds of the
seeds' annualised validation Sharpe ratios (each seed's model kept by its validation window); test windows
were never read.</p>
<h2>Best trial</h2>
<table>
<tr><td>trial</td><td>{summary.best_number} (worker {worker})</td></tr>
<tr><td>validation score</td><td>{num(summary.best_value)}</td></tr>
<tr><td>per fold</td><td>{folds}</td></tr>
<tr><td>daily validation Sharpe (seeds in equal shares)</td><td>{num(summary.best_daily_sharpe, 4)}</td></tr>
<tr><td>Deflated Sharpe Ratio ({summary.n_trials} distinct configurations x seeds counted)</td>
<td>{num(summary.dsr)}</td></tr>
</table>
<p>The Deflated Sharpe Ratio is the probability that the best trial's true validation Sharpe exceeds what the
best of {summary.n_trials} skill-less configurations would show by luck (variance of their daily Sharpe ratios
{num(summary.sharpe_variance, 6)}); below 0.95 the best configuration is not distinguishable from luck.
Pruned and failed configurations count; a repeated or retried one counts once. Each seed's checkpoint was
also chosen on its validation window, and those choices are not counted, so this DSR is optimistic.</p>
<table><tr><th>parameter</th><th>value</th></tr>{params}</table>
{charts}
</body></html>
"""
