"""What an action means: one mapping from the policy's output to an order, for the env and the trader.

Three action spaces (``EnvConfig.action_space``):

* ``discrete3``: ``Discrete(3)`` = sell / hold / buy over {flat, long} ({short, flat, long} with
  ``allow_short``); the order is :func:`~finrl.meta.env.execution.order_shares`.
* ``target_weight``: ``Discrete(k)``; action ``i`` asks for the weight ``weight_levels[i]``.
* ``continuous``: ``Box(1)``; the action is the weight itself, clipped to [0, 1] ([-1, 1] with
  ``allow_short``).

A weight is the signed fraction of equity to hold (times ``position_fraction``, the largest
position, as for ``discrete3``). It is sized at day t's close exactly as ``order_shares`` sizes
an entry (net of the estimated costs of the fill, and of closing first when the sign flips;
whole or fractional shares) and fills at t+1's open or close through ``fill_order``.

The no-trade band: a weight order is sent only when the target differs from the current weight
``shares * close / equity`` by more than ``rebalance_band`` (absolute, in weight units), so small
drifts of a held position do not trade every day. A target of exactly 0 always closes a position
(flat means out of the market). With weights 1 and 0 (or -1), and no position to drift, the
orders equal ``discrete3``'s buy and sell exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
import numpy as np

from finrl.meta.env.execution import ExecutionConfig, order_shares, position_of, target_position

if TYPE_CHECKING:
    from finrl.meta.env.spy_env import EnvConfig

ActionSpaceName = Literal["discrete3", "target_weight", "continuous"]
ACTION_SPACES: tuple[ActionSpaceName, ...] = ("discrete3", "target_weight", "continuous")


def parse_weight_levels(text: str) -> tuple[float, ...]:
    """``"0,0.25,0.5"`` -> ``(0.0, 0.25, 0.5)`` (the setting's text form)."""
    return tuple(float(part) for part in text.split(","))


def check_action_config(space: str, levels: Sequence[float], band: float, allow_short: bool) -> None:
    """Refuse an action space that cannot be built: a ValueError naming the problem."""
    if space not in ACTION_SPACES:
        raise ValueError(f"action_space must be one of {', '.join(ACTION_SPACES)}, got {space!r}")
    if not 0 <= band < 1:
        raise ValueError(f"rebalance_band must be in [0, 1), got {band}")
    if space == "target_weight":
        low = -1.0 if allow_short else 0.0
        if len(levels) < 2 or len(set(levels)) != len(levels):
            raise ValueError(f"weight_levels needs at least 2 distinct levels, got {tuple(levels)}")
        bad = [w for w in levels if not (low <= w <= 1.0)]
        if bad:
            allowed = "[-1, 1] with allow_short" if allow_short else "[0, 1] (negative levels need allow_short)"
            raise ValueError(f"weight_levels {bad} are outside {allowed}")


def gym_action_space(config: EnvConfig) -> gym.Space[Any]:
    if config.action_space == "discrete3":
        return gym.spaces.Discrete(3)
    if config.action_space == "target_weight":
        return gym.spaces.Discrete(len(config.weight_levels))
    low = -1.0 if config.execution.allow_short else 0.0
    return gym.spaces.Box(low, 1.0, shape=(1,), dtype=np.float32)


def action_weight(action: Any, config: EnvConfig) -> float:
    """The target weight a weight-space action asks for (``target_weight``: its level; ``continuous``: clipped)."""
    if config.action_space == "target_weight":
        index = int(np.asarray(action).reshape(-1)[0]) if not isinstance(action, int) else action
        if not 0 <= index < len(config.weight_levels):
            raise ValueError(f"invalid action {action!r}: expected 0..{len(config.weight_levels) - 1}")
        return config.weight_levels[index]
    if config.action_space == "continuous":
        # a float (what the batched env passes) needs no array round trip (~0.5 us a call)
        weight = float(action) if isinstance(action, float) else float(np.asarray(action, np.float64).reshape(-1)[0])
        if math.isnan(weight):
            raise ValueError("invalid action: NaN target weight")
        low = -1.0 if config.execution.allow_short else 0.0
        return low if weight < low else (1.0 if weight > 1.0 else weight)
    raise ValueError(f"{config.action_space} actions are not weights")


def weight_order_shares(
    cash: float, shares: float, weight: float, sizing_price: float, execution: ExecutionConfig, band: float
) -> float:
    """Signed shares to trade so that ``shares`` hold ``weight`` (times ``position_fraction``) of equity.

    Sized at ``sizing_price`` (day t's close) as :func:`order_shares` sizes an entry: the equity left
    after the estimated cost of closing (only when the sign flips) times the weight, divided by the
    entry price with spread, slippage and commission; rounded down to whole shares or Alpaca's 1e-9.
    No order inside the no-trade band (see the module's docstring); a weight of 0 always closes.
    """
    if weight == 0:
        return -shares
    sizing_price = float(sizing_price)
    equity = cash + shares * sizing_price
    if equity <= 0:
        return 0.0  # nothing to size with (a ruined account only closes)
    target = execution.position_fraction * weight
    if abs(target - shares * sizing_price / equity) <= band:
        return 0.0
    impact, commission_rate = execution.costs.price_impact, execution.costs.commission_rate
    sign = 1 if weight > 0 else -1
    entry_price = sizing_price * (1 + impact if sign > 0 else 1 - impact)
    close_cost = 0.0
    if position_of(shares) == -sign:  # flipping: the old position closes first, as in order_shares
        exit_price = sizing_price * (1 - impact if shares > 0 else 1 + impact)
        close_cost = abs(shares) * (abs(exit_price - sizing_price) + exit_price * commission_rate)
    budget = max(0.0, equity - close_cost) * abs(target) / (entry_price * (1 + commission_rate))
    size = math.floor(budget * 1e9) / 1e9 if execution.fractional_shares else math.floor(budget + 1e-9)
    return sign * size - shares


def decide(action: Any, cash: float, shares: float, sizing_price: float, config: EnvConfig) -> tuple[float, float]:
    """``(target, order)`` for ``action`` in ``config``'s action space, sized at ``sizing_price``.

    The target is a position (-1/0/+1) for ``discrete3`` and a weight otherwise; the order is the
    signed number of shares to trade. The live trader acts through it, and the env's step for the
    weight spaces (its discrete3 branch is inlined on the hot path, with the same functions).
    """
    if config.action_space == "discrete3":
        target = target_position(int(action), position_of(shares), config.execution.allow_short)
        return target, order_shares(cash, shares, target, sizing_price, config.execution)
    weight = action_weight(action, config)
    return weight, weight_order_shares(cash, shares, weight, sizing_price, config.execution, config.rebalance_band)


def position_weight(shares: float, close: float, nav: float) -> float:
    """The signed weight of the position at ``close`` (0 when there is no positive NAV)."""
    return shares * close / nav if nav > 0 else 0.0
