"""Training callbacks: trading scalars in TensorBoard, validation with best-model keeping,
progress, and a clean stop on Ctrl-C / SIGTERM.

SB3 calls every callback after every vector step, so per-step work is kept to a test: episode
statistics are read only from envs that just finished, progress is reported once per rollout,
and validation replays the window with the policy as NumPy arrays (benchmarks/ shows the cost).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import HParam, Logger

from finrl.agents.numpy_policy import NumpyPolicy
from finrl.log import get_logger
from finrl.meta.env.execution import Action
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rollout import run_policy, scheduled_policy
from finrl.meta.env.spy_env import EnvConfig
from finrl.performance import sharpe_ratio, total_return
from finrl.signals import on_stop_signals

log = get_logger(__name__)


EPISODE_RETURN_TAG = "trading/episode_nav_return"
KEPT_METRICS = ("sharpe", "total_return", "exposure")  # of the kept model on the validation window
KEPT_TAG = "hparams/kept_validation_{}"  # written once, when training ends: see kept_validation_scalars
BUY_AND_HOLD_TAG = "validation/buy_and_hold_{}"  # the reference over the same window, costs and fills


def hparam_metric_tags(validation: bool) -> tuple[str, ...]:
    """The scalars the HParams tab shows for a run: the kept model's validation metrics where it was validated.

    TensorBoard's HParams table shows, for each declared metric, the *last* value of that scalar tag
    in the run: declaring ``validation/sharpe`` showed the last evaluation, not the model kept.
    """
    kept = tuple(KEPT_TAG.format(name) for name in KEPT_METRICS)
    reference = (BUY_AND_HOLD_TAG.format("sharpe"),)
    return (*kept, *reference, EPISODE_RETURN_TAG) if validation else (EPISODE_RETURN_TAG,)


class TradingMetricsCallback(BaseCallback):
    """Episode trading statistics (NAV return, Sharpe, turnover, costs, actions) and hyperparameters."""

    def __init__(self, hparams: dict[str, Any], metric_tags: tuple[str, ...] = (EPISODE_RETURN_TAG,)) -> None:
        super().__init__()
        self.hparams = hparams
        self.metric_tags = metric_tags
        self._started = 0.0

    def _on_training_start(self) -> None:
        self._started = time.perf_counter()
        # only the names count: SB3 writes no value for them, the HParams tab reads each tag's last scalar
        metrics = dict.fromkeys(self.metric_tags, 0.0)
        clean = {k: (v if isinstance(v, int | float | str | bool) else str(v)) for k, v in self.hparams.items()}
        self.logger.record("hparams", HParam(clean, metrics), exclude=("stdout", "log", "json", "csv"))

    def _on_step(self) -> bool:
        dones = self.locals.get("dones")
        if dones is not None and not np.count_nonzero(dones):  # the common step: no episode ended
            return True
        infos = self.locals.get("infos", ())
        for i in range(len(infos)) if dones is None else np.flatnonzero(dones):
            stats = infos[i].get("episode_stats")
            if stats:
                for key, value in stats.items():
                    self.logger.record_mean(f"trading/episode_{key}", value)
        return True

    def _on_rollout_end(self) -> None:
        elapsed = time.perf_counter() - self._started
        if elapsed > 0:
            self.logger.record("trading/steps_per_second", self.num_timesteps / elapsed)


class ValidationCallback(BaseCallback):
    """Every ``eval_freq`` timesteps, replay the deterministic policy over the validation window
    and save the model when its Sharpe ratio is the best so far.

    Each evaluation also logs buy-and-hold over the same window (``validation/buy_and_hold_*``), replayed
    once as the backtest's baseline is: sell/hold/buy actions under the agent's execution and costs.
    """

    def __init__(self, market: MarketArrays, config: EnvConfig, eval_freq: int, best_path: Path) -> None:
        super().__init__()
        self.market, self.config = market, config
        self.eval_freq, self.best_path = eval_freq, best_path
        self.best_sharpe = -math.inf
        self.best_timesteps = 0
        self.history: list[dict[str, float]] = []
        self._next = eval_freq
        self._buy_and_hold: dict[str, float] | None = None

    @property
    def buy_and_hold(self) -> dict[str, float]:
        """Buy-and-hold's Sharpe and total return over the validation window (computed once: it never changes)."""
        if self._buy_and_hold is None:
            baseline = replace(self.config, action_space="discrete3")  # as the backtest replays its baselines
            ledger = run_policy(self.market, baseline, scheduled_policy(np.full(len(self.market), Action.BUY)))
            self._buy_and_hold = {"sharpe": sharpe_ratio(ledger.nav), "total_return": total_return(ledger.nav)}
        return self._buy_and_hold

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.eval_freq
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if not self.history or self.history[-1]["timesteps"] != self.num_timesteps:
            self.evaluate()

    def evaluate(self) -> dict[str, float]:
        # the deterministic policy as NumPy arrays, converted once: ~10x faster per day than SB3's
        # predict, and the very forward pass that backtests and paper trading act with
        ledger = run_policy(self.market, self.config, NumpyPolicy.from_sb3(self.model).act)
        result = {
            "timesteps": float(self.num_timesteps),
            "sharpe": sharpe_ratio(ledger.nav),
            "total_return": total_return(ledger.nav),
            "exposure": float((ledger.frame["position"] != 0).mean()),
        }
        self.history.append(result)
        for key in ("sharpe", "total_return", "exposure"):
            self.logger.record(f"validation/{key}", result[key])
        for key, value in self.buy_and_hold.items():
            self.logger.record(BUY_AND_HOLD_TAG.format(key), value)
        if result["sharpe"] > self.best_sharpe:
            self.best_sharpe, self.best_timesteps = result["sharpe"], self.num_timesteps
            self.model.save(self.best_path)
        log.info("validation", **{k: round(v, 4) for k, v in result.items()}, best_sharpe=round(self.best_sharpe, 4))
        return result


