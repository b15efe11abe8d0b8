"""All training markets stepped in one call: a stable-baselines3 ``VecEnv`` without per-env objects.

``BatchedSpyEnv(market, config, n_envs)`` is a drop-in for
``DummyVecEnv([partial(SpyTradingEnv, market, config)] * n_envs)``, in every action space and
with every reward: the same observations, rewards, dones and infos, bit for bit, including
auto-reset (``terminal_observation``, ``TimeLimit.truncated``), ``reset_infos`` and seeding (env
``i`` gets ``seed + i`` and draws its episode starts from a generator made exactly as gymnasium
makes ``np_random``). It lives on the training side because it imports stable-baselines3;
``SpyTradingEnv`` stays the reference.

Why a loop (measured on 2 cores): a NumPy call costs ~0.5-1 us on 16 values as on one, and a
fully vectorised step needs ~55 of them (tried: ~55 us for 16 envs), while one env's step in
plain Python costs ~1.5 us (~26 us for 16 envs); NumPy pays only past ~40 envs. So the per-env
arithmetic runs in one tight loop over Python lists (no env objects, no info deep copies, no
per-env observation copies), and NumPy does what it is good at here: one gather of the day rows
and one block copy of the portfolio values build the whole observation batch.

Bit-identity: the loop runs ``SpyTradingEnv.step``'s operations in the same order on Python
floats, and calls the env's functions where the env calls them: ``fill_order`` per trade,
:func:`~finrl.meta.env.actions.decide`'s two halves for the weight spaces (``action_weight`` as
the actions arrive, so a bad one is refused before any env moves, and ``weight_order_shares`` in
the loop), ``entry_after_fill``, and one ``ShapedReward`` per env, reset with its episode. Two
pieces stay inlined, ``order_shares`` (discrete3) and ``portfolio_features``/``observed_portfolio``:
calling them made a step ~25% slower (measured: discrete3 515k -> 378k env steps/s, the default
agent 241k -> 190k, 16 envs). unit_tests/agents/test_batched_env.py pins the loop against the
scalar env in every action space and reward; logarithms are ``math.log`` (``np.log`` may differ
in the last bit).
"""

from __future__ import annotations

import array
import math
from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from finrl.meta.env.actions import action_weight, weight_order_shares
from finrl.meta.env.execution import entry_after_fill, fill_order
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rewards import ShapedReward
from finrl.meta.env.spy_env import (
    CASH_FRACTION_BOUND,
    PORTFOLIO_FEATURES,
    EnvConfig,
    EpisodeStats,
    SpyTradingEnv,
    observed_portfolio,
)

RUIN_REWARD = -10.0  # as SpyTradingEnv: ruin is final and costs more than any log return
VALID_ACTIONS = frozenset((0, 1, 2))
FLAT, FLAT_RUINED = (0.0, 1.0, 0.0), (0.0, 0.0, 0.0)  # portfolio_features without a position
TRUNCATED = "TimeLimit.truncated"  # SB3's info key for an episode cut by its time limit


