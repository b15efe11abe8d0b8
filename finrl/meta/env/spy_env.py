"""A single-asset daily trading environment (Gymnasium) with honest execution.

Timeline of one step, decision made after the close of day t:

* the observation holds day t's normalised features and the portfolio state at t's close;
* the action sets a target: with ``discrete3`` (0 sell, 1 hold, 2 buy) a position in {flat, long}
  (or {short, flat, long}); with ``target_weight`` and ``continuous`` a weight of equity
  (:mod:`finrl.meta.env.actions`); a change fills at day t+1's open (or close), paying
  commission, spread, slippage, square-root impact and (sells) the SEC and FINRA fees
  (:mod:`finrl.meta.env.execution`), the impact from day t's trailing volatility and volume;
* holders at t's close receive day t+1's dividend;
* the reward is log(NAV_{t+1} / NAV_t), both marked at the close, after costs, or a shaping of it
  (:mod:`finrl.meta.env.rewards`); ruin is -10 and final.

Repeated buys while long and sells while flat (or short) change nothing and cost nothing. For the
weight spaces the observation's position feature is the signed weight ``shares * close / NAV``
(clipped to the cash-fraction bound) instead of -1/0/+1, and the ledger's ``action`` is the
decided target weight.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from finrl.meta.env.actions import (
    ActionSpaceName,
    check_action_config,
    decide,
    gym_action_space,
    position_weight,
)
from finrl.meta.env.execution import (
    COST_COMPONENTS,
    COSTS_BEFORE_FEES,
    NO_FILL,
    Action,
    CostModel,
    ExecutionConfig,
    entry_after_fill,
    fill_order,
    order_shares,
    position_of,
    target_position,
)
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rewards import RewardName, ShapedReward, check_reward_config

PORTFOLIO_FEATURES = ("position", "cash_fraction", "unrealized_return")
CASH_FRACTION_BOUND = 3.0
ENV_CONFIG_VERSION = 3
# what an env config written before version 2 (no action space or reward fields) meant
VERSION_1_MEANING: dict[str, Any] = {
    "action_space": "discrete3",
    "weight_levels": (0.0, 1.0),  # unused by discrete3
    "rebalance_band": 0.0,
    "reward": "log_return",
    "dsr_eta": 0.01,  # unused by log_return
    "drawdown_penalty": 0.0,
}


@dataclass(frozen=True)
class EnvConfig:
    """The env's account and episodes; the user-facing values come from the caller (``Settings`` holds the
    defaults). ``random_start`` is not a setting: training starts episodes anywhere, replays start at day 0."""

    execution: ExecutionConfig
    initial_cash: float
    episode_length: int | None  # trading days per episode; None = the whole window
    random_start: bool = True  # only with episode_length: start anywhere in the window
    action_space: ActionSpaceName = field(kw_only=True)  # discrete3 | target_weight | continuous
    weight_levels: tuple[float, ...] = field(kw_only=True)  # target_weight: the weight of each action
    rebalance_band: float = field(kw_only=True)  # weight spaces: no order within this weight of the target
    reward: RewardName = field(kw_only=True)
    dsr_eta: float = field(kw_only=True)  # differential_sharpe: the EMA rate
    drawdown_penalty: float = field(kw_only=True)  # drawdown_penalty: the coefficient

    def __post_init__(self) -> None:
        if self.initial_cash <= 0:
            raise ValueError("initial_cash must be positive")
        if self.episode_length is not None and self.episode_length < 1:
            raise ValueError("episode_length must be at least 1 day")
        object.__setattr__(self, "weight_levels", tuple(float(w) for w in self.weight_levels))
        check_action_config(self.action_space, self.weight_levels, self.rebalance_band, self.execution.allow_short)
        check_reward_config(self.reward, self.dsr_eta, self.drawdown_penalty)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "weight_levels": list(self.weight_levels), "version": ENV_CONFIG_VERSION}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvConfig:
        """The config a bundle recorded; an older one keeps its meaning: before version 2 the
        :data:`VERSION_1_MEANING`, before version 3 no regulatory fees and no impact
        (:data:`~finrl.meta.env.execution.COSTS_BEFORE_FEES`)."""
        data = dict(data)
        version = data.pop("version", 1)
        if version == 1:
            data = {**VERSION_1_MEANING, **data}
        elif not 2 <= version <= ENV_CONFIG_VERSION:
            raise ValueError(f"env config version {version}, this finrl reads 1..{ENV_CONFIG_VERSION}")
        execution = dict(data["execution"])  # a bundle records every field: nothing else is filled in
        recorded = execution.pop("costs")
        costs = CostModel(**({**COSTS_BEFORE_FEES, **recorded} if version < 3 else recorded))
        return cls(**{**data, "execution": ExecutionConfig(costs=costs, **execution)})


class StepLog:
    """Preallocated per-step records of one episode (the backtest's day-by-day ledger)."""

    COST_FIELDS = tuple(f"cost_{name}" for name in COST_COMPONENTS)  # each fill's costs, apart
    FIELDS = ("action", "position", "shares", "fill_price", "costs", *COST_FIELDS, "cash", "nav", "reward")

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
    position: int, cash: float, nav: float, close: float, entry_price: float, weight: float | None = None
) -> tuple[float, float, float]:
    """The observation's portfolio part: position, cash fraction, unrealised log return.

    One function for the env and the live trader, so a live decision sees exactly what training
    saw. A short holds about twice its NAV in cash (a losing one more): clipped to stay in bounds.
    ``weight`` (weight action spaces) replaces the -1/0/+1 position with the signed weight.
    """
    if not position:
        return 0.0, (1.0 if nav > 0 else 0.0), 0.0
    cash_fraction = cash / nav if nav > 0 else 0.0
    unrealized = position * math.log(close / entry_price)
    return (
        float(position) if weight is None else max(-CASH_FRACTION_BOUND, min(CASH_FRACTION_BOUND, weight)),
        max(-CASH_FRACTION_BOUND, min(CASH_FRACTION_BOUND, cash_fraction)),
        max(-1.0, min(1.0, unrealized)),
    )


