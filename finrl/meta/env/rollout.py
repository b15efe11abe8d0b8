"""Run a policy through a whole window, day by day: the ledger that backtests and validation read."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Protocol

import numpy as np
import pandas as pd

from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.spy_env import EnvConfig, SpyTradingEnv

Policy = Callable[[np.ndarray], Any]  # an action: an int (discrete spaces), a float or an array (continuous)


class GatedOrder(Protocol):
    """What a gate let through at a close: the policy's action (None: not asked) and the order sent."""

    @property
    def action(self) -> Any: ...

    @property
    def sent(self) -> float: ...


class DecisionGate(Protocol):
    """Stands between the policy and the market at each close, as the paper trader's risk limits do
    (:class:`finrl.trade.risk.RiskBook`): it sees the account at the decision's close (the day,
    equity, shares and close price), asks for the policy's ``(action, target, order)`` only when it
    wants it, and says what is sent."""

    def __call__(
        self, day: date, equity: float, shares: float, price: float, decide: Callable[[], tuple[Any, float, float]]
    ) -> GatedOrder: ...


@dataclass(frozen=True)
class EpisodeLedger:
    """One row per day of the window: the first row is the starting state, before any decision.

    ``action`` on row t is the decision taken after day t's close (NaN on the last day, which has
    no next day to fill on): the action for ``discrete3``, the decided target weight for the
    weight spaces (``target_weight``'s level, ``continuous``'s clipped weight); position (-1/0/+1),
    shares, fill price, costs, cash and NAV on row t are the state at day t's close after that
    day's fill.
    """

    frame: pd.DataFrame

    @property
    def nav(self) -> pd.Series:
        return self.frame["nav"]


def run_policy(
    market: MarketArrays, config: EnvConfig, policy: Policy, gate: DecisionGate | None = None
) -> EpisodeLedger:
    """Replay ``policy`` over every day of ``market`` (deterministically, from flat).

    The policy returns an action of ``config.action_space``: an int for ``discrete3`` and
    ``target_weight``, a float (or a one-element array) target weight for ``continuous``.
    With a ``gate`` (the risk limits), each close's decision goes through it: the ledger's action
    is NaN where the policy was not asked (a halt), and only the order the gate sends is traded.
    """
    whole_window = replace(config, episode_length=None, random_start=False)
    env = SpyTradingEnv(market, whole_window, record=True)
    obs, _ = env.reset(seed=0)
    done = False
    as_int = config.action_space != "continuous"
    days = pd.DatetimeIndex(market.dates).date
    closes = market.close.tolist()
    while not done:
        if gate is None:
            action = policy(obs)
            obs, _, terminated, truncated, _ = env.step(int(action) if as_int else action)
        else:
            t = env.day_index
            obs, _, terminated, truncated, _ = _gated_step(env, gate, policy, obs, days[t], closes[t], as_int)
        done = terminated or truncated
    assert env.log is not None
    columns = env.log.as_arrays()
    index = columns.pop("index")
    frame = pd.DataFrame(columns, index=pd.DatetimeIndex(market.dates[index], name="date"))
    # the decision taken after day t's close is recorded on the fill row t+1: move it back to t
    frame["action"] = frame["action"].shift(-1)
    return EpisodeLedger(frame)


def _gated_step(
    env: SpyTradingEnv, gate: DecisionGate, policy: Policy, obs: np.ndarray, day: date, price: float, as_int: bool
) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
    """One day through ``gate``: the policy is asked only if the gate wants its decision."""

    def decide() -> tuple[float, float, float]:
        action = policy(obs)
        return env.decision(int(action) if as_int else action)

    gated = gate(day, env.nav, env.shares, price, decide)
    return env.step_order(math.nan if gated.action is None else float(gated.action), gated.sent)


def scheduled_policy(actions: np.ndarray) -> Policy:
    """A policy that plays precomputed actions, one per decision day (rule-based baselines)."""
    days = iter(actions)

    def act(_: np.ndarray) -> int:
        return int(next(days))

    return act


def sb3_policy(model: object, *, deterministic: bool = True) -> Policy:
    """Adapt a stable-baselines3 model's ``predict`` to :data:`Policy` (an int, or the Box action array)."""

    def act(obs: np.ndarray) -> Any:
        action, _ = model.predict(obs, deterministic=deterministic)  # type: ignore[attr-defined]
        return action if np.ndim(action) else int(action)

    return act
