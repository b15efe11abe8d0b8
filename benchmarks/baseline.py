"""The training setup before the batched env: the reference the PPO speed-up is measured against.

A frozen copy of ``finrl/agents/callbacks.py``'s per-step callbacks as of commit 7d7def4
(trading metrics scanning every info each step, a progress check each step, validation replayed
with SB3's per-observation ``predict``, torch.distributions checking their arguments).
:func:`installed` puts them into ``finrl.agents.training`` for the duration of a block and the
caller asks for ``vec_env="dummy"``, so that ``train()`` runs exactly as it did; nothing here is
used outside the benchmark.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import HParam

from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rollout import run_policy, sb3_policy
from finrl.meta.env.spy_env import EnvConfig
from finrl.performance import sharpe_ratio, total_return


class TradingMetricsCallback(BaseCallback):
    def __init__(self, hparams: dict[str, Any]) -> None:
        super().__init__()
        self.hparams = hparams
        self._started = 0.0

    def _on_training_start(self) -> None:
        self._started = time.perf_counter()
        metrics = {"validation/sharpe": 0.0, "trading/episode_nav_return": 0.0}
        clean = {k: (v if isinstance(v, int | float | str | bool) else str(v)) for k, v in self.hparams.items()}
        self.logger.record("hparams", HParam(clean, metrics), exclude=("stdout", "log", "json", "csv"))

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            stats = info.get("episode_stats")
            if stats:
                for key, value in stats.items():
                    self.logger.record_mean(f"trading/episode_{key}", value)
        return True

    def _on_rollout_end(self) -> None:
        elapsed = time.perf_counter() - self._started
        if elapsed > 0:
            self.logger.record("trading/steps_per_second", self.num_timesteps / elapsed)


class ValidationCallback(BaseCallback):
    def __init__(self, market: MarketArrays, config: EnvConfig, eval_freq: int, best_path: Path) -> None:
        super().__init__()
        self.market, self.config = market, config
        self.eval_freq, self.best_path = eval_freq, best_path
        self.best_sharpe = -math.inf
        self.best_timesteps = 0
        self.history: list[dict[str, float]] = []
        self._next = eval_freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.eval_freq
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if not self.history or self.history[-1]["timesteps"] != self.num_timesteps:
            self.evaluate()

    def evaluate(self) -> dict[str, float]:
        ledger = run_policy(self.market, self.config, sb3_policy(self.model))
        result = {
            "timesteps": float(self.num_timesteps),
            "sharpe": sharpe_ratio(ledger.nav),
            "total_return": total_return(ledger.nav),
            "exposure": float((ledger.frame["position"] != 0).mean()),
        }
        self.history.append(result)
        for key in ("sharpe", "total_return", "exposure"):
            self.logger.record(f"validation/{key}", result[key])
        if result["sharpe"] > self.best_sharpe:
            self.best_sharpe, self.best_timesteps = result["sharpe"], self.num_timesteps
            self.model.save(self.best_path)
        return result


class ProgressCallback(BaseCallback):
    """The non-interactive path (log lines every 10%), as the benchmark runs it."""

    def __init__(self, total_timesteps: int, interactive: bool | None = None) -> None:
        super().__init__()
        self.total = total_timesteps
        self._next_report = 0.1
        self._started = 0.0

    def _on_training_start(self) -> None:
        self._started = time.perf_counter()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next_report * self.total:
            self._next_report += 0.1
        return True


@contextmanager
def installed() -> Iterator[None]:
    """``train()`` with the old callbacks and torch's checks on; the caller asks for ``vec_env="dummy"``."""
    import finrl.agents.training as training

    names = {
        "TradingMetricsCallback": TradingMetricsCallback,
        "ValidationCallback": ValidationCallback,
        "ProgressCallback": ProgressCallback,
        "unchecked_distributions": contextlib.nullcontext,  # torch's argument checks stay on
    }
    missing = [name for name in names if not hasattr(training, name)]
    if missing:  # the wiring changed: the baseline would silently run today's code
        raise RuntimeError(f"finrl.agents.training no longer has {', '.join(missing)}: update benchmarks/baseline.py")
    saved = {name: getattr(training, name) for name in names}
    try:
        for name, value in names.items():
            setattr(training, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(training, name, value)
