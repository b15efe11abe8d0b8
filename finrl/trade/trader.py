"""The daily decision: after a session's close, turn the model's action into one safe order.

Each cycle (1) reconciles earlier orders with the broker, (2) builds the observation exactly as
in training (the bundle's features, normalisation and portfolio state), (3) checks the risk
limits, and (4) submits at most one market order for the next session, under a deterministic
client order id (strategy, symbol, session) so that a crash or restart anywhere never sends a
duplicate: the broker is asked for that id before anything is submitted. The broker's account
and position are the truth; the journal records everything, the state file only what must
survive a restart (equity peak, halt, orders awaiting a final status).

An ensemble bundle decides without an observation of the account: its members' shadow books are
replayed from the ensemble's anchor up to the session (the backtest's replay, so the decision is
the backtest's), and the account trades the ensemble's target weight as a continuous strategy.

Each decision also measures drift (:mod:`finrl.trade.drift`): the PSI of every observed feature
over the trailing year against the bundle's training distribution, and of this model's recent
decisions' action mix (the journal's decisions name their model) against the policy's on the
training window, exported as metrics and recorded in the decision's journal entry. An ensemble's
members share one feature spec: its features are compared with its first member's training
distribution, and its action mix (continuous target weights, which no member's training mix
describes) is not measured. A bundle written before the reference
existed has no drift metrics. Each broker fill is reconciled with the fill the backtest would have
had (:mod:`finrl.trade.fill_reconciliation`): the slippage goes to the journal and a metric.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from finrl.agents.bundle import DriftReference
from finrl.agents.ensemble_bundle import AnyBundle, EnsembleBundle
from finrl.calendar import SessionTimes, et, last_final_session
from finrl.errors import DataError
from finrl.fileio import atomic_write_json
from finrl.log import get_logger
from finrl.meta.env.actions import decide
from finrl.meta.env.rollout import Policy
from finrl.meta.env.spy_env import observed_portfolio
from finrl.schemas import TraderStateFile, validate_file
from finrl.trade.broker import (
    AccountState,
    Broker,
    BrokerAuthError,
    BrokerError,
    BrokerUnavailableError,
    OrderState,
)
from finrl.trade.drift import WINDOW, DriftReading, measure, model_actions
from finrl.trade.fill_reconciliation import FilledOrder, bar_pending, fill_session_of, reconcile
from finrl.trade.journal import Journal
from finrl.trade.metrics import TradingMetrics
from finrl.trade.risk import RiskLimits, apply_limits, rule_of

log = get_logger(__name__)

FeatureProvider = Callable[[date], pd.DataFrame]
LatePolicy = Literal["skip"]


@dataclass(frozen=True)
class TraderConfig:
    """What the trader trades and how, all from the caller (the application's settings declare the defaults)."""

    symbol: str
    strategy: str  # prefix of the client order ids
    dry_run: bool  # log decisions and intended orders, send nothing
    late_policy: LatePolicy  # what a run after the fill session's auction does: skip (send nothing)


@dataclass
class TraderState:
    peak_equity: float = 0.0
    last_session: str | None = None
    last_equity: float | None = None
    halted: bool = False
    halt_reason: str = ""
    pending: list[str] = field(default_factory=list)
    unreconciled: list[dict[str, Any]] = field(default_factory=list)  # FilledOrder dicts awaiting their bar

    @classmethod
    def load(cls, path: Path) -> TraderState:
        """The saved state; a missing file is a fresh start, an unreadable one a :class:`DataError`."""
        if not path.is_file():
            return cls()
        try:
            document = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"corrupt trader state {path}: {exc}") from exc
        return cls(**validate_file(TraderStateFile, document, path).model_dump(mode="json"))

    @classmethod
    def from_journal(cls, entries: list[dict[str, Any]]) -> TraderState:
        """The state as the journal records it: the file is a cache of the journal, never the only copy.

        The peak and the halt are those the last decision recorded (journals from before decisions
        recorded their peak: the highest equity seen), a ``risk_halt`` halts, and the pending orders
        are those submitted or unanswered without a final status since. Losing the file must never
        lift a halt or lower the peak; a person's reset in the file is kept, as the next decision records it.
        """
        state = cls()
        for entry in entries:
            event, equity = entry.get("event"), entry.get("equity")
            if event in ("decision", "risk_halt") and isinstance(equity, int | float):
                state.peak_equity = max(state.peak_equity, float(equity))
            if event == "decision" and isinstance(entry.get("peak_equity"), int | float):
                state.peak_equity = float(entry["peak_equity"])
            if event == "decision":
                state.last_session, state.last_equity = entry.get("session"), equity
                state.halted = bool(entry.get("halted"))
            elif event == "risk_halt":
                state.halted, state.halt_reason = True, str(entry.get("reason", ""))
            cid = str(entry.get("client_order_id"))
            if event in ("order_submitted", "order_unknown", "order_exists") and cid not in state.pending:
                state.pending.append(cid)
            elif event in ("order_final", "order_missing") and cid in state.pending:
                state.pending.remove(cid)
            filled = _filled_order(entry) if event == "order_final" else None
            if filled is not None and all(o["client_order_id"] != cid for o in state.unreconciled):
                state.unreconciled.append(filled.to_dict())
            elif event in ("fill_reconciled", "fill_unreconciled"):
                state.unreconciled = [o for o in state.unreconciled if o["client_order_id"] != cid]
        if not state.halted:
            state.halt_reason = ""
        return state

    def save(self, path: Path) -> None:
        atomic_write_json(path, asdict(self))