def record_kept_validation(logger: Logger, kept: dict[str, float], timesteps: int) -> None:
    """Write the kept model's validation metrics (the HParams tab's metrics) when training ends, and dump
    what is pending: SB3 dumps once per rollout, so an evaluation run as training ends goes out with them."""
    for name in KEPT_METRICS:
        logger.record(KEPT_TAG.format(name), kept[name])
    logger.dump(timesteps)


class ProgressCallback(BaseCallback):
    """A rich progress bar on a terminal; otherwise a log line every 10% with speed and ETA.

    Both move once per rollout (a few thousand steps, well under a second): redrawing the bar
    after every step cost more than the env step itself.
    """

    def __init__(self, total_timesteps: int, interactive: bool | None = None) -> None:
        super().__init__()
        self.total = total_timesteps
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self._progress: Any = None
        self._task: Any = None
        self._next_report = 0.1
        self._started = 0.0

    def _on_training_start(self) -> None:
        self._started = time.perf_counter()
        if self.interactive:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                TimeRemainingColumn(), transient=True,
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task("train", total=self.total)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self.num_timesteps)
        elif self.num_timesteps >= self._next_report * self.total:
            self._next_report = math.floor(10 * self.num_timesteps / self.total) / 10 + 0.1
            elapsed = time.perf_counter() - self._started
            fps = self.num_timesteps / elapsed if elapsed else 0.0
            eta = (self.total - self.num_timesteps) / fps if fps else math.nan
            log.info(
                "training_progress", timesteps=self.num_timesteps, total=self.total, fps=round(fps), eta_s=round(eta)
            )

    def _on_training_end(self) -> None:
        if self._progress is not None:
            self._progress.stop()


class StopFlag:
    """Set by SIGINT/SIGTERM while training; the callback then ends ``learn`` after the current step."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    @contextmanager
    def installed(self) -> Iterator[StopFlag]:
        def record(signum: int) -> None:
            self.signal = signum

        with on_stop_signals(record):
            yield self


@contextmanager
def unchecked_distributions() -> Iterator[None]:
    """torch.distributions without argument checks while ``learn()`` runs, restored afterwards.

    SB3 builds a ``Categorical`` from the logits in every policy forward (each rollout step, each
    minibatch), and checking them costs about 30% of a forward on 16 observations (benchmarks/);
    torch documents the switch for models that work. No value changes; NaN logits still fail,
    when the next action is sampled from them.
    """
    from torch.distributions import Distribution

    previous = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(previous)


class StopOnSignalCallback(BaseCallback):
    def __init__(self, flag: StopFlag) -> None:
        super().__init__()
        self.flag = flag

    def _on_step(self) -> bool:
        return not self.flag
