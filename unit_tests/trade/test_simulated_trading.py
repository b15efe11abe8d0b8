"""Paper trading with the simulated broker: parity with the backtest, idempotency, risk, timing."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrl.agents.bundle import ModelBundle, load_bundle
from finrl.backtest.engine import run_backtest
from finrl.errors import DataError
from finrl.meta.data.market_data import load_market_data
from finrl.meta.env.execution import Action
from finrl.meta.env.rollout import Policy, sb3_policy, scheduled_policy
from finrl.meta.features import build_features
from finrl.trade.journal import Journal
from finrl.trade.risk import RiskLimits
from finrl.trade.service import PaperTradingService
from finrl.trade.simulated import SimulatedBroker
from finrl.trade.trader import DailyTrader, TraderState
from unit_tests.conftest import (
    data_request,
    decision_delay,
    default_settings,
    feature_spec,
    risk_limits,
    trader_config,
)

pytestmark = pytest.mark.integration
NO_LIMITS = risk_limits(max_drawdown=1.0, max_daily_loss=1.0, max_position_fraction=4.0)


@cache
def sample() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    import tempfile

    market = load_market_data(data_request(source="sample"), Path(tempfile.mkdtemp()))
    return market.bars, build_features(market.bars, feature_spec()), market.describe()


@pytest.fixture(scope="module")
def bundle(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    """A copy of the session's tiny bundle r1, trained by ``spy-rl train`` on this same offline sample."""
    copy = tmp_path_factory.mktemp("paper-models") / "r1"
    shutil.copytree(sample_bundles["r1"], copy)
    loaded = load_bundle(copy, copy.parent)
    assert loaded.manifest.data_fingerprint == sample()[2]["fingerprint"]  # trained on the bars replayed here
    loaded.check_features(sample()[1])
    return loaded


def make_trader(
    bundle: ModelBundle, tmp_path: Path, policy: Policy, *, risk: RiskLimits = NO_LIMITS, dry_run: bool = False
) -> tuple[DailyTrader, SimulatedBroker]:
    bars, features, _ = sample()
    broker = SimulatedBroker(
        tmp_path / "account.json", bars, bundle.env_config.execution, bundle.env_config.initial_cash
    )
    trader = DailyTrader(
        bundle=bundle, policy=policy, broker=broker, features_for=lambda day: features.loc[: pd.Timestamp(day)],
        journal=Journal(tmp_path / "journal.jsonl"), state_path=tmp_path / "state.json", risk=risk,
        config=trader_config(dry_run=dry_run),
    )  # fmt: skip
    return trader, broker


def replay(trader: DailyTrader, broker: SimulatedBroker, days: pd.DatetimeIndex) -> pd.DataFrame:
    rows = []
    for day in days:
        broker.advance_to(day.date())
        account, position = broker.account(), broker.position("SPY")
        rows.append(
            {"date": day, "shares": position.qty if position else 0.0, "cash": account.cash, "nav": account.equity}
        )
        trader.run_cycle(day.date())
    return pd.DataFrame(rows).set_index("date")


