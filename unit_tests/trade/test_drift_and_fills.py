"""Drift and fill reconciliation in the paper trader: every decision measures each feature's PSI over the
trailing year (and the recent decisions' action mix) against the bundle's training reference, exports it
and journals it; every broker fill is compared with the fill the backtest would have had (exactly 0 bps with
the simulated broker), on a later cycle when its bar is not there yet; finrl_halted follows the halt."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from finrl.agents.bundle import DRIFT_FILE, MANIFEST_FILE, Binned, ModelBundle, load_bundle
from finrl.meta.env.execution import Action
from finrl.trade import trader as trader_module
from finrl.trade.drift import EPSILON, MIN_SAMPLES, WINDOW, action_value, binned_psi, measure, model_actions, psi
from finrl.trade.fill_reconciliation import fill_session_of, slippage_bps
from finrl.trade.journal import Journal
from finrl.trade.trader import DailyTrader, TraderState
from unit_tests.conftest import risk_limits
from unit_tests.trade.test_simulated_trading import always, bundle, invest_fully, make_trader, sample, session_days

__all__ = ["bundle"]  # the module fixture, shared with the simulated-trading tests


def entries(root: Path, event: str) -> list[dict[str, Any]]:
    return [e for e in Journal(root / "journal.jsonl").entries() if e["event"] == event]


def sample_value(trader: DailyTrader, name: str, **labels: str) -> float | None:
    value: float | None = trader.metrics.registry.get_sample_value(name, labels)
    return value


def flatten(bundle: ModelBundle) -> int:
    config = bundle.env_config
    return Action.SELL if config.action_space == "discrete3" else config.weight_levels.index(0.0)


# ---------------------------------------------------------------- the arithmetic


@pytest.mark.unit
def test_psi_is_zero_for_the_same_mix_and_grows_with_the_shift() -> None:
    assert psi([0.25] * 4, [0.25] * 4) == 0.0
    # by hand: (0.4-0.25) ln(0.4/0.25) + (0.1-0.25) ln(0.1/0.25) twice each
    expected = 2 * (0.15 * np.log(0.4 / 0.25) + -0.15 * np.log(0.1 / 0.25))
    assert psi([0.25] * 4, [0.4, 0.1, 0.4, 0.1]) == pytest.approx(expected)
    # an empty bin counts at the epsilon floor: large and finite
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.5 * np.log(2) + (EPSILON - 0.5) * np.log(EPSILON / 0.5))
    with pytest.raises(ValueError, match="3 shares against 2"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


@pytest.mark.unit
def test_too_few_values_are_not_measured() -> None:
    reference = Binned((0.0,), (0.5, 0.5))
    assert binned_psi(reference, [1.0] * (MIN_SAMPLES - 1) + [np.nan]) is None
    assert binned_psi(reference, [-1.0, 1.0] * (MIN_SAMPLES // 2)) == 0.0


@pytest.mark.unit
def test_action_values_by_space() -> None:
    decision = {"action": 2, "target": 1}
    assert action_value("discrete3", decision) == 2.0  # the action: sell/hold/buy
    assert action_value("target_weight", {"action": 3, "target": 0.75}) == 0.75  # the decided weight
    assert action_value("continuous", {"action": 1.7, "target": 1.0}) == 1.0  # clipped
    assert action_value("discrete3", {"action": None, "target": 0}) is None  # halted: no decision of the policy


@pytest.mark.unit
def test_the_action_window_holds_this_models_decisions_only() -> None:
    journal = [
        {"event": "decision", "session": "2024-01-02", "action": 0, "target": -1},  # an older journal: unknown model
        {"event": "decision", "session": "2024-01-03", "model": "old", "action": 3, "target": 0.75},
        {"event": "decision", "session": "2024-01-04", "model": "new", "action": 2, "target": 1},
        {"event": "risk_halt", "session": "2024-01-05", "model": "new", "action": 0},
        {"event": "decision", "session": "2024-01-05", "model": "new", "action": 0, "target": -1},  # rerun below
        {"event": "decision", "session": "2024-01-05", "model": "old", "action": 1, "target": 0.3},
    ]
    current = {"action": 1, "target": 0}
    assert model_actions(journal, "new", "discrete3", "2024-01-05", current) == [2.0, 1.0]
    assert model_actions(journal, "old", "target_weight", "2024-01-08", {"action": 2, "target": 0.6}) == [
        0.75, 0.3, 0.6,
    ]  # fmt: skip
    assert model_actions([], "new", "discrete3", "2024-01-05", current) == [1.0]


@pytest.mark.unit
def test_slippage_is_positive_when_worse_for_the_account() -> None:
    assert slippage_bps("buy", 100.1, 100.0) == pytest.approx(10.0)
    assert slippage_bps("buy", 99.9, 100.0) == pytest.approx(-10.0)
    assert slippage_bps("sell", 99.95, 100.0) == pytest.approx(5.0)
    assert slippage_bps("sell", 100.05, 100.0) == pytest.approx(-5.0)
    assert str(fill_session_of("finrl-SPY-20241227")) == "2024-12-27" and fill_session_of("manual-1") is None


# ---------------------------------------------------------------- the simulated broker


def expected_feature_psi(bundle: ModelBundle, features: pd.DataFrame) -> dict[str, float]:
    """Each feature's PSI over the last WINDOW sessions, bins counted by hand (not through bin_shares)."""
    reference = bundle.drift_reference
    assert reference is not None
    out = {}
    for name, binned in reference.features.items():
        values = features[name].to_numpy()[-WINDOW:]
        bounds = [-np.inf, *binned.edges, np.inf]
        shares = [float(np.mean((values >= lo) & (values < hi))) for lo, hi in itertools.pairwise(bounds)]
        out[name] = psi(binned.shares, shares)
    return out


