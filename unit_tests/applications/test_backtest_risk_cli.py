"""``spy-rl backtest`` applies the paper trader's risk limits to the agent by default, takes paper's
four limit flags, and ``--no-risk-limits`` (SPY_BACKTEST_RISK_LIMITS=false) shows the unconstrained policy."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from finrl.agents.bundle import point_latest
from finrl.applications.spy_rl_trading.cli import app
from unit_tests.conftest import default_settings

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture
def folders(tmp_path: Path, sample_bundles: dict[str, Path]) -> list[str]:
    models = tmp_path / "models"
    shutil.copytree(sample_bundles["r1"], models / "r1")
    point_latest(models, models / "r1")
    return ["--models-dir", str(models), "--results-dir", str(tmp_path / "results"),
            "--datasets-dir", str(tmp_path / "datasets")]  # fmt: skip


def backtest(folders: list[str], *flags: str, env: dict[str, str] | None = None) -> tuple[str, dict[str, Any], Path]:
    results = Path(folders[folders.index("--results-dir") + 1])
    shutil.rmtree(results, ignore_errors=True)
    result = runner.invoke(app, ["backtest", *folders, *flags], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    (report,) = results.glob("r1__*")
    return result.stdout, json.loads((report / "metrics.json").read_text()), report


def test_the_paper_traders_limits_apply_by_default_and_can_be_turned_off(folders: list[str]) -> None:
    settings = default_settings()
    stdout, document, _ = backtest(folders)
    risk = document["meta"]["risk"]
    assert risk["limits"] == {
        "max_drawdown": settings.max_drawdown,
        "max_daily_loss": settings.max_daily_loss,
        "max_position_fraction": settings.max_position_fraction,
        "max_order_notional": settings.max_order_notional,
    }
    assert risk["applies_to"] == "agent"
    kinds = Counter(e["event"] for e in risk["events"])  # the counts, recounted from the events themselves
    assert set(kinds) <= {"risk_halt", "risk_blocked"}, kinds
    assert (risk["halts"], risk["blocked_orders"]) == (kinds["risk_halt"], kinds["risk_blocked"])
    assert all(e["rule"] == e["detail"].split(":")[0] for e in risk["events"])
    assert f"; {kinds['risk_blocked']} order(s) blocked" in stdout and "risk limits (agent only)" in stdout

    for flags, env in ((["--no-risk-limits"], None), ([], {"SPY_BACKTEST_RISK_LIMITS": "false"})):
        stdout, off, _ = backtest(folders, *flags, env=env)
        assert off["meta"]["risk"] == {"limits": None, "applies_to": "agent", "halts": 0, "blocked_orders": 0,
                                       "events": []}  # fmt: skip
        assert "risk limits: off" in stdout
        assert off["buy_and_hold"] == document["buy_and_hold"]  # the baselines are never limited
        if not risk["events"]:  # limits that never bound changed nothing
            assert off["agent"] == document["agent"]


def test_a_tight_drawdown_limit_halts_the_agent_and_says_when(folders: list[str]) -> None:
    _, free, free_report = backtest(folders, "--no-risk-limits")
    free_nav = pd.read_csv(free_report / "nav.csv", index_col="date")["agent_nav"]  # now: the next run replaces it
    stdout, document, report = backtest(folders, "--max-drawdown", "0.01", "--max-order-notional", "2000000")
    risk = document["meta"]["risk"]
    assert risk["limits"]["max_drawdown"] == 0.01 and risk["limits"]["max_order_notional"] == 2e6
    (halt,) = [e for e in risk["events"] if e["event"] == "risk_halt"]
    assert halt["rule"] == "max_drawdown" and halt["detail"].startswith("max_drawdown: ")
    # the day it must halt, from the unconstrained run's equity at each close (the same path until the first event):
    # the first close at 1% or more below the highest close so far
    breached = free_nav.index[free_nav <= free_nav.cummax() * (1 - 0.01)]
    assert risk["events"][0] == halt and halt["date"] == breached[0]
    assert risk["halts"] == 1 and f"halted {halt['date']} (max_drawdown)" in stdout
    assert f"halted {halt['date']} (max_drawdown), flat from there" in (report / "report.html").read_text()
    nav = pd.read_csv(report / "nav.csv", index_col="date")
    after = nav.loc[nav.index > halt["date"]]
    assert (after["shares"] == 0).all() and after["action"].isna().all()  # flat, and the policy no longer asked
    assert document["agent"] != free["agent"] and document["buy_and_hold"] == free["buy_and_hold"]