@pytest.mark.slow
@pytest.mark.parametrize("policy_kind", ["busy", "agent"])
def test_paper_loop_reproduces_the_backtest_exactly(bundle: ModelBundle, tmp_path: Path, policy_kind: str) -> None:
    """Day by day through the simulated broker = spy-rl backtest on the same window, to the cent and share."""
    _, features, _ = sample()
    window = bundle.split.test
    assert window is not None
    days = window.slice(features).index
    actions = np.random.default_rng(3).choice([Action.SELL, Action.HOLD, Action.BUY], size=len(days))

    def policy() -> Policy:
        return scheduled_policy(actions) if policy_kind == "busy" else sb3_policy(bundle.load_model())

    backtest = run_backtest(bundle, features, window, default_settings().risk_free_rate).ledgers["agent"].frame
    if policy_kind == "busy":  # the backtest's agent column must replay the same scripted actions
        from finrl.meta.env.market_arrays import MarketArrays
        from finrl.meta.env.rollout import run_policy

        # run_backtest's market: the impact inputs of the first days come from the days before the window
        market = MarketArrays.from_features(window.slice(features), bundle.normalizer, history=features)
        backtest = run_policy(market, bundle.env_config, policy()).frame
    trader, broker = make_trader(bundle, tmp_path, policy())
    paper = replay(trader, broker, days)
    trades = int(backtest["fill_price"].notna().sum())
    assert trades >= (20 if policy_kind == "busy" else 1)
    np.testing.assert_array_equal(paper["shares"].to_numpy(), backtest["shares"].to_numpy())
    np.testing.assert_allclose(paper["nav"].to_numpy(), backtest["nav"].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(paper["cash"].to_numpy(), backtest["cash"].to_numpy(), rtol=0, atol=1e-9)


def always(action: int) -> Policy:
    return lambda _: int(action)


def invest_fully(bundle: ModelBundle) -> int:
    """The action asking for the largest long position in the bundle's action space."""
    config = bundle.env_config
    return Action.BUY if config.action_space == "discrete3" else config.weight_levels.index(max(config.weight_levels))


def session_days(n: int, start: str = "2018-06-01") -> list[date]:
    _, features, _ = sample()
    return [d.date() for d in features.loc[start:].index[:n]]


def test_restart_never_duplicates_an_order(
    bundle: ModelBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trader, broker = make_trader(bundle, tmp_path, always(Action.BUY))
    (day,) = session_days(1)
    broker.advance_to(day)
    real_save = TraderState.save
    monkeypatch.setattr(TraderState, "save", lambda *_: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError, match="killed"):  # the crash: submitted, state never written
        trader.run_cycle(day)
    monkeypatch.setattr(TraderState, "save", real_save)
    again = trader.run_cycle(day)
    assert again.outcome == "exists"
    assert len(json.loads((tmp_path / "account.json").read_text())["orders"]) == 1
    events = [e["event"] for e in Journal(tmp_path / "journal.jsonl").entries()]
    assert events.count("order_submitted") == 1 and "order_exists" in events


def test_fills_are_reconciled_on_the_next_cycle(bundle: ModelBundle, tmp_path: Path) -> None:
    trader, broker = make_trader(bundle, tmp_path, always(Action.BUY))
    first, second = session_days(2)
    broker.advance_to(first)
    assert trader.run_cycle(first).outcome == "submitted"
    assert trader.state.pending
    broker.advance_to(second)
    assert trader.run_cycle(second).outcome == "no_trade"  # already long
    assert trader.state.pending == []
    final = [e for e in Journal(tmp_path / "journal.jsonl").entries() if e["event"] == "order_final"]
    assert final and final[0]["status"] == "filled" and final[0]["filled_qty"] > 0


def test_dry_run_sends_nothing(bundle: ModelBundle, tmp_path: Path) -> None:
    trader, broker = make_trader(bundle, tmp_path, always(Action.BUY), dry_run=True)
    (day,) = session_days(1)
    broker.advance_to(day)
    result = trader.run_cycle(day)
    assert result.outcome == "dry_run" and result.order_qty > 0
    assert json.loads((tmp_path / "account.json").read_text())["orders"] == {}
    assert any(e["event"] == "intended_order" for e in Journal(tmp_path / "journal.jsonl").entries())


def test_drawdown_breach_flattens_and_stops(bundle: ModelBundle, tmp_path: Path) -> None:
    trader, broker = make_trader(bundle, tmp_path, always(Action.BUY), risk=risk_limits(max_drawdown=0.02))
    days = session_days(120, start="2018-09-20")  # the 2018 Q4 sell-off
    outcomes = []
    for day in days:
        broker.advance_to(day)
        outcomes.append(trader.run_cycle(day).outcome)
    assert "halted" in outcomes
    state = trader.state
    assert state.halted and state.halt_reason.startswith("max_drawdown")
    assert broker.position("SPY") is None  # flattened, and it stayed flat
    assert outcomes[-1] == "halted"
    events = [e["event"] for e in Journal(tmp_path / "journal.jsonl").entries()]
    assert events.count("risk_halt") == 1


def test_position_and_order_limits_block_entries(bundle: ModelBundle, tmp_path: Path) -> None:
    (day,) = session_days(1)
    trader, broker = make_trader(
        bundle, tmp_path / "a", always(invest_fully(bundle)), risk=risk_limits(max_position_fraction=0.5)
    )
    broker.advance_to(day)
    result = trader.run_cycle(day)
    assert result.outcome == "risk_blocked" and result.detail.startswith("max_position_fraction")
    trader, broker = make_trader(
        bundle, tmp_path / "b", always(invest_fully(bundle)), risk=risk_limits(max_order_notional=1000)
    )
    broker.advance_to(day)
    assert trader.run_cycle(day).detail.startswith("max_order_notional")
    assert json.loads((tmp_path / "b" / "account.json").read_text())["orders"] == {}


def test_a_stale_bar_is_a_data_gap(bundle: ModelBundle, tmp_path: Path) -> None:
    trader, broker = make_trader(bundle, tmp_path, always(Action.BUY))
    first, second = session_days(2)
    broker.advance_to(first)
    _, features, _ = sample()
    trader.features_for = lambda _: features.loc[: pd.Timestamp(first)]
    with pytest.raises(DataError, match=f"the latest bar is {first}, the decision needs {second}"):
        trader.run_cycle(second)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2024-11-29T18:10:00", date(2024, 11, 27)),  # half day: closes 13:00 ET = 18:00 UTC, +15 min not yet
        ("2024-11-29T18:20:00", date(2024, 11, 29)),
        ("2024-12-25T15:00:00", date(2024, 12, 24)),  # Christmas: no session
        ("2024-12-02T20:00:00", date(2024, 11, 29)),  # Monday before its close
        ("2024-12-02T21:16:00", date(2024, 12, 2)),
    ],
)
def test_decision_waits_for_the_real_close(bundle: ModelBundle, tmp_path: Path, now: str, expected: date) -> None:
    trader, broker = make_trader(bundle, tmp_path, always(Action.HOLD))
    service = PaperTradingService(
        trader, broker, health_path=tmp_path / "health.json", decision_delay=timedelta(minutes=15)
    )  # the expected sessions above are for a 15-minute delay
    assert service.latest_session(datetime.fromisoformat(now).replace(tzinfo=UTC)) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2024-12-02T23:30:00", date(2024, 11, 29)),  # 18:30 ET: Alpaca still refuses opg orders
        ("2024-12-03T00:10:00", date(2024, 12, 2)),  # 19:10 ET
        ("2024-11-30T00:10:00", date(2024, 11, 29)),  # half day: still 19:05 ET at the earliest
    ],
)
def test_alpaca_decisions_wait_for_the_opg_window(
    bundle: ModelBundle, tmp_path: Path, now: str, expected: date
) -> None:
    from finrl.trade.service import ALPACA_EARLIEST_DECISION

    trader, broker = make_trader(bundle, tmp_path, always(Action.HOLD))
    service = PaperTradingService(
        trader,
        broker,
        health_path=tmp_path / "health.json",
        decision_delay=decision_delay(),
        not_before=ALPACA_EARLIEST_DECISION,
    )
    assert service.latest_session(datetime.fromisoformat(now).replace(tzinfo=UTC)) == expected