class BatchedSpyEnv(VecEnv):
    """``n_envs`` independent ``SpyTradingEnv`` episodes on one market, state held in lists."""

    def __init__(self, market: MarketArrays, config: EnvConfig, n_envs: int = 1) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be at least 1, got {n_envs}")
        self.market = market
        self.config = config
        reference = SpyTradingEnv(market, self.config)  # validates the config and defines the spaces
        execution = self.config.execution
        self._discrete3 = config.action_space == "discrete3"
        self._nf = market.n_features
        self._rows = np.zeros((len(market), self._nf + len(PORTFOLIO_FEATURES)), dtype=np.float32)
        self._rows[:, : self._nf] = market.features
        # Python floats: indexing a list is ~3x faster than a NumPy array, as in SpyTradingEnv
        self._close: list[float] = market.close.tolist()
        self._dividends: list[float] = market.dividends.tolist()
        volatility, adv = market.liquidity  # the impact inputs known at each day's close
        self._volatility: list[float] = volatility.tolist()
        self._adv: list[float] = adv.tolist()
        fill = market.open if execution.fill_at == "next_open" else market.close
        self._fill_prices: list[float] = fill.tolist()
        self._last = len(market) - 1  # the final decision needs a next day to fill on
        self._length = self.config.episode_length or self._last
        self._random_start = self.config.episode_length is not None and self.config.random_start
        self._sell_target = -1 if execution.allow_short else 0
        self._initial_cash = self.config.initial_cash
        # per-env state: SpyTradingEnv's attributes, one slot per env
        n = n_envs
        self._t = [0] * n
        self._end = [0] * n
        self._position = [0] * n
        self._cash = [self._initial_cash] * n
        self._shares = [0.0] * n
        self._nav = [self._initial_cash] * n
        self._entry_price = [math.nan] * n
        self._stats = [EpisodeStats() for _ in range(n)]
        self._shaped = (
            []
            if config.reward == "log_return"
            else [ShapedReward(config.reward, config.dsr_eta, config.drawdown_penalty) for _ in range(n)]
        )
        # gymnasium's lazily created np_random and its seed, per env
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._rng_seeds: list[int | None] = [None] * n
        self._actions: list[int] = [1] * n  # discrete3: sell / hold / buy
        self._weights: list[float] = [0.0] * n  # the weight spaces: each env's target weight
        # each env's 3 portfolio values, written by the loop as Python floats (array items take
        # them ~3x faster than NumPy items) and copied into the observations through a NumPy view
        self._portfolio = array.array("d", bytes(24 * n))
        self._portfolio_view = np.frombuffer(self._portfolio, dtype=np.float64).reshape(n, 3)
        super().__init__(n, reference.observation_space, reference.action_space)
        self.metadata = dict(SpyTradingEnv.metadata)

    # ------------------------------------------------------------------ VecEnv API

    def reset(self) -> np.ndarray:
        for i in range(self.num_envs):
            self._reset_one(i, self._seeds[i], self._options[i] or None)
        self._reset_seeds()
        self._reset_options()
        return self._observations(range(self.num_envs))

    def step_async(self, actions: np.ndarray) -> None:
        """Read every env's action before any env moves, as ``SpyTradingEnv.step`` reads its own."""
        given = np.asarray(actions).reshape(self.num_envs)
        if self.config.action_space == "continuous":  # float32 weights, exactly as float64 (clipped below)
            self._weights = [action_weight(w, self.config) for w in given.astype(np.float64).tolist()]
            return
        acts: list[int] = given.astype(np.int64, copy=False).tolist()  # int(action), as SpyTradingEnv does
        if not self._discrete3:
            self._weights = [action_weight(a, self.config) for a in acts]  # raises on a bad level index
            return
        if not VALID_ACTIONS.issuperset(acts):
            bad = next(a for a in acts if a not in VALID_ACTIONS)
            raise ValueError(f"invalid action {bad!r}: expected 0 (sell), 1 (hold) or 2 (buy)")
        self._actions = acts

    def step_wait(self) -> VecEnvStepReturn:
        """``SpyTradingEnv.step`` for every env, inlined: the same operations in the same order.

        ``max(lo, min(hi, x))`` is written as conditional expressions with the same comparisons
        (``min(a, b)`` keeps ``a`` unless ``b < a``): the same values, without two calls per value.
        """
        close, dividends, fill_prices = self._close, self._dividends, self._fill_prices
        volatility, adv, execution = self._volatility, self._adv, self.config.execution
        t_, end_, position_, cash_, shares_ = self._t, self._end, self._position, self._cash, self._shares
        nav_, entry_, stats_, shaped_ = self._nav, self._entry_price, self._stats, self._shaped
        discrete3, actions, weights, band = self._discrete3, self._actions, self._weights, self.config.rebalance_band
        costs = execution.costs
        up, down = 1 + costs.price_impact, 1 - costs.price_impact
        rate = costs.commission_rate
        entry_factor = 1 + rate
        fraction = execution.position_fraction
        fractional = execution.fractional_shares
        sell_target, log, nan = self._sell_target, math.log, math.nan
        bound = CASH_FRACTION_BOUND
        rewards: list[float] = []
        portfolio = self._portfolio
        infos: list[dict[str, Any]] = []
        done: list[int] = []
        for i in range(self.num_envs):
            k = 3 * i
            position = position_[i]
            nxt = t_[i] + 1
            cash, shares = cash_[i], shares_[i]
            # the order, sized at t's close with the cash known then (before t+1's dividend)
            if discrete3:  # order_shares, inlined
                act = actions[i]
                target = position if act == 1 else (1 if act == 2 else sell_target)
                delta = 0.0
                if target != position:
                    if target == 0:
                        delta = -shares
                    else:
                        sizing = close[nxt - 1]
                        entry_price = sizing * (up if target > 0 else down)
                        exit_price = sizing * (down if shares > 0 else up)
                        close_cost = abs(shares) * (abs(exit_price - sizing) + exit_price * rate)
                        left = cash + shares * sizing - close_cost
                        budget = (left if left > 0.0 else 0.0) * fraction / (entry_price * entry_factor)
                        size = math.floor(budget * 1e9) / 1e9 if fractional else math.floor(budget + 1e-9)
                        delta = target * size - shares
            else:
                delta = weight_order_shares(cash, shares, weights[i], close[nxt - 1], execution, band)
                act = 0 if delta < 0 else (2 if delta > 0 else 1)  # the stats' sell / hold / buy
            dividend = dividends[nxt]
            if dividend and shares:
                cash += shares * dividend  # paid to holders at t's close
                cash_[i] = cash
            stats = stats_[i]
            cost = 0.0
            traded = False
            if delta:  # at t+1's open (or close), with day t's impact inputs, as SpyTradingEnv.step fills
                traded = True
                fill = fill_order(delta, fill_prices[nxt], execution, volatility[nxt - 1], adv[nxt - 1])
                price, cost = fill.price, fill.cost
                cash -= fill.shares * price + fill.charges
                before = shares
                shares += delta
                cash_[i], shares_[i] = cash, shares
                position = position_[i] = (shares > 0) - (shares < 0)  # position_of, without its int() calls
                # discrete3 enters whole positions; a weight's partial add averages the entry price
                entry_[i] = (
                    (price if position else nan) if discrete3 else entry_after_fill(before, entry_[i], delta, price)
                )
                stats.trades += 1
                stats.costs += cost
                stats.traded_notional += abs(delta) * price
            price_now = close[nxt]
            nav = cash + shares * price_now
            t_[i] = nxt
            stats.steps += 1
            stats.actions[act] += 1
            unrealized = 0.0
            if position:
                stats.days_long += position > 0
                stats.days_short += position < 0
                # portfolio_features' unrealised log return, clipped to [-1, 1]
                unrealized = position * log(price_now / entry_[i])
                unrealized = unrealized if unrealized < 1.0 else 1.0
                unrealized = unrealized if unrealized > -1.0 else -1.0
            if nav > 0:  # the common path: no ruin
                log_return = log(nav / nav_[i])
                nav_[i] = nav
                stats.sum_reward += log_return  # the episode's Sharpe is of its log returns, whatever the reward
                stats.sum_reward_sq += log_return * log_return
                rewards.append(
                    shaped_[i](log_return, nav, close[nxt - 1], price_now, dividend) if shaped_ else log_return
                )
                if position:  # portfolio_features: the position (weight spaces: the signed weight), cash fraction
                    held = cash / nav
                    held = held if held < bound else bound
                    weight: float = position
                    if not discrete3:
                        weight = shares * price_now / nav
                        weight = weight if weight < bound else bound
                        weight = weight if weight > -bound else -bound
                    portfolio[k], portfolio[k + 1], portfolio[k + 2] = (
                        weight,
                        held if held > -bound else -bound,
                        unrealized,
                    )
                else:
                    portfolio[k], portfolio[k + 1], portfolio[k + 2] = FLAT
                if nxt < end_[i]:
                    infos.append({"nav": nav, "position": position, "costs": cost, "traded": traded, TRUNCATED: False})
                    continue
                truncated = True
            else:  # ruin is final; its -inf log return is not summed
                nav_[i] = nav
                rewards.append(RUIN_REWARD)
                # without a positive NAV the weight is 0 (position_weight) and so is the cash fraction
                portfolio[k], portfolio[k + 1], portfolio[k + 2] = (
                    (position if discrete3 else 0.0, 0.0, unrealized) if position else FLAT_RUINED
                )
                truncated = False
            info: dict[str, Any] = {"nav": nav, "position": position, "costs": cost, "traded": traded}
            info["episode_stats"] = stats.summary(self._initial_cash, nav)
            info[TRUNCATED] = truncated  # DummyVecEnv's key order
            infos.append(info)
            done.append(i)
        obs = self._rows.take(t_, axis=0)  # one gather: a fresh array of day rows
        obs[:, self._nf :] = self._portfolio_view
        dones = np.zeros(self.num_envs, dtype=bool)
        if done:
            dones[done] = True
            for i in done:
                infos[i]["terminal_observation"] = obs[i].copy()
                self._reset_one(i, None, None)
            obs[done] = self._observations(done)
        return obs, np.array(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        """Nothing to release: the env holds arrays and lists only."""

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """What ``DummyVecEnv.get_attr`` would return from each ``SpyTradingEnv`` (its public state)."""
        return [self._attr(attr_name, i) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Only ``np_random`` can be set: the rest is shared configuration or state the step owns."""
        if attr_name != "np_random":
            raise AttributeError(f"{type(self).__name__} cannot set {attr_name!r} (only np_random)")
        for i in self._get_indices(indices):
            self._rngs[i], self._rng_seeds[i] = value, -1  # gymnasium's marker for an unknown seed

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """``reset(seed=..., options=...)`` per env, returning ``(observation, info)`` as ``SpyTradingEnv.reset``."""
        if method_name != "reset" or method_args:
            raise AttributeError(f"{type(self).__name__} supports env_method('reset', seed=..., options=...) only")
        out = []
        for i in self._get_indices(indices):
            self._reset_one(i, method_kwargs.get("seed"), method_kwargs.get("options"))
            out.append((self._observations([i])[0], dict(self.reset_infos[i])))
        return out

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]  # no gymnasium wrappers inside

    # ------------------------------------------------------------------ helpers

    def _rng(self, i: int) -> np.random.Generator:
        rng = self._rngs[i]
        if rng is None:  # as gymnasium's np_random property: a random seed on first use
            rng, self._rng_seeds[i] = seeding.np_random()
            self._rngs[i] = rng
        return rng

    def _reset_one(self, i: int, seed: int | None, options: dict[str, Any] | None) -> None:
        """``SpyTradingEnv.reset`` for env ``i``: the same draws from the same generator."""
        if seed is not None:
            self._rngs[i], self._rng_seeds[i] = seeding.np_random(seed)
        start = 0
        if self._random_start:
            start = int(self._rng(i).integers(0, self._last - self._length + 1))
        if options and "start" in options:
            start = int(options["start"])
            if not 0 <= start < self._last:
                raise ValueError(f"options['start']={start} is outside the window's decision days 0..{self._last - 1}")
        self._t[i], self._end[i] = start, min(start + self._length, self._last)
        self._cash[i], self._shares[i], self._position[i] = self._initial_cash, 0.0, 0
        self._nav[i], self._entry_price[i] = self._initial_cash, math.nan
        self._stats[i] = EpisodeStats()
        if self._shaped:
            self._shaped[i].reset(self._initial_cash)
        self.reset_infos[i] = {"nav": self._initial_cash, "position": 0}

    def _observations(self, index: Iterable[int]) -> np.ndarray:
        """Observations of the envs in ``index``, float32 ``[k, obs]`` (after a reset, or on request)."""
        envs = list(index)
        obs = self._rows[[self._t[i] for i in envs]]
        obs[:, self._nf :] = [
            observed_portfolio(
                self.config, self._shares[i], self._cash[i], self._nav[i], self._close[self._t[i]], self._entry_price[i]
            )
            for i in envs
        ]
        return obs

    def _attr(self, name: str, i: int) -> Any:
        shared = {
            "market": self.market,
            "config": self.config,
            "observation_space": getattr(self, "observation_space", None),  # absent inside VecEnv.__init__
            "action_space": getattr(self, "action_space", None),
            "metadata": SpyTradingEnv.metadata,
            "render_mode": None,
            "spec": None,
        }
        if name in shared:
            return shared[name]
        if name == "np_random":
            return self._rng(i)
        if name == "np_random_seed":
            self._rng(i)
            return self._rng_seeds[i]
        state: dict[str, list[Any]] = {
            "nav": self._nav,
            "day_index": self._t,
            "position": self._position,
            "stats": self._stats,
        }
        if name in state:
            return state[name][i]
        raise AttributeError(f"{type(self).__name__} has no per-env attribute {name!r}")
