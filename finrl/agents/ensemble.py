"""What an ensemble of policies decides, and how it trades: one definition for research, backtests
and paper trading.

Every member acts on its own **shadow book**, exactly as in training: its own normalisation of the
day's features, its own portfolio features from its own simulated account, under the ensemble's
shared execution rule and costs, starting flat on the same first day. After each close each member
has decided a target weight (``discrete3``: the position -1, 0 or +1 it holds after its order;
``target_weight``: the level; ``continuous``: the clipped weight). The ensemble's rule turns the
members' decisions into one target weight:

* ``mean_weight``: their mean (3 of 5 ``discrete3`` members long is 60% long);
* ``majority``: the weight decided by the most members; a tie (no single most common weight)
  means **flat**, 0: without a majority there is no conviction to hold, and a stateless rule
  makes every decision a function of the members' decisions that day alone.

The ensemble then trades that target as a ``continuous`` target-weight strategy (with its own
rebalance band) through the same execution and costs as everything else.

A decision after day t's close needs only data up to t. The env asks a policy for a decision only
on a day with a next day to fill on; to get the members' decisions after the **last** close of a
replay (the paper trader's "today"), the replay adds one open-ended day, a copy of the last one:
its fill is never read, only the decisions made before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from finrl.agents.bundle import ModelBundle
from finrl.meta.env.execution import ExecutionConfig
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rollout import DecisionGate, EpisodeLedger, run_policy
from finrl.meta.env.spy_env import EnvConfig

Rule = Literal["mean_weight", "majority"]
RULES: tuple[Rule, ...] = ("mean_weight", "majority")


def decided_weights(ledger: pd.DataFrame, action_space: str, decisions: int) -> np.ndarray:
    """The target weight decided after each of the first ``decisions`` closes of a ``run_policy`` ledger.

    ``discrete3``: the position held after the order (row t+1); the weight spaces: the decided weight
    (row t). A book ruined before the end decides flat for the days it did not reach.
    """
    if action_space == "discrete3":
        weights = ledger["position"].to_numpy(dtype=np.float64)[1:]
    else:
        weights = ledger["action"].to_numpy(dtype=np.float64)[:-1]
    return np.concatenate([weights[:decisions], np.zeros(max(0, decisions - len(weights)))])


def combine_targets(weights: np.ndarray, rule: Rule) -> np.ndarray:
    """``[days, members]`` decided weights -> ``[days]`` ensemble target weights under ``rule``."""
    if rule == "mean_weight":
        return np.asarray(weights.mean(axis=1), dtype=np.float64)
    return np.array([_majority(day) for day in weights], dtype=np.float64)


def _majority(weights: np.ndarray) -> float:
    values, counts = np.unique(weights, return_counts=True)
    winners = values[counts == counts.max()]
    return float(winners[0]) if len(winners) == 1 else 0.0  # a tie: flat


def trade_targets(
    market: MarketArrays, config: EnvConfig, targets: np.ndarray, gate: DecisionGate | None = None
) -> EpisodeLedger:
    """The ensemble's own book: ``targets[t]`` traded after day t's close, as a continuous target weight
    (through ``gate``, the backtest's risk limits, where given)."""
    days = iter(targets)

    def target_weight(_: np.ndarray) -> float:
        return float(next(days))

    return run_policy(market, replace(config, action_space="continuous"), target_weight, gate)


@dataclass(frozen=True)
class EnsembleDecisions:
    """The members' decisions after every close of a replayed window, and the ensemble's targets."""

    dates: pd.DatetimeIndex
    members: tuple[str, ...]
    weights: np.ndarray  # [days, members]: each member's decided target weight
    targets: np.ndarray  # [days]: the ensemble's target weight under its rule


def replay_members(
    members: Sequence[ModelBundle],
    rule: Rule,
    frame: pd.DataFrame,
    history: pd.DataFrame,
    execution: ExecutionConfig,
) -> EnsembleDecisions:
    """Each member's shadow book from flat on ``frame``'s first day, and the decisions after every close.

    ``history`` holds ``frame``'s days and those before them (the impact inputs' trailing windows);
    ``execution`` is the ensemble's (a backtest may have replaced its costs): every shadow book pays it.
    The one replay of backtests and paper trading, so a paper decision equals the backtest's.
    """
    weights = np.column_stack([_member_weights(member, frame, history, execution) for member in members])
    return EnsembleDecisions(
        dates=pd.DatetimeIndex(frame.index),
        members=tuple(member.run_name for member in members),
        weights=weights,
        targets=combine_targets(weights, rule),
    )


def _member_weights(
    member: ModelBundle, frame: pd.DataFrame, history: pd.DataFrame, execution: ExecutionConfig
) -> np.ndarray:
    extended, known = _open_ended(frame, history)
    market = MarketArrays.from_features(extended, member.normalizer, history=known)
    config = replace(member.env_config, execution=execution)
    ledger = run_policy(market, config, member.load_policy())
    return decided_weights(ledger.frame, config.action_space, len(frame))


def _open_ended(frame: pd.DataFrame, history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``frame`` and ``history`` up to ``frame``'s last day, each with a copy of that day a day later.

    The copy gives the last close a decision; nothing after the last day is kept, so the copy's
    date is free and every value up to the last day is what it was (indicators and the impact
    inputs look back only).
    """
    last = frame.iloc[[-1]].copy()
    last.index = last.index + pd.Timedelta(days=1)
    known = history.loc[: frame.index[-1]]
    return pd.concat([frame, last]), pd.concat([known, last])