def test_an_unanswered_submit_is_reconciled_later(bundle: ModelBundle, tmp_path: Path) -> None:
    from finrl.trade.broker import BrokerUnavailableError

    trader, broker = make_trader(bundle, tmp_path, always(Action.BUY))
    first, second = session_days(2)
    broker.advance_to(first)
    real_submit = broker.submit_market_order

    def submit_then_lose_the_answer(*args: object, **kwargs: object) -> object:
        real_submit(*args, **kwargs)  # the broker got it, the answer never arrived
        raise BrokerUnavailableError("timed out")

    broker.submit_market_order = submit_then_lose_the_answer  # type: ignore[method-assign]
    result = trader.run_cycle(first)
    assert result.outcome == "unavailable" and trader.state.pending == [result.client_order_id]
    broker.advance_to(second)
    assert trader.run_cycle(second).outcome == "no_trade"  # the fill arrived: long already
    final = [e for e in Journal(tmp_path / "journal.jsonl").entries() if e["event"] == "order_final"]
    assert final and final[0]["client_order_id"] == result.client_order_id and final[0]["status"] == "filled"


def test_blocked_account_sends_nothing(bundle: ModelBundle, tmp_path: Path) -> None:
    from dataclasses import replace

    trader, broker = make_trader(bundle, tmp_path, always(Action.BUY))
    (day,) = session_days(1)
    broker.advance_to(day)
    real_account = broker.account
    broker.account = lambda: replace(real_account(), trading_blocked=True)  # type: ignore[method-assign]
    result = trader.run_cycle(day)
    assert result.outcome == "rejected" and "blocked" in result.detail
    assert json.loads((tmp_path / "account.json").read_text())["orders"] == {}