@dataclass(frozen=True)
class CycleResult:
    session: date
    outcome: str  # a key of finrl.trade.exit_codes._BY_OUTCOME (submitted, no_trade, late_skipped, ...)
    action: float | None = None  # the policy's action: an int, or a weight for continuous spaces
    target: float | None = None  # -1/0/+1 for discrete3, the target weight for the weight spaces
    order_qty: float = 0.0  # signed
    client_order_id: str | None = None
    detail: str = ""


def client_order_id(strategy: str, symbol: str, session: date) -> str:
    """Deterministic per (strategy, symbol, fill session): the same decision always maps to one order."""
    return f"{strategy}-{symbol}-{session:%Y%m%d}"


class DailyTrader:
    def __init__(
        self,
        *,
        bundle: AnyBundle,
        policy: Policy | None = None,
        broker: Broker,
        features_for: FeatureProvider,
        journal: Journal,
        state_path: Path,
        risk: RiskLimits,
        config: TraderConfig,
        metrics: TradingMetrics | None = None,
    ) -> None:
        """``policy`` acts for a single bundle (default: its NumPy policy); an ensemble needs none."""
        if policy is not None and isinstance(bundle, EnsembleBundle):  # it would be silently ignored
            raise ValueError("an ensemble decides through its members' replay: pass no policy")
        self.bundle, self.broker = bundle, broker
        self.policy = policy if policy is not None or isinstance(bundle, EnsembleBundle) else bundle.load_policy()
        self.features_for, self.journal, self.state_path = features_for, journal, Path(state_path)
        self.risk, self.config = risk, config
        self.metrics = metrics or TradingMetrics()
        self.execution = bundle.env_config.execution
        self.drift_reference = self._drift_reference()
        self.metrics.halted.set(int(self.state.halted))

    def _drift_reference(self) -> DriftReference | None:
        """The training distribution drift is measured against: an ensemble's first member's (see the module)."""
        single = self.bundle.members[0] if isinstance(self.bundle, EnsembleBundle) else self.bundle
        reference = single.drift_reference
        if reference is None:
            log.info("drift_not_measured", model=self.bundle.run_name,
                     reason="the bundle predates drift_reference.json: retrain to get drift metrics")  # fmt: skip
        return reference

    @property
    def state(self) -> TraderState:
        """The persisted state, or the journal's account of it when the file is missing or corrupt."""
        try:
            return TraderState.load(self.state_path) if self.state_path.is_file() else self._rebuilt_state()
        except DataError:
            return self._rebuilt_state()

    def load_state(self) -> TraderState:
        """The state for a cycle: a corrupt file is set aside (``.corrupt-<ts>``) and rebuilt, not fatal.

        The journal is the record, and the broker's account history backs it: the equity peak is
        the highest of the journal's and of the account's closing equity since this trader's first
        journaled session, so the peak (and with it the drawdown halt) survives a lost or damaged
        state file, even a truncated journal. One warning says so.
        """
        reason, aside = "missing", None
        if self.state_path.is_file():
            try:
                return TraderState.load(self.state_path)
            except DataError as exc:
                reason = str(exc)
                aside = self.state_path.with_name(f"{self.state_path.name}.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
                self.state_path.replace(aside)
        entries = self.journal.entries()
        state = TraderState.from_journal(entries)
        broker_peak = self._broker_peak(entries, damaged=aside is not None)
        if broker_peak is not None and broker_peak[1] > state.peak_equity:
            state.peak_equity = broker_peak[1]
        if aside is not None or state != TraderState():
            kept = aside.name if aside else None
            peak_day = str(broker_peak[0]) if broker_peak else None
            self.journal.record("state_rebuilt", reason=reason, kept_as=kept, broker_peak_day=peak_day,
                                **self._summary(state))  # fmt: skip
            log.warning("trader_state_rebuilt", reason=reason, kept_as=kept, source=str(self.journal.path),
                        broker_peak_day=peak_day, **self._summary(state))  # fmt: skip
        return state

    def _broker_peak(self, entries: list[dict[str, Any]], *, damaged: bool) -> tuple[date, float] | None:
        """The highest closing equity in the broker's account history since this trader's first
        journaled session (a year back when only a damaged state file shows that it traded before).
        None on a first start (no journal, no state file): the account's older history is not this
        strategy's, and counting it could halt a new trader at once."""
        sessions = [str(e["session"]) for e in entries if e.get("session")]
        if sessions:
            start = date.fromisoformat(min(sessions))
        elif damaged:
            start = self.broker.now().date() - timedelta(days=365)
        else:
            return None
        closed = last_final_session(self.broker.now(), timedelta(0))  # Alpaca adds today's intraday point
        history = [(day, equity) for day, equity in self.broker.equity_history(start) if closed and day <= closed]
        return max(history, key=lambda day_equity: day_equity[1]) if history else None

    @staticmethod
    def _summary(state: TraderState) -> dict[str, Any]:
        return {"peak_equity": state.peak_equity, "halted": state.halted, "last_session": state.last_session}

    def _rebuilt_state(self) -> TraderState:
        return TraderState.from_journal(self.journal.entries())

    def run_cycle(self, session: date, now: datetime | None = None) -> CycleResult:
        """Decide for ``session``; ``now`` (the broker's clock, live runs only) lets a late run skip.

        Replays pass no ``now``: their simulated fills are never late.
        """
        state = self.load_state()
        self.metrics.halted.set(int(state.halted))
        self._reconcile(state)
        features = self.features_for(session)
        self.bundle.check_features(features)
        if features.empty or features.index[-1].date() != session:
            last = f"{features.index[-1]:%Y-%m-%d}" if len(features) else "none"
            raise DataError(f"market data gap: the latest bar is {last}, the decision needs {session}")
        self._reconcile_fills(state, features)
        close = float(features["close"].iloc[-1])
        account = self.broker.account()
        position = self.broker.position(self.config.symbol)
        shares = position.qty if position else 0.0
        entry = position.avg_entry_price if position else math.nan

        state.peak_equity = max(state.peak_equity, account.equity)

        def policy_decision() -> tuple[float, float, float]:
            raw = self._policy_action(session, features, shares, account.cash, account.equity, close, entry)
            continuous = self.bundle.env_config.action_space == "continuous"
            action = float(np.asarray(raw, dtype=np.float64).reshape(-1)[0]) if continuous else int(raw)
            # the env's own mapping from action to order (sized at this close, banded for weights)
            return action, *decide(raw if continuous else action, account.cash, shares, close, self.bundle.env_config)

        # the backtest's rule too: halted -> flatten without asking the policy; a blocked order is not sent
        gated = apply_limits(
            self.risk, equity=account.equity, peak_equity=state.peak_equity, previous_equity=state.last_equity,
            halted=state.halted, shares=shares, price=close, decide=policy_decision,
        )  # fmt: skip
        action, target, delta = gated.action, gated.target, gated.order
        if gated.halts_now:
            state.halted, state.halt_reason = True, gated.verdict.reason
            self.journal.record("risk_halt", session=session, reason=gated.verdict.reason, equity=account.equity)
            log.error("risk_halt", reason=gated.verdict.reason, equity=account.equity)
            self.metrics.risk_blocks.labels(rule=rule_of(gated.verdict.reason)).inc()
        drift = self._drift(session, features, action, target)
        self.journal.record(
            "decision", session=session, model=self.bundle.run_name, action=action, target=target, shares=shares,
            order_qty=delta, equity=account.equity, cash=account.cash, close=close, halted=state.halted,
            peak_equity=state.peak_equity,
            drift=drift.to_journal() if drift else None,
        )  # fmt: skip
        log.info("decision", session=str(session), action=action, target=target, order_qty=delta, equity=account.equity)
        self.metrics.halted.set(int(state.halted))
        self.metrics.last_decision.set_to_current_time()
        self.metrics.nav.set(account.equity)
        self.metrics.position.set(shares)

        result = self._act(session, state, gated.blocked, account, shares, delta, close, action, target, now)
        state.last_session, state.last_equity = session.isoformat(), account.equity
        state.save(self.state_path)
        self.metrics.cycles.labels(outcome=result.outcome).inc()
        return result

    # ------------------------------------------------------------------ steps

    def _drift(self, session: date, features: pd.DataFrame, action: float | None, target: float) -> DriftReading | None:
        """This decision's drift against the bundle's training distribution, exported; None without a reference."""
        reference = self.drift_reference
        if reference is None:
            return None
        columns = {name: features[name].to_numpy()[-WINDOW:] for name in reference.features}
        actions = None
        if not isinstance(self.bundle, EnsembleBundle):  # an ensemble's weights have no training mix (see the module)
            current = {"action": action, "target": target}
            actions = model_actions(
                self.journal.entries(), self.bundle.run_name, reference.action_space, session.isoformat(), current
            )
        reading = measure(reference, columns, actions)
        for name, value in reading.features.items():
            self.metrics.feature_psi.labels(feature=name).set(value)
        if reading.action is not None:
            self.metrics.action_psi.labels(action_space=reference.action_space).set(reading.action)
        return reading

    def _policy_action(
        self,
        session: date,
        features: pd.DataFrame,
        shares: float,
        cash: float,
        equity: float,
        close: float,
        entry: float,
    ) -> Any:
        """The policy's action for this account; an ensemble's is its target weight (no observation)."""
        if isinstance(self.bundle, EnsembleBundle):
            decisions = self.bundle.decide_after(features, self.execution)
            members = dict(zip(decisions.members, decisions.weights[-1].tolist(), strict=True))
            self.journal.record("ensemble_decision", session=session, anchor=self.bundle.anchor, members=members)
            return float(decisions.targets[-1])
        assert self.policy is not None  # set in __init__ for a single bundle
        return self.policy(self.observation(features, shares, cash, equity, close, entry))

    def observation(
        self, features: pd.DataFrame, shares: float, cash: float, equity: float, close: float, entry: float
    ) -> np.ndarray:
        if isinstance(self.bundle, EnsembleBundle):
            raise TypeError(f"{self.bundle.run_name} is an ensemble: each member observes its own book")
        row = self.bundle.normalizer.transform(features.iloc[[-1]])[0]
        portfolio = observed_portfolio(self.bundle.env_config, shares, cash, equity, close, entry)
        return np.concatenate([row, np.asarray(portfolio, dtype=np.float32)])

    def _act(
        self,
        session: date,
        state: TraderState,
        blocked: str | None,  # the rule the order breaks (apply_limits)
        account: AccountState,
        shares: float,
        delta: float,
        close: float,
        action: float | None,
        target: float,
        now: datetime | None,
    ) -> CycleResult:
        outcome = "halted" if state.halted and not delta else "no_trade"
        base = CycleResult(session=session, outcome=outcome, action=action, target=target, order_qty=delta)
        if not delta:
            return base
        if blocked:
            rule = rule_of(blocked)
            self.journal.record("risk_blocked", session=session, rule=rule, detail=blocked, order_qty=delta)
            log.warning("risk_blocked", rule=rule, detail=blocked)
            self.metrics.risk_blocks.labels(rule=rule).inc()
            return replace(base, outcome="risk_blocked", detail=blocked)

        fill = self._next_session(session)
        fill_session = fill.day
        cid = client_order_id(self.config.strategy, self.config.symbol, fill_session)
        side = "buy" if delta > 0 else "sell"
        existing = self.broker.order_by_client_id(cid)
        if existing is not None:  # a previous run got this far: never send it twice
            self.journal.record("order_exists", session=session, client_order_id=cid, status=existing.status)
            log.info("order_exists", client_order_id=cid, status=existing.status)
            self._track(state, existing)
            return replace(base, outcome="exists", client_order_id=cid)
        deadline = self._auction_deadline(fill)
        if now is not None and now >= deadline:  # late_policy "skip": the broker would refuse it (422)
            why = f"the {fill_session} auction took orders until {et(deadline)}; it is {et(now)}"
            self.journal.record("late_skip", session=session, fill_session=fill_session, client_order_id=cid,
                                order_qty=delta, why=why)  # fmt: skip
            log.warning("late_skip", session=str(session), why=why, note="no order sent; next close decides normally")
            self.metrics.late_skips.inc()
            return replace(base, outcome="late_skipped", client_order_id=cid, detail=why)
        if account.trading_blocked:
            self.journal.record("order_rejected", session=session, client_order_id=cid, error="trading blocked")
            log.error("trading_blocked", client_order_id=cid, note="the broker has blocked trading on this account")
            return replace(base, outcome="rejected", client_order_id=cid, detail="account trading blocked")
        if self.config.dry_run:
            self.journal.record("intended_order", session=session, client_order_id=cid, side=side, qty=abs(delta))
            log.info("intended_order", client_order_id=cid, side=side, qty=abs(delta), dry_run=True)
            return replace(base, outcome="dry_run", client_order_id=cid)
        try:
            order = self.broker.submit_market_order(self.config.symbol, abs(delta), side, cid, self._time_in_force())
        except BrokerUnavailableError as exc:
            # the order may exist at the broker after all: reconcile it by its id on the next cycle
            state.pending.append(cid)
            self.journal.record("order_unknown", session=session, client_order_id=cid, error=str(exc))
            log.error("order_unknown", client_order_id=cid, error=str(exc), note="reconciled next cycle")
            self.metrics.errors.labels(kind=type(exc).__name__).inc()
            return replace(base, outcome="unavailable", client_order_id=cid, detail=str(exc))
        except BrokerError as exc:
            self.journal.record("order_rejected", session=session, client_order_id=cid, error=str(exc))
            log.error("order_rejected", client_order_id=cid, error=str(exc))
            self.metrics.orders.labels(side=side, status="rejected").inc()
            self.metrics.errors.labels(kind=type(exc).__name__).inc()
            if isinstance(exc, BrokerAuthError):
                raise  # bad keys: nothing later can work either
            return replace(base, outcome="rejected", client_order_id=cid, detail=str(exc))
        self.journal.record(
            "order_submitted", session=session, fill_session=fill_session, client_order_id=cid,
            order_id=order.id, side=side, qty=order.qty, time_in_force=order.time_in_force, status=order.status,
        )  # fmt: skip
        log.info("order_submitted", client_order_id=cid, side=side, qty=order.qty, fill_session=str(fill_session))
        self.metrics.orders.labels(side=side, status="submitted").inc()
        self._track(state, order)
        return replace(base, outcome="submitted", client_order_id=cid)

    def _reconcile(self, state: TraderState) -> None:
        """Record the final status of orders from earlier cycles (filled, expired, rejected...)."""
        still_open = []
        for cid in state.pending:
            order = self.broker.order_by_client_id(cid)
            if order is None:
                self.journal.record("order_missing", client_order_id=cid)
                log.warning("order_missing", client_order_id=cid)
                continue
            if not order.done:
                still_open.append(cid)
                continue
            entry = self.journal.record(
                "order_final", client_order_id=cid, status=order.status, filled_qty=order.filled_qty,
                filled_avg_price=order.filled_avg_price, side=order.side, qty=order.qty,
            )  # fmt: skip
            event = "order_filled" if order.status == "filled" else f"order_{order.status}"
            log.info(event, client_order_id=cid, filled_qty=order.filled_qty, price=order.filled_avg_price)
            self.metrics.orders.labels(side=order.side, status=order.status).inc()
            filled = _filled_order(entry)
            if filled is not None and all(o["client_order_id"] != cid for o in state.unreconciled):
                state.unreconciled.append(filled.to_dict())
        state.pending = still_open

    def _reconcile_fills(self, state: TraderState, features: pd.DataFrame) -> None:
        """Compare each new fill with the fill the backtest would have had, once its session's bar is known."""
        waiting = []
        for data in state.unreconciled:
            order = FilledOrder.from_dict(data)
            found = reconcile(order, features, self.execution)
            if found is not None:
                self.journal.record("fill_reconciled", **found.to_journal())
                log.info("fill_reconciled", client_order_id=order.client_order_id,
                         slippage_bps=round(found.slippage_bps, 2), broker_price=found.broker_price,
                         model_price=found.model_price)  # fmt: skip
                self.metrics.fill_slippage.labels(side=order.side).observe(found.slippage_bps)
                self.metrics.last_fill_slippage.labels(side=order.side).set(found.slippage_bps)
            elif bar_pending(order, features):
                waiting.append(data)  # the fill session's bar comes with a later cycle
            else:
                why = f"the market data has no bar for {order.fill_session} or the session before it"
                self.journal.record("fill_unreconciled", client_order_id=order.client_order_id, reason=why)
                log.warning("fill_unreconciled", client_order_id=order.client_order_id, reason=why)
        state.unreconciled = waiting

    def _track(self, state: TraderState, order: OrderState) -> None:
        if not order.done and order.client_order_id not in state.pending:
            state.pending.append(order.client_order_id)

    def _next_session(self, session: date) -> SessionTimes:
        upcoming = self.broker.sessions(session + timedelta(days=1), session + timedelta(days=10))
        if not upcoming:
            raise DataError(f"no trading session in the 10 days after {session}")
        return upcoming[0]

    def _auction_deadline(self, fill: SessionTimes) -> datetime:
        """The last moment the order still gets the fill the backtest assumes (Alpaca's cut-offs:
        opg until 09:28 ET, cls until 15:50 ET; a fractional day order only fills at the open if sent before it).
        """
        tif = self._time_in_force()
        if tif == "cls":
            return fill.close - timedelta(minutes=10)
        return fill.open - timedelta(minutes=2) if tif == "opg" else fill.open

    def _time_in_force(self) -> str:
        if self.execution.fill_at == "next_close":
            return "cls"  # market-on-close
        return "day" if self.execution.fractional_shares else "opg"  # Alpaca: fractional orders are day-only


def _filled_order(entry: dict[str, Any]) -> FilledOrder | None:
    """The fill an ``order_final`` journal entry records, to reconcile: filled, or partly filled before it expired
    or was canceled; None when nothing filled or the order is not one of the trader's (no fill session in its id)."""
    cid, price, qty = str(entry.get("client_order_id")), entry.get("filled_avg_price"), entry.get("filled_qty")
    fill_session = fill_session_of(cid)
    if fill_session is None or not isinstance(price, int | float) or not isinstance(qty, int | float) or qty <= 0:
        return None
    return FilledOrder(cid, fill_session.isoformat(), str(entry.get("side")), float(qty), float(price))


def describe(result: CycleResult) -> dict[str, Any]:
    data = asdict(result)
    data["session"] = result.session.isoformat()
    return data