def observed_portfolio(
    config: EnvConfig, shares: float, cash: float, nav: float, close: float, entry_price: float
) -> tuple[float, float, float]:
    """:func:`portfolio_features` of an account in ``config``'s action space (the env and the trader)."""
    weight = None if config.action_space == "discrete3" else position_weight(shares, close, nav)
    return portfolio_features(position_of(shares), cash, nav, close, entry_price, weight)


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


class SpyTradingEnv(gym.Env[np.ndarray, Any]):
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
        self.action_space = gym_action_space(config)
        self._discrete3 = config.action_space == "discrete3"
        self._shaped = (
            None
            if config.reward == "log_return"
            else ShapedReward(config.reward, config.dsr_eta, config.drawdown_penalty)
        )
        # Hot-path data: Python floats index ~3x faster than NumPy scalars, and each day's
        # observation row is prepared once with its features; a step writes 3 portfolio values.
        self._n_features = market.n_features
        self._rows = np.zeros((len(market), n_obs), dtype=np.float32)
        self._rows[:, : market.n_features] = market.features
        self._close = market.close.tolist()
        self._dividends = market.dividends.tolist()
        volatility, adv = market.liquidity  # known at each day's close: a fill at t+1 reads day t's
        self._volatility, self._adv = volatility.tolist(), adv.tolist()
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
        if self._shaped is not None:
            self._shaped.reset(self._nav)
        if self.record:
            self.log = StepLog(self._end - self._t + 1)
            self.log.append(start, action=np.nan, position=0, shares=0, fill_price=np.nan, costs=0, cash=self._cash,
                            nav=self._nav, reward=0.0, **dict.fromkeys(StepLog.COST_FIELDS, 0.0))  # fmt: skip
        return self._observation(), {"nav": self._nav, "position": 0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        position = self._position
        if self._discrete3:
            act = int(action)
            if act == Action.HOLD:
                target = position
            elif act == Action.BUY:
                target = 1
            elif act == Action.SELL:
                target = self._sell_target
            else:
                target = target_position(act, position, self._execution.allow_short)  # raises ValueError
            # sized with what is known at t's close (cash before t+1's dividend, t's close price),
            # exactly as the live trader sizes its market-on-open order
            delta = (
                order_shares(self._cash, self._shares, target, self._close[self._t], self._execution)
                if (target != position)
                else 0.0
            )
            decided: float = act
        else:  # a weight, sized and banded exactly as the trader does it
            decided, delta = decide(action, self._cash, self._shares, self._close[self._t], self.config)
            act = 0 if delta < 0 else (2 if delta > 0 else 1)  # the stats' sell / hold / buy
        return self._fill_and_mark(decided, act, delta)

    def decision(self, action: Any) -> tuple[float, float, float]:
        """``(ledger action, target, order)`` that ``action`` asks for at the current close, as :meth:`step`
        would trade it (:func:`~finrl.meta.env.actions.decide` on this account); nothing happens yet."""
        target, order = decide(action, self._cash, self._shares, self._close[self._t], self.config)
        return (float(int(action)) if self._discrete3 else target), target, order

    def step_order(self, decided: float, order: float) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """A step that trades ``order`` (signed shares, sized at the current close) instead of a policy's
        action: what a risk gate let through. ``decided`` is the ledger's action (NaN: the policy was not
        asked); the episode's sell / hold / buy counts follow the order's sign."""
        return self._fill_and_mark(decided, 0 if order < 0 else (2 if order > 0 else 1), order)

    def _fill_and_mark(
        self, decided: float, act: int, delta: float
    ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Day t+1: the dividend, ``delta``'s fill, the mark at the close, the reward and the records."""
        t = self._t
        nxt = t + 1
        stats = self.stats
        dividend = self._dividends[nxt]
        if dividend and self._shares:
            self._cash += self._shares * dividend  # paid to holders at t's close
        fill = NO_FILL
        if delta:
            fill = fill_order(delta, self._fill_prices[nxt], self._execution, self._volatility[t], self._adv[t])
            self._cash -= fill.shares * fill.price + fill.charges
            shares_before = self._shares
            self._shares += fill.shares
            self._position = position_of(self._shares)
            if self._discrete3:
                self._entry_price = fill.price if self._position else math.nan
            else:  # partial adds average the entry price, as a broker reports it
                self._entry_price = entry_after_fill(shares_before, self._entry_price, fill.shares, fill.price)
            stats.trades += 1
            stats.costs += fill.cost
            stats.traded_notional += abs(fill.shares) * fill.price
        nav = self._cash + self._shares * self._close[nxt]
        log_return = math.log(nav / self._nav) if nav > 0 else -math.inf
        reward = log_return
        if self._shaped is not None and nav > 0:
            reward = self._shaped(log_return, nav, self._close[nxt - 1], self._close[nxt], dividend)
        self._nav, self._t = nav, nxt
        terminated = nav <= 0
        truncated = nxt >= self._end and not terminated
        if self.log is not None:
            self.log.append(nxt, action=decided, position=self._position, shares=self._shares, fill_price=fill.price,
                            costs=fill.cost, cash=self._cash, nav=nav, reward=reward, cost_commission=fill.commission,
                            cost_spread=fill.spread, cost_slippage=fill.slippage, cost_impact=fill.impact,
                            cost_sec_fee=fill.sec_fee, cost_taf=fill.taf)  # fmt: skip
        stats.steps += 1
        stats.actions[act] += 1
        if self._position:
            stats.days_long += self._position > 0
            stats.days_short += self._position < 0
        if not terminated:  # the episode's Sharpe is of its log returns, whatever the reward
            stats.sum_reward += log_return
            stats.sum_reward_sq += log_return * log_return
        info = {"nav": nav, "position": self._position, "costs": fill.cost, "traded": fill is not NO_FILL}
        if terminated or truncated:
            info["episode_stats"] = stats.summary(self.config.initial_cash, nav)
        return self._observation(), (-10.0 if terminated else reward), terminated, truncated, info  # ruin is final

    # ------------------------------------------------------------------ helpers

    def _observation(self) -> np.ndarray:
        row = self._rows[self._t]
        n = self._n_features
        if self._discrete3:
            row[n], row[n + 1], row[n + 2] = portfolio_features(
                self._position, self._cash, self._nav, self._close[self._t], self._entry_price
            )
        else:
            row[n], row[n + 1], row[n + 2] = observed_portfolio(
                self.config, self._shares, self._cash, self._nav, self._close[self._t], self._entry_price
            )
        observation: np.ndarray = row.copy()
        return observation

    @property
    def nav(self) -> float:
        return self._nav

    @property
    def day_index(self) -> int:
        return self._t

    @property
    def shares(self) -> float:
        return self._shares
