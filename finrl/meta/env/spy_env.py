"""A single-asset daily trading environment (Gymnasium) with honest execution.

Timeline of one step, decision made after the close of day t:

* the observation holds day t's normalised features and the portfolio state at t's close;
* the action (0 sell, 1 hold, 2 buy) sets a target position in {flat, long} (or {short, flat,
  long}); a change fills at day t+1's open (or close), paying spread, slippage and commission;
* holders at t's close receive day t+1's dividend;
* the reward is log(NAV_{t+1} / NAV_t), both marked at the close, after costs.

Repeated buys while long and sells while flat (or short) change nothing and cost nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from finrl.meta.env.execution import (
    NO_FILL,
    Action,
    CostModel,
    ExecutionConfig,
    fill_order,
    order_shares,
    position_of,
    target_position,
)
from finrl.meta.env.market_arrays import MarketArrays

PORTFOLIO_FEATURES = ("position", "cash_fraction", "unrealized_return")
CASH_FRACTION_BOUND = 3.0


@dataclass(frozen=True)
class EnvConfig:
    """The env's account and episodes; the user-facing values come from the caller (``Settings`` holds the
    defaults). ``random_start`` is not a setting: training starts episodes anywhere, replays start at day 0."""

    execution: ExecutionConfig
    initial_cash: float
    episode_length: int | None  # trading days per episode; None = the whole window
    random_start: bool = True  # only with episode_length: start anywhere in the window

    def __post_init__(self) -> None:
        if self.initial_cash <= 0:
            raise ValueError("initial_cash must be positive")
        if self.episode_length is not None and self.episode_length < 1:
            raise ValueError("episode_length must be at least 1 day")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvConfig:
        execution = dict(data["execution"])  # a bundle records every field: nothing is filled in
        costs = CostModel(**execution.pop("costs"))
        return cls(**{**data, "execution": ExecutionConfig(costs=costs, **execution)})


class StepLog:
    """Preallocated per-step records of one episode (the backtest's day-by-day ledger)."""

    FIELDS = ("action", "position", "shares", "fill_price", "costs", "cash", "nav", "reward")

    def __init__(self, capacity: int) -> None:
        self.size = 0
        self.index = np.zeros(capacity, dtype=np.int64)  # bar index of the day the row describes
        self.columns = {name: np.full(capacity, np.nan) for name in self.FIELDS}

    def append(self, index: int, **values: float) -> None:
        self.index[self.size] = index
        for name, value in values.items():
            self.columns[name][self.size] = value
        self.size += 1

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {"index": self.index[: self.size], **{k: v[: self.size] for k, v in self.columns.items()}}


def portfolio_features(
    position: int, cash: float, nav: float, close: float, entry_price: float
) -> tuple[float, float, float]:
    """The observation's portfolio part: position, cash fraction, unrealised log return.

    One function for the env and the live trader, so a live decision sees exactly what training
    saw. A short holds about twice its NAV in cash (a losing one more): clipped to stay in bounds.
    """
    if not position:
        return 0.0, (1.0 if nav > 0 else 0.0), 0.0
    cash_fraction = cash / nav if nav > 0 else 0.0
    unrealized = position * math.log(close / entry_price)
    return (
        float(position),
        max(-CASH_FRACTION_BOUND, min(CASH_FRACTION_BOUND, cash_fraction)),
        max(-1.0, min(1.0, unrealized)),
    )


@dataclass(slots=True)  # touched on every step: slots make the attribute updates cheaper
class EpisodeStats:
    """Running sums of one episode, reported in ``info["episode_stats"]`` when it ends."""

    steps: int = 0
    sum_reward: float = 0.0
    sum_reward_sq: float = 0.0
    costs: float = 0.0
    traded_notional: float = 0.0
    trades: int = 0
    days_long: int = 0
    days_short: int = 0
    actions: list[int] = field(default_factory=lambda: [0, 0, 0])

    def summary(self, initial_nav: float, final_nav: float) -> dict[str, float]:
        n = max(self.steps, 1)
        mean = self.sum_reward / n
        var = max(self.sum_reward_sq / n - mean * mean, 0.0)
        return {
            "nav_return": final_nav / initial_nav - 1.0,
            "sharpe": mean / math.sqrt(var) * math.sqrt(252) if var > 0 else 0.0,
            "turnover": self.traded_notional / initial_nav,
            "costs": self.costs / initial_nav,
            "trades": float(self.trades),
            "exposure": (self.days_long + self.days_short) / n,
            "sell_fraction": self.actions[0] / n,
            "hold_fraction": self.actions[1] / n,
            "buy_fraction": self.actions[2] / n,
        }


class SpyTradingEnv(gym.Env[np.ndarray, np.int64]):
    metadata = {"render_modes": []}  # noqa: RUF012 - gymnasium's declared class attribute

    def __init__(self, market: MarketArrays, config: EnvConfig, *, record: bool = False) -> None:
        super().__init__()
        self.market = market
        self.config = config
        self.record = record
        if self.config.episode_length is not None and self.config.episode_length > len(market) - 1:
            raise ValueError(
                f"episode_length {self.config.episode_length} exceeds the window ({len(market) - 1} steps)"
            )
        n_obs = market.n_features + len(PORTFOLIO_FEATURES)
        # features are clipped by the normaliser, the portfolio state by the bounds below
        bound = max(market.feature_bound, CASH_FRACTION_BOUND)
        self.observation_space = gym.spaces.Box(-bound, bound, shape=(n_obs,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3)
        # Hot-path data: Python floats index ~3x faster than NumPy scalars, and each day's
        # observation row is prepared once with its features; a step writes 3 portfolio values.
        self._n_features = market.n_features
        self._rows = np.zeros((len(market), n_obs), dtype=np.float32)
        self._rows[:, : market.n_features] = market.features
        self._close = market.close.tolist()
        self._dividends = market.dividends.tolist()
        self._execution = self.config.execution
        fill_prices = market.open if self._execution.fill_at == "next_open" else market.close
        self._fill_prices = fill_prices.tolist()
        self._sell_target = -1 if self._execution.allow_short else 0
        self.log: StepLog | None = None
        self._t = self._end = self._position = 0
        self._cash = self._shares = self._nav = self._entry_price = 0.0
        self.stats = EpisodeStats()

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        last = len(self.market) - 1  # the final decision needs a next day to fill on
        length = self.config.episode_length or last
        start = 0
        if self.config.episode_length is not None and self.config.random_start:
            start = int(self.np_random.integers(0, last - length + 1))
        if options and "start" in options:
            start = int(options["start"])
            if not 0 <= start < last:
                raise ValueError(f"options['start']={start} is outside the window's decision days 0..{last - 1}")
        self._t, self._end = start, min(start + length, last)
        self._cash, self._shares, self._position = self.config.initial_cash, 0.0, 0
        self._nav, self._entry_price = self.config.initial_cash, math.nan
        self.stats = EpisodeStats()
        if self.record:
            self.log = StepLog(self._end - self._t + 1)
            self.log.append(start, action=np.nan, position=0, shares=0, fill_price=np.nan, costs=0, cash=self._cash,
                            nav=self._nav, reward=0.0)  # fmt: skip
        return self._observation(), {"nav": self._nav, "position": 0}

    def step(self, action: np.int64 | int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        act = int(action)
        position = self._position
        if act == Action.HOLD:
            target = position
        elif act == Action.BUY:
            target = 1
        elif act == Action.SELL:
            target = self._sell_target
        else:
            target = target_position(act, position, self._execution.allow_short)  # raises ValueError
        nxt = self._t + 1
        stats = self.stats
        # sized with what is known at t's close (cash before t+1's dividend, t's close price),
        # exactly as the live trader sizes its market-on-open order
        delta = (
            order_shares(self._cash, self._shares, target, self._close[nxt - 1], self._execution)
            if (target != position)
            else 0.0
        )
        dividend = self._dividends[nxt]
        if dividend and self._shares:
            self._cash += self._shares * dividend  # paid to holders at t's close
        fill = NO_FILL
        if delta:
            fill = fill_order(delta, self._fill_prices[nxt], self._execution)
            self._cash -= fill.shares * fill.price + fill.commission
            self._shares += fill.shares
            self._position = position_of(self._shares)
            self._entry_price = fill.price if self._position else math.nan
            stats.trades += 1
            stats.costs += fill.cost
            stats.traded_notional += abs(fill.shares) * fill.price
        nav = self._cash + self._shares * self._close[nxt]
        reward = math.log(nav / self._nav) if nav > 0 else -math.inf
        self._nav, self._t = nav, nxt
        terminated = nav <= 0
        truncated = nxt >= self._end and not terminated
        if self.log is not None:
            self.log.append(nxt, action=act, position=self._position, shares=self._shares, fill_price=fill.price,
                            costs=fill.cost, cash=self._cash, nav=nav, reward=reward)  # fmt: skip
        stats.steps += 1
        stats.actions[act] += 1
        if self._position:
            stats.days_long += self._position > 0
            stats.days_short += self._position < 0
        if not terminated:
            stats.sum_reward += reward
            stats.sum_reward_sq += reward * reward
        info = {"nav": nav, "position": self._position, "costs": fill.cost, "traded": fill is not NO_FILL}
        if terminated or truncated:
            info["episode_stats"] = stats.summary(self.config.initial_cash, nav)
        return self._observation(), (-10.0 if terminated else reward), terminated, truncated, info  # ruin is final

    # ------------------------------------------------------------------ helpers

    def _observation(self) -> np.ndarray:
        row = self._rows[self._t]
        n = self._n_features
        row[n], row[n + 1], row[n + 2] = portfolio_features(
            self._position, self._cash, self._nav, self._close[self._t], self._entry_price
        )
        observation: np.ndarray = row.copy()
        return observation

    @property
    def nav(self) -> float:
        return self._nav

    @property
    def day_index(self) -> int:
        return self._t