@pytest.mark.integration
def test_each_decision_exports_and_journals_the_drift(bundle: ModelBundle, tmp_path: Path) -> None:
    reference = bundle.drift_reference
    assert reference is not None  # spy-rl train writes it
    trader, broker = make_trader(bundle, tmp_path, always(invest_fully(bundle)))
    days = session_days(MIN_SAMPLES + 2)
    for day in days:
        broker.advance_to(day)
        trader.run_cycle(day)
    _, features, _ = sample()
    decisions = entries(tmp_path, "decision")
    last = decisions[-1]["drift"]
    expected = expected_feature_psi(bundle, features.loc[: pd.Timestamp(days[-1])])
    assert set(last["feature_psi"]) == set(bundle.normalizer.columns)
    for name, value in expected.items():
        assert last["feature_psi"][name] == pytest.approx(value, abs=1e-6), name
        assert sample_value(trader, "finrl_feature_psi", feature=name) == pytest.approx(value)
    assert last["sessions"] == WINDOW
    # the action mix: too few decisions until MIN_SAMPLES, then every decision asked for the largest position
    assert [d["drift"]["action_psi"] is None for d in decisions] == [True] * (MIN_SAMPLES - 1) + [False] * 3
    mix = np.zeros(len(reference.actions.shares))
    mix[-1] = 1.0
    assert last["decisions"] == MIN_SAMPLES + 2 and last["action_mix"][reference.actions.labels[-1]] == 1.0
    assert last["action_psi"] == pytest.approx(psi(reference.actions.shares, mix), abs=1e-6)
    space = reference.action_space
    assert sample_value(trader, "finrl_action_psi", action_space=space) == pytest.approx(last["action_psi"], abs=1e-6)
    assert sample_value(trader, "finrl_halted") == 0.0


@pytest.mark.integration
def test_another_models_decisions_leave_the_action_mix_alone(bundle: ModelBundle, tmp_path: Path) -> None:
    """A model switch in the same logs folder: the earlier model's decisions (another action space's
    targets) and an older journal's decisions (no model) are not scored against the new model's mix."""
    from dataclasses import replace

    config = replace(
        bundle.env_config,
        action_space="discrete3" if bundle.env_config.action_space != "discrete3" else "target_weight",  # another
        weight_levels=(0.0, 0.3, 0.6, 1.0),
    )
    other = ModelBundle(bundle.path, bundle.manifest.model_copy(update={"env_config": config, "run_name": "other"}))
    switched, alone = tmp_path / "switched", tmp_path / "alone"
    switched.mkdir()
    older = Journal(switched / "journal.jsonl")
    for day in session_days(MIN_SAMPLES, start="2017-06-01"):  # before decisions named their model
        older.record("decision", session=day, action=0, target=-1, shares=0.0, order_qty=0.0, halted=False)
    before, after = session_days(MIN_SAMPLES + 5, start="2018-01-02"), session_days(MIN_SAMPLES + 2)
    trader, broker = make_trader(other, switched, lambda _obs: 1)  # hold, or 0.3 of equity: every day
    for day in before:
        broker.advance_to(day)
        trader.run_cycle(day)
    readings = {}
    for folder in (switched, alone):
        trader, broker = make_trader(bundle, folder, always(invest_fully(bundle)))
        for day in after:
            broker.advance_to(day)
            trader.run_cycle(day)
        decisions = entries(folder, "decision")[-len(after) :]
        assert {d["model"] for d in decisions} == {bundle.run_name}
        readings[folder] = [d["drift"] for d in decisions]
    for mixed, clean in zip(readings[switched], readings[alone], strict=True):
        assert (mixed["decisions"], mixed["action_mix"]) == (clean["decisions"], clean["action_mix"])
        assert mixed["action_psi"] == clean["action_psi"]
    assert readings[switched][-1]["action_psi"] is not None and readings[switched][-1]["decisions"] == len(after)
    assert entries(switched, "decision")[MIN_SAMPLES]["model"] == "other"