@pytest.mark.slow
@pytest.mark.parametrize("space", ["target_weight", "continuous"])
def test_paper_loop_reproduces_the_backtest_in_weight_spaces(bundle: ModelBundle, tmp_path: Path, space: str) -> None:
    """The trader turns a weight action into the env's order (actions.decide): same shares, cash, NAV and
    observations as the backtest's replay, partial adds and the no-trade band included."""
    from dataclasses import replace

    from finrl.meta.env.market_arrays import MarketArrays
    from finrl.meta.env.rollout import run_policy

    config = replace(bundle.env_config, action_space=space, rebalance_band=0.03, weight_levels=(0.0, 0.3, 0.6, 1.0))
    weighted = ModelBundle(bundle.path, bundle.manifest.model_copy(update={"env_config": config}))
    _, features, _ = sample()
    window = bundle.split.test
    assert window is not None
    days = window.slice(features).index
    rng = np.random.default_rng(5)
    if space == "target_weight":
        actions: list[object] = list(rng.integers(0, 4, size=len(days)))
    else:  # slow drifts (inside the band) and jumps, some outside [0, 1]
        actions = list(np.clip(np.cumsum(rng.normal(0, 0.08, len(days))) + 0.5, -0.2, 1.2).astype(np.float32))

    def policy(seen: list[np.ndarray]) -> Policy:
        days_left = iter(actions)

        def act(obs: np.ndarray) -> object:
            seen.append(obs.copy())
            return next(days_left)

        return act

    market = MarketArrays.from_features(window.slice(features), bundle.normalizer, history=features)  # as run_backtest
    backtest_obs: list[np.ndarray] = []
    backtest = run_policy(market, config, policy(backtest_obs)).frame
    paper_obs: list[np.ndarray] = []
    trader, broker = make_trader(weighted, tmp_path, policy(paper_obs))
    paper = replay(trader, broker, days)
    fills = backtest["fill_price"].notna()
    assert int(fills.sum()) >= 10 and int(fills.sum()) < len(days) - 10  # trades, and the band skips some days
    np.testing.assert_array_equal(paper["shares"].to_numpy(), backtest["shares"].to_numpy())
    np.testing.assert_allclose(paper["nav"].to_numpy(), backtest["nav"].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(paper["cash"].to_numpy(), backtest["cash"].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.stack(paper_obs[: len(backtest_obs)]), np.stack(backtest_obs), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- parity with the risk limits on

BINDING_LIMITS = {  # tight enough to bind on the test window (2018-04..12: the Q4 sell-off)
    "max_drawdown": risk_limits(max_drawdown=0.04),
    "max_daily_loss": risk_limits(max_daily_loss=0.004),
    "max_order_notional": risk_limits(max_order_notional=45_000),
    "all": risk_limits(max_drawdown=0.06, max_daily_loss=0.005, max_order_notional=70_000),
}


def in_space(bundle: ModelBundle, space: str) -> ModelBundle:
    from dataclasses import replace

    config = replace(bundle.env_config, action_space=space, rebalance_band=0.03, weight_levels=(0.0, 0.3, 0.6, 1.0))
    return ModelBundle(bundle.path, bundle.manifest.model_copy(update={"env_config": config}))


def scripted(space: str, n: int, seed: int) -> list[object]:
    """A busy policy's actions, leaning long so that the limits meet positions."""
    rng = np.random.default_rng(seed)
    if space == "discrete3":
        return list(rng.choice([Action.SELL, Action.HOLD, Action.BUY], p=[0.25, 0.35, 0.4], size=n))
    if space == "target_weight":
        return list(rng.choice(4, p=[0.2, 0.2, 0.3, 0.3], size=n))
    return list(np.clip(np.cumsum(rng.normal(0, 0.15, n)) + 0.6, -0.2, 1.2).astype(np.float32))


def playing(actions: list[object]) -> Policy:
    days = iter(actions)
    return lambda _: next(days)


def journal_risk_events(path: Path, before: date) -> list[tuple[str, str, str, str]]:
    """The paper trader's halts and blocked orders, as the backtest reports them (decisions before ``before``)."""
    from finrl.trade.risk import rule_of

    events = []
    for e in Journal(path).entries():
        if e["event"] == "risk_halt":
            events.append((e["session"], "risk_halt", rule_of(e["reason"]), e["reason"]))
        elif e["event"] == "risk_blocked":
            events.append((e["session"], "risk_blocked", e["rule"], e["detail"]))
    return [event for event in events if date.fromisoformat(event[0]) < before]


@pytest.mark.slow
@pytest.mark.parametrize("space", ["discrete3", "target_weight", "continuous"])
@pytest.mark.parametrize("limit", list(BINDING_LIMITS))
def test_paper_loop_reproduces_the_backtest_with_risk_limits_on(
    bundle: ModelBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, space: str, limit: str
) -> None:
    """Limits that bind (halts, blocked orders) act the same in spy-rl backtest and in the paper loop:
    the same actions, shares, cash and NAV day by day, and the same risk events, word for word."""
    limits = BINDING_LIMITS[limit]
    spaced = in_space(bundle, space)
    _, features, _ = sample()
    window = bundle.split.test
    assert window is not None
    days = window.slice(features).index
    actions = scripted(space, len(days), seed=11)
    monkeypatch.setattr(ModelBundle, "load_policy", lambda _: playing(actions))  # the backtest's agent plays them
    rf = default_settings().risk_free_rate
    result = run_backtest(spaced, features, window, rf, risk_limits=limits)
    backtest = result.ledgers["agent"].frame
    trader, broker = make_trader(spaced, tmp_path, playing(actions), risk=limits)
    paper = replay(trader, broker, days)

    np.testing.assert_array_equal(paper["shares"].to_numpy(), backtest["shares"].to_numpy())
    np.testing.assert_allclose(paper["nav"].to_numpy(), backtest["nav"].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(paper["cash"].to_numpy(), backtest["cash"].to_numpy(), rtol=0, atol=1e-9)
    decisions = [e for e in Journal(tmp_path / "journal.jsonl").entries() if e["event"] == "decision"]
    key = "action" if space == "discrete3" else "target"  # the ledger's action: the decided weight in weight spaces
    decided = [np.nan if e["action"] is None else e[key] for e in decisions]
    np.testing.assert_array_equal(np.asarray(decided[:-1], float), backtest["action"].to_numpy()[:-1])
    events = [(e.date, e.event, e.rule, e.detail) for e in result.risk_events]
    assert events == journal_risk_events(tmp_path / "journal.jsonl", before=days[-1].date())
    rules = {rule for _, _, rule, _ in events}
    assert events and (limit == "all" or rules == {limit}), events  # the limit did bind
    risk = result.meta()["risk"]  # the report's counts, against the journal's own events
    journaled = [e["event"] for e in Journal(tmp_path / "journal.jsonl").entries()]
    assert (risk["halts"], risk["blocked_orders"]) == (journaled.count("risk_halt"), journaled.count("risk_blocked"))
    unconstrained = run_backtest(spaced, features, window, rf).ledgers["agent"].nav
    assert not np.allclose(unconstrained.to_numpy(), paper["nav"].to_numpy()), "the limits changed nothing"
