"""Out-of-sample evaluation of a model bundle against baselines on identical terms.

The agent and every baseline replay through the same environment, data, execution rule and
costs, day by day; the bundle's normalisation and features are applied as saved (no refit).
The baselines keep their meaning under any action space of the bundle: they replay as
``discrete3`` actions (buy = fully invested at ``position_fraction``, sell = flat) under the
bundle's execution and costs, whatever the agent's action space and reward. A caller may pass
another env config (the bundle's with other costs or fill rule: ``spy-rl backtest --commission-bps``
and the like); the report records the one used.

An ensemble bundle backtests like any other: its members' shadow books start flat on the window's
first day, each under the backtest's execution and costs, and the ensemble trades its rule's target
weights as a continuous strategy (:mod:`finrl.agents.ensemble`).

Risk limits (``spy-rl backtest`` passes the paper trader's unless ``--no-risk-limits``) apply to the
agent, an ensemble's own book included, through the trader's own rule (:func:`finrl.trade.risk.apply_limits`
on the equity, peak and previous equity at each decision's close): a halt flattens and stays flat to
the window's end (no person resets it), a blocked order is not sent. The baselines stay unconstrained:
they are the market's yardsticks, not strategies the trader would run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from finrl.agents.ensemble import trade_targets
from finrl.agents.ensemble_bundle import AnyBundle, EnsembleBundle
from finrl.agents.numpy_policy import NumpyPolicy
from finrl.calendar import trading_sessions
from finrl.errors import DataError
from finrl.log import get_logger
from finrl.meta.env.execution import Action
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rollout import EpisodeLedger, Policy, run_policy, scheduled_policy
from finrl.meta.env.spy_env import EnvConfig
from finrl.meta.preprocessing import DateWindow
from finrl.performance import performance
from finrl.trade.risk import RiskBook, RiskEvent, RiskLimits, RiskOutcome

log = get_logger(__name__)

AGENT = "agent"
BASELINES = ("buy_and_hold", "flat", "sma_crossover")


@dataclass(frozen=True)
class BacktestResult:
    bundle: AnyBundle
    window: DateWindow
    prices: pd.DataFrame  # open, close of the window
    ledgers: dict[str, EpisodeLedger]
    metrics: dict[str, dict[str, float]]
    config: EnvConfig  # what the agent ran with: the bundle's, or its costs replaced
    market: MarketArrays  # the window as every strategy saw it (a caller replaying another policy reuses it)
    agent_policy: NumpyPolicy | None  # a single bundle's policy; None for an ensemble
    warnings: list[str] = field(default_factory=list)
    risk_limits: RiskLimits | None = None  # the agent's limits; None: unconstrained
    risk_events: list[RiskEvent] = field(default_factory=list)  # the agent's halts and blocked orders
    risk_free_rate: float = 0.0  # annual: what Sharpe, Sortino and alpha were computed with (the report says it)

    @property
    def policy(self) -> NumpyPolicy:
        """The agent's policy; an ensemble has none of its own (its members act on their own books)."""
        if self.agent_policy is None:
            raise TypeError(f"{self.bundle.run_name} is an ensemble: it has no single policy")
        return self.agent_policy

    def meta(self) -> dict[str, Any]:
        split = self.bundle.split
        meta = {
            "model": self.bundle.run_name,
            "model_path": str(self.bundle.path),
            "test_start": self.window.start.isoformat(),
            "test_end": self.window.end.isoformat(),
            "days": len(self.prices),
            "risk_free_rate": self.risk_free_rate,
            "train_window": split.train.to_dict(),
            "validation_window": split.validation.to_dict() if split.validation else None,
            "data": self.bundle.manifest.data,
            "execution": self.config.to_dict(),
            "warnings": list(self.warnings),
            "risk": self.risk_meta(),
        }
        if isinstance(self.bundle, EnsembleBundle):
            meta["ensemble"] = ensemble_meta(self.bundle)
        return meta

    def risk_meta(self) -> dict[str, Any]:
        """The limits the agent ran under (None: unconstrained) and what they did, as the trader journals it."""
        outcome = RiskOutcome.of(self.risk_events)
        return {
            "limits": asdict(self.risk_limits) if self.risk_limits else None,
            "applies_to": AGENT,  # the baselines are unconstrained
            "halts": len(outcome.halts),
            "blocked_orders": len(outcome.blocked),
            "events": [asdict(event) for event in self.risk_events],
        }


def ensemble_meta(ensemble: EnsembleBundle) -> dict[str, Any]:
    """The rule and the members of an ensemble, with the windows each member saw."""
    return {
        "rule": ensemble.rule,
        "anchor": ensemble.anchor.isoformat(),
        "members": [{"model": m.run_name, **m.split.to_dict()} for m in ensemble.members],
    }


def default_test_window(bundle: AnyBundle, index: pd.DatetimeIndex) -> DateWindow:
    """The days after everything the model saw (training and validation) up to the end of the data."""
    seen = bundle.split.seen_end
    after = index[index > pd.Timestamp(seen)]
    if len(after) < 2:
        raise DataError(
            f"no test days after the model's training/validation data (ends {seen}): "
            "load data past that date or pass --test-start/--test-end"
        )
    return DateWindow(after[0].date(), after[-1].date())