@pytest.mark.integration
def test_simulated_fills_reconcile_at_exactly_zero_slippage(bundle: ModelBundle, tmp_path: Path) -> None:
    actions = [invest_fully(bundle), flatten(bundle)] * 3
    trader, broker = make_trader(bundle, tmp_path, lambda _obs: int(actions.pop(0)))
    for day in session_days(6):
        broker.advance_to(day)
        trader.run_cycle(day)
    finals = entries(tmp_path, "order_final")
    reconciled = entries(tmp_path, "fill_reconciled")
    assert len(finals) == len(reconciled) == 5  # the sixth order fills after the last day
    account = json.loads((tmp_path / "account.json").read_text())["orders"]
    for final, entry in zip(finals, reconciled, strict=True):
        order = account[entry["client_order_id"]]
        assert entry["client_order_id"] == final["client_order_id"] and entry["fill_session"] == order["filled_session"]
        assert (entry["side"], entry["qty"]) == (order["side"], order["qty"])
        assert entry["broker_price"] == entry["model_price"] == order["filled_avg_price"]
        assert entry["slippage_bps"] == 0.0 and str(entry["slippage_bps"]) == "0.0"
    assert [e["side"] for e in reconciled] == ["buy", "sell", "buy", "sell", "buy"]
    assert sample_value(trader, "finrl_fill_slippage_bps_count", side="buy") == 3
    assert sample_value(trader, "finrl_fill_slippage_bps_count", side="sell") == 2
    assert sample_value(trader, "finrl_fill_slippage_bps_bucket", side="sell", le="0.0") == 2  # all at 0 bps
    assert sample_value(trader, "finrl_last_fill_slippage_bps", side="buy") == 0.0
    assert trader.state.unreconciled == []


@pytest.mark.integration
def test_a_fill_without_its_bar_is_reconciled_on_a_later_cycle(bundle: ModelBundle, tmp_path: Path) -> None:
    trader, broker = make_trader(bundle, tmp_path, always(invest_fully(bundle)))
    first, second = session_days(2)
    broker.advance_to(first)
    assert trader.run_cycle(first).outcome == "submitted"
    broker.advance_to(second)  # the order fills at the second session's open
    assert trader.run_cycle(first).outcome == "no_trade"  # a rerun of the first session: its data ends before the fill
    assert entries(tmp_path, "order_final") and not entries(tmp_path, "fill_reconciled")
    (waiting,) = trader.state.unreconciled
    assert waiting["fill_session"] == second.isoformat()
    assert TraderState.from_journal(Journal(tmp_path / "journal.jsonl").entries()).unreconciled == [waiting]
    trader.run_cycle(second)
    (entry,) = entries(tmp_path, "fill_reconciled")
    assert entry["fill_session"] == second.isoformat() and entry["slippage_bps"] == 0.0
    assert trader.state.unreconciled == []
    assert TraderState.from_journal(Journal(tmp_path / "journal.jsonl").entries()).unreconciled == []


@pytest.mark.integration
def test_halted_gauge_follows_the_halt_and_is_set_at_start(bundle: ModelBundle, tmp_path: Path) -> None:
    limits = risk_limits(max_drawdown=0.02)
    trader, broker = make_trader(bundle, tmp_path, always(invest_fully(bundle)), risk=limits)
    broker.advance_to(session_days(1, start="2018-09-20")[0])
    trader.run_cycle(session_days(1, start="2018-09-20")[0])
    assert sample_value(trader, "finrl_halted") == 0.0
    for day in session_days(120, start="2018-09-21"):
        broker.advance_to(day)
        trader.run_cycle(day)
        if trader.state.halted:
            break
    assert trader.state.halted and sample_value(trader, "finrl_halted") == 1.0
    decision = entries(tmp_path, "decision")[-1]
    assert decision["action"] is None and decision["drift"]["feature_psi"]  # features drift even while halted
    restarted, _ = make_trader(bundle, tmp_path, always(invest_fully(bundle)), risk=limits)
    assert sample_value(restarted, "finrl_halted") == 1.0  # from the state, before any cycle


