"""The training reward of one step: the log return, or a shaping of it (``EnvConfig.reward``).

Every reward starts from the step's log return ``r = log(NAV_{t+1} / NAV_t)``, NAV marked at the
close after costs; ruin (NAV <= 0) is -10 and final whatever the reward. Backtest metrics never
read rewards. With the EMA state reset at every episode start:

* ``log_return``: ``r``.
* ``differential_sharpe`` (Moody & Saffell, 1998): with exponential moving averages of the
  return and its square, ``A_t = A_{t-1} + eta_t (r - A_{t-1})``, ``B_t = B_{t-1} + eta_t (r^2 - B_{t-1})``,
  the reward is ``D_t = (B_{t-1} dA - A_{t-1} dB / 2) / (B_{t-1} - A_{t-1}^2)^{3/2}`` with
  ``dA = r - A_{t-1}``, ``dB = r^2 - B_{t-1}``; ``D_t = 0`` while the variance estimate
  ``B_{t-1} - A_{t-1}^2`` is not positive (the first two steps). ``eta_t = max(eta, 1/n)`` on the
  episode's n-th step: running means until ``1/eta`` steps, then the EMA of rate ``eta`` (without
  this bias correction the first steps divide by a variance of about ``eta * r^2`` and give
  rewards of order ``1/sqrt(eta)``). ``D_t`` is clipped to ``[-DSR_CLIP, DSR_CLIP]``, below ruin's 10.
* ``drawdown_penalty``: ``r - lambda * max(0, DD_{t+1} - DD_t)`` with ``DD_t = 1 - NAV_t / max(NAV_0..NAV_t)``
  the drawdown from the episode's running NAV peak: only a deepening drawdown is penalised.
* ``excess_log_return``: ``r - log((close_{t+1} + dividend_{t+1}) / close_t)``, the log return over
  buy-and-hold's of the same step, dividends included.
"""

from __future__ import annotations

import math
from typing import Literal

RewardName = Literal["log_return", "differential_sharpe", "drawdown_penalty", "excess_log_return"]
REWARDS: tuple[RewardName, ...] = ("log_return", "differential_sharpe", "drawdown_penalty", "excess_log_return")
DSR_CLIP = 5.0


def check_reward_config(reward: str, dsr_eta: float, drawdown_penalty: float) -> None:
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
    if not 0 < dsr_eta <= 1:
        raise ValueError(f"dsr_eta must be in (0, 1], got {dsr_eta}")
    if drawdown_penalty < 0:
        raise ValueError(f"drawdown_penalty cannot be negative, got {drawdown_penalty}")


class ShapedReward:
    """One episode's reward state for the shaped rewards (``log_return`` needs none)."""

    __slots__ = ("_a", "_b", "_drawdown", "_n", "_peak", "eta", "kind", "penalty")

    def __init__(self, kind: RewardName, dsr_eta: float, drawdown_penalty: float) -> None:
        check_reward_config(kind, dsr_eta, drawdown_penalty)
        self.kind, self.eta, self.penalty = kind, dsr_eta, drawdown_penalty
        self.reset(1.0)

    def reset(self, nav: float) -> None:
        self._a = self._b = self._drawdown = 0.0
        self._n = 0
        self._peak = nav

    def __call__(
        self, log_return: float, nav: float, close_before: float, close_after: float, dividend: float
    ) -> float:
        """The reward of a step with ``log_return`` that ended at ``nav`` (positive: ruin is handled by the env)."""
        if self.kind == "excess_log_return":
            return log_return - math.log((close_after + dividend) / close_before)
        if self.kind == "drawdown_penalty":
            self._peak = max(self._peak, nav)
            drawdown = 1.0 - nav / self._peak
            deeper = drawdown - self._drawdown
            self._drawdown = drawdown
            return log_return - self.penalty * (deeper if deeper > 0 else 0.0)
        if self.kind == "differential_sharpe":
            self._n += 1
            a, b = self._a, self._b
            d_a, d_b = log_return - a, log_return * log_return - b
            variance = b - a * a
            reward = 0.0
            if variance > 0:
                reward = (b * d_a - 0.5 * a * d_b) / variance**1.5
                reward = max(-DSR_CLIP, min(DSR_CLIP, reward))
            eta = max(self.eta, 1.0 / self._n)
            self._a, self._b = a + eta * d_a, b + eta * d_b
            return reward
        return log_return
