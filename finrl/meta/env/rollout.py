"""Run a policy through a whole window, day by day: the ledger that backtests and validation read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.spy_env import EnvConfig, SpyTradingEnv

Policy = Callable[[np.ndarray], Any]  # an action: an int (discrete spaces), a float or an array (continuous)


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


def run_policy(market: MarketArrays, config: EnvConfig, policy: Policy) -> EpisodeLedger:
    """Replay ``policy`` over every day of ``market`` (deterministically, from flat).

    The policy returns an action of ``config.action_space``: an int for ``discrete3`` and
    ``target_weight``, a float (or a one-element array) target weight for ``continuous``.
    """
    whole_window = replace(config, episode_length=None, random_start=False)
    env = SpyTradingEnv(market, whole_window, record=True)
    obs, _ = env.reset(seed=0)
    done = False
    as_int = config.action_space != "continuous"
    while not done:
        action = policy(obs)
        obs, _, terminated, truncated, _ = env.step(int(action) if as_int else action)
        done = terminated or truncated
    assert env.log is not None
    columns = env.log.as_arrays()
    index = columns.pop("index")
    frame = pd.DataFrame(columns, index=pd.DatetimeIndex(market.dates[index], name="date"))
    # the decision taken after day t's close is recorded on the fill row t+1: move it back to t
    frame["action"] = frame["action"].shift(-1)
    return EpisodeLedger(frame)


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