@pytest.mark.integration
def test_an_older_bundle_has_no_drift_metrics_and_says_so_once(
    bundle: ModelBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "models" / "old"
    shutil.copytree(bundle.path, old)
    manifest = json.loads((old / MANIFEST_FILE).read_text())
    del manifest["files"][DRIFT_FILE]
    (old / MANIFEST_FILE).write_text(json.dumps(manifest))
    (old / DRIFT_FILE).unlink()
    older = load_bundle(old, old.parent)
    said: list[str] = []
    monkeypatch.setattr(trader_module.log, "info", lambda event, **_: said.append(event))
    trader, broker = make_trader(older, tmp_path / "run", always(invest_fully(older)))  # a service start
    for day in session_days(3):
        broker.advance_to(day)
        trader.run_cycle(day)
    assert said.count("drift_not_measured") == 1
    assert all(d["drift"] is None for d in entries(tmp_path / "run", "decision"))
    exported = {s.name for m in trader.metrics.registry.collect() for s in m.samples}
    assert not exported & {"finrl_feature_psi", "finrl_action_psi"}
    assert len(entries(tmp_path / "run", "fill_reconciled")) == 1  # reconciliation needs no reference


@pytest.mark.unit
def test_measure_uses_the_trailing_window_only() -> None:
    from datetime import date

    from finrl.agents.bundle import DriftReference
    from finrl.meta.preprocessing import DateWindow

    reference = DriftReference(
        DateWindow(date(2020, 1, 1), date(2020, 12, 31)),
        {"x": Binned((0.0,), (0.5, 0.5))},
        Binned((0.5, 1.5), (0.2, 0.6, 0.2), ("sell", "hold", "buy")),
        "discrete3",
    )
    old_then_new = np.r_[np.full(500, 5.0), np.full(WINDOW // 4, -1.0), np.full(WINDOW - WINDOW // 4, 1.0)]
    reading = measure(reference, {"x": old_then_new}, [0.0] * 100 + [1.0] * WINDOW)
    assert reading.sessions == WINDOW and reading.decisions == WINDOW
    below = (WINDOW // 4) / WINDOW
    assert reading.features["x"] == pytest.approx(psi([0.5, 0.5], [below, 1 - below]))
    assert reading.action_mix == {"sell": 0.0, "hold": 1.0, "buy": 0.0}
    assert reading.action == pytest.approx(psi([0.2, 0.6, 0.2], [0.0, 1.0, 0.0]))
    assert measure(reference, {"x": old_then_new}, None).action is None  # an ensemble: not measured


@pytest.mark.integration
def test_an_ensemble_measures_its_features_against_its_first_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from finrl.agents.bundle import publish_bundle
    from finrl.agents.training import save_drift_reference
    from finrl.meta.env.market_arrays import MarketArrays
    from finrl.meta.env.spy_env import EnvConfig
    from finrl.meta.preprocessing import FeatureNormalizer
    from unit_tests.agents import test_ensemble_bundle as members
    from unit_tests.conftest import env_config
    from unit_tests.trade.test_ensemble_trading import ensemble_trader

    def publish_with_reference(staging: Path, models: Path, manifest: dict[str, Any]) -> ModelBundle:
        """The hand-written members, with the reference training would have written."""
        normalizer = FeatureNormalizer.from_dict(manifest["normalizer"])
        frame = members.train_window().slice(members.market()[1])
        market = MarketArrays.from_features(frame, normalizer)
        save_drift_reference(staging, frame, normalizer.columns, market, EnvConfig.from_dict(manifest["env_config"]))
        return publish_bundle(staging, models, manifest)

    monkeypatch.setattr(members, "publish_bundle", publish_with_reference)
    models = tmp_path / "models"
    members.write_bundle(models, "a", 1)
    members.write_bundle(models, "w", 3, config=env_config(action_space="target_weight"))
    ensemble = members.make(models, "a", "w")
    first = ensemble.members[0].drift_reference
    assert first is not None and ensemble.members[1].drift_reference is not None
    bars, features = members.market()
    trader, broker = ensemble_trader(ensemble, bars, features, tmp_path)
    days = features.loc[pd.Timestamp(ensemble.anchor) :].index[: MIN_SAMPLES + 1]
    for day in days:
        broker.advance_to(day.date())
        trader.run_cycle(day.date())
    drift = entries(tmp_path, "decision")[-1]["drift"]
    expected = measure(first, {n: features.loc[: days[-1], n].to_numpy() for n in first.features}, None)
    assert drift["feature_psi"] == pytest.approx(expected.features, abs=1e-6)
    assert drift["action_psi"] is None  # the ensemble's weights have no training mix
    exported = {s.name for m in trader.metrics.registry.collect() for s in m.samples}
    assert "finrl_feature_psi" in exported and "finrl_action_psi" not in exported