def leakage_warnings(bundle: AnyBundle, window: DateWindow) -> list[str]:
    models = (
        [(f"member {m.run_name}'s", m) for m in bundle.members]
        if isinstance(bundle, EnsembleBundle)
        else [("model's", bundle)]
    )
    return [
        f"DATA LEAKAGE: the test window {window.start}..{window.end} overlaps the {whose} {name} window "
        f"{w.start}..{w.end}; results are in-sample"
        for whose, model in models
        for name, w in (("training", model.split.train), ("validation", model.split.validation))
        if w is not None and w.overlaps(window)
    ]


def sma_crossover_actions(frame: pd.DataFrame, fast: str = "close_30_sma", slow: str = "close_60_sma") -> np.ndarray:
    """Long while the fast moving average is above the slow one (both known at each close)."""
    if fast not in frame.columns or slow not in frame.columns:
        raise DataError(f"the SMA baseline needs {fast} and {slow} in the features")
    return np.where(frame[fast].to_numpy() > frame[slow].to_numpy(), Action.BUY, Action.SELL)


def run_backtest(
    bundle: AnyBundle,
    features: pd.DataFrame,
    window: DateWindow,
    risk_free_rate: float,
    env_config: EnvConfig | None = None,
    risk_limits: RiskLimits | None = None,
) -> BacktestResult:
    """The agent and the baselines over ``window``; ``risk_free_rate`` (annual) enters Sharpe, Sortino and alpha.

    ``env_config`` replaces the bundle's (other costs or fill rule; same action space and reward).
    The impact inputs of the window's first days come from the days of ``features`` before it.
    ``risk_limits`` constrain the agent as the paper trader's do (None: the unconstrained policy).
    """
    bundle.check_features(features)
    frame = window.slice(features, what="test window")
    if len(frame) < 2:
        raise DataError(f"the test window {window.start}..{window.end} holds {len(frame)} day(s): need at least 2")
    missing = trading_sessions(frame.index[0], frame.index[-1]).difference(pd.DatetimeIndex(frame.index))
    if len(missing):  # a missing session would silently stretch a fill and a return over two days
        raise DataError(f"{len(missing)} NYSE session(s) missing in the test window, first {missing[0]:%Y-%m-%d}")
    warnings = leakage_warnings(bundle, window)
    for warning in warnings:
        log.warning("data_leakage", detail=warning)

    config = env_config or bundle.env_config
    book = RiskBook(risk_limits) if risk_limits else None
    market, agent_ledger, agent = run_agent(bundle, frame, features, config, book)
    for event in book.events if book else []:
        if event.event == "risk_halt":
            log.warning("risk_halt", date=event.date, reason=event.detail, note="the agent is flat from here on")
    baselines: dict[str, Policy] = {
        "buy_and_hold": scheduled_policy(np.full(len(frame), Action.BUY)),
        "flat": scheduled_policy(np.full(len(frame), Action.SELL)),
        "sma_crossover": scheduled_policy(sma_crossover_actions(frame)),
    }
    baseline_config = replace(config, action_space="discrete3")  # the same execution and costs, sell/hold/buy
    ledgers = {AGENT: agent_ledger} | {
        name: run_policy(market, baseline_config, policy) for name, policy in baselines.items()
    }
    benchmark = ledgers["buy_and_hold"].nav
    metrics = {name: performance(ledger.frame, benchmark, risk_free_rate) for name, ledger in ledgers.items()}
    log.info(
        "backtest_done", model=bundle.run_name, start=str(window.start), end=str(window.end),
        agent_return=round(metrics[AGENT]["total_return"], 4),
        buy_and_hold_return=round(metrics["buy_and_hold"]["total_return"], 4),
        risk_events=len(book.events) if book else None,
    )  # fmt: skip
    return BacktestResult(
        bundle, window, frame[["open", "close"]], ledgers, metrics, config, market, agent, warnings,
        risk_limits, list(book.events) if book else [], risk_free_rate,
    )  # fmt: skip


def run_agent(
    bundle: AnyBundle, frame: pd.DataFrame, features: pd.DataFrame, config: EnvConfig, risk: RiskBook | None = None
) -> tuple[MarketArrays, EpisodeLedger, NumpyPolicy | None]:
    """The window's market, the agent's ledger on it (under ``risk``'s limits), and its policy (None for an ensemble).

    An ensemble's members replay on their own books from the window's first day (their decisions are
    not limited: only the ensemble's own book trades); the ensemble and the baselines never read
    features, so the window's market carries its first member's.
    """
    if isinstance(bundle, EnsembleBundle):
        market = MarketArrays.from_features(frame, bundle.members[0].normalizer, history=features)
        targets = bundle.replay(frame, features, config.execution).targets
        return market, trade_targets(market, config, targets, risk), None
    market = MarketArrays.from_features(frame, bundle.normalizer, history=features)
    policy = bundle.load_policy()
    return market, run_policy(market, config, policy, risk), policy
