"""Every file the project reads back is checked against its schema (issue 13): a damaged or hand-edited
simulated account, trader state, health file, journal, dataset cache or manifest ends in one line naming
the file and the field, never in a KeyError or TypeError; the journal survives a torn last line and
never glues the next entry onto one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finrl.agents.bundle import BundleError, Manifest
from finrl.agents.ensemble_bundle import EnsembleManifest
from finrl.applications.spy_rl_trading.cli import app
from finrl.errors import DataError
from finrl.meta.data import market_data
from finrl.meta.data.market_data import _read_cache
from finrl.trade.health import health_ok, write_health
from finrl.trade.journal import Journal
from finrl.trade.trader import TraderState
from unit_tests.conftest import env_config, make_bars

runner = CliRunner()


def one_error_line(result: Any, code: int, *fragments: str) -> str:
    output = result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == code and len(errors) == 1, output
    assert "Traceback" not in output
    assert all(f in errors[0] for f in fragments), errors[0]
    return errors[0]


# ---------------------------------------------------------------- the journal


@pytest.mark.unit
def test_a_torn_last_line_is_skipped_and_the_next_entry_starts_a_fresh_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.record("decision", session="2024-12-23")
    with journal.path.open("a", encoding="utf-8") as f:
        f.write('{"ts": "2024-12-24T00:00:00+00:00", "event": "deci')  # a crash mid-write
    assert [e["event"] for e in journal.entries()] == ["decision"]  # the reader survives it

    journal.record("order_submitted", client_order_id="c1")
    lines = journal.path.read_text().splitlines()
    assert len(lines) == 3 and lines[1].endswith('"deci') and json.loads(lines[2])["event"] == "order_submitted"
    assert [e["event"] for e in journal.entries()] == ["decision", "order_submitted"]


@pytest.mark.unit
def test_entries_are_appended_to_a_whole_journal_as_before(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    for i in range(3):
        journal.record("decision", session=f"2024-12-2{i}")
    assert journal.path.read_text().count("\n") == 3 and len(journal.entries()) == 3
    assert not journal.path.read_text().startswith("\n")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("line", "fragment"),
    [("[1, 2]", "line 2: expected a JSON object"), ('{"ts": "x"}', "line 2: field 'event': Field required")],
)
def test_a_line_that_is_json_but_no_entry_is_one_line_naming_it(tmp_path: Path, line: str, fragment: str) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.record("decision")
    with journal.path.open("a") as f:
        f.write(line + "\n")
    with pytest.raises(DataError) as caught:
        journal.entries()
    assert str(caught.value) == f"corrupt {journal.path}: {fragment}"


# ---------------------------------------------------------------- trader state


@pytest.mark.unit
@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"peak_equity": "a lot"}, "field 'peak_equity': Input should be a valid number"),
        ({"peak_equity": -5}, "field 'peak_equity': Input should be greater than or equal to 0"),
        ({"halted": "perhaps"}, "field 'halted': Input should be a valid boolean"),
        ({"pending": "c1"}, "field 'pending': Input should be a valid list"),
        ({"peek_equity": 1.0}, "field 'peek_equity': Extra inputs are not permitted"),
        ({"last_session": "yesterday"}, "field 'last_session': Input should be a valid date"),
        ([], "expected a JSON object, got an array"),
    ],
)
def test_a_malformed_trader_state_is_one_line_naming_the_field(tmp_path: Path, document: Any, fragment: str) -> None:
    path = tmp_path / "trader_state.json"
    path.write_text(json.dumps(document))
    with pytest.raises(DataError) as caught:
        TraderState.load(path)
    assert str(caught.value).startswith(f"corrupt {path}: {fragment}") and "\n" not in str(caught.value)


@pytest.mark.unit
def test_a_trader_state_as_written_loads_unchanged(tmp_path: Path) -> None:
    state = TraderState(peak_equity=101_000.5, last_session="2024-12-26", last_equity=100_500.0, halted=True,
                        halt_reason="drawdown", pending=["c1"], unreconciled=[{"client_order_id": "c0"}])  # fmt: skip
    state.save(tmp_path / "trader_state.json")
    assert TraderState.load(tmp_path / "trader_state.json") == state


# ---------------------------------------------------------------- health


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[]", "expected a JSON object, got an array"),
        ('{"status": "ok"}', "field 'heartbeat': Field required"),
        ('{"status": "ok", "heartbeat": "2024-12-26T12:00:00"}', "field 'heartbeat': Input should have timezone info"),
        ('{"status": 3, "heartbeat": "2024-12-26T12:00:00+00:00"}', "field 'status': Input should be a valid string"),
        ("{", "no readable health file"),
    ],
)
def test_a_malformed_health_file_is_unhealthy_in_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "health.json"
    path.write_text(text)
    ok, detail = health_ok(path, 300)
    assert not ok and fragment in detail and str(path) in detail and "\n" not in detail


@pytest.mark.unit
def test_the_health_command_on_an_array_is_one_line_exit_1(tmp_path: Path) -> None:
    (tmp_path / "health.json").write_text("[]")
    result = runner.invoke(app, ["health", "--logs-dir", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output + result.stderr
    expected = f"unhealthy: corrupt {tmp_path / 'health.json'}: expected a JSON object, got an array"
    assert result.stderr.strip() == expected


@pytest.mark.unit
def test_a_written_heartbeat_is_healthy(tmp_path: Path) -> None:
    write_health(tmp_path / "health.json", "ok", last_session="2024-12-26")
    ok, detail = health_ok(tmp_path / "health.json", 300)
    assert ok and detail.startswith("ok (")


# ---------------------------------------------------------------- the dataset cache: refetched, never fatal


@pytest.mark.unit
@pytest.mark.parametrize("metadata", ["[]", '{"fingerprint": 5}', '{"rows": 3}', '"x"', "{"])
def test_an_unreadable_cache_metadata_is_refetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metadata: str
) -> None:
    make_bars(20, vix=False).to_csv(tmp_path / market_data.BARS_FILE, index_label="date")
    (tmp_path / market_data.METADATA_FILE).write_text(metadata)
    warnings: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(market_data.log, "warning", lambda event, **kw: warnings.append((event, kw)))
    assert _read_cache(tmp_path) is None
    assert [event for event, _ in warnings] == ["data_cache_unreadable"]


# ---------------------------------------------------------------- manifests


@pytest.mark.unit
@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"members": "r1"}, "field 'members': Input should be a valid tuple"),
        ({"members": [{"run_name": "r1"}]}, "field 'members.0.manifest_sha256': Field required"),
        ({"env_config": []}, "field 'env_config': expected a JSON object, got list"),
        ({"anchor": 5}, "field 'anchor'"),
        ({"rule": "vote"}, "field 'rule'"),
    ],
)
def test_a_malformed_ensemble_manifest_is_one_line(tmp_path: Path, changes: dict[str, Any], fragment: str) -> None:
    document = {"format": 1, "kind": "ensemble", "run_name": "e", "rule": "majority", "anchor": "2020-01-02",
                "env_config": env_config().to_dict(), "members": [], **changes}  # fmt: skip
    with pytest.raises(BundleError) as caught:
        EnsembleManifest.parse(document, tmp_path / "bundle.json")
    message = str(caught.value)
    assert message.startswith(f"corrupt {tmp_path / 'bundle.json'}: ") and fragment in message, message


@pytest.mark.unit
@pytest.mark.parametrize("document", [[], "bundle", 5])
def test_a_manifest_that_is_no_object_is_one_line(tmp_path: Path, document: Any) -> None:
    with pytest.raises(BundleError, match=r"^corrupt .*bundle\.json: not a JSON object$"):
        Manifest.parse(document, tmp_path / "bundle.json")


# ---------------------------------------------------------------- through spy-rl paper


def paper_once(latest_workdir: Path, logs: Path) -> Any:
    return runner.invoke(
        app,
        ["paper", "--once", "--live-source", "sample", "--models-dir", str(latest_workdir / "trained_models"),
         "--datasets-dir", str(latest_workdir / "datasets"), "--logs-dir", str(logs), "--metrics-port", "0"],
    )  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("simulated_account.json", "{}", "field 'cash': Field required"),
        ("simulated_account.json", '{"cash": 1e5, "shares": 0, "orders": []}', "field 'orders'"),
        ("simulated_account.json", "[]", "expected a JSON object, got an array"),
    ],
)
def test_paper_on_a_malformed_state_file_is_one_line_and_leaves_it_alone(
    latest_workdir: Path, tmp_path: Path, name: str, text: str, fragment: str
) -> None:
    (tmp_path / name).write_text(text)
    result = paper_once(latest_workdir, tmp_path)
    assert result.exit_code != 0
    one_error_line(result, result.exit_code, str(tmp_path / name), fragment)
    assert (tmp_path / name).read_text() == text


@pytest.mark.integration
def test_paper_sets_a_malformed_trader_state_aside_and_rebuilds_it_from_the_journal(
    latest_workdir: Path, tmp_path: Path
) -> None:
    """The state file is a cache of the journal: a damaged one is kept as .corrupt-<time> and rebuilt,
    with the reason (the file and the field) in the warning, never a TypeError."""
    text = '{"peak_equity": "high", "halted": false}'
    (tmp_path / "trader_state.json").write_text(text)
    result = paper_once(latest_workdir, tmp_path)
    assert result.exit_code == 0, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    (aside,) = tmp_path.glob("trader_state.json.corrupt-*")
    assert aside.read_text() == text
    assert "field 'peak_equity'" in result.stderr and "trader_state_rebuilt" in result.stderr
    assert isinstance(json.loads((tmp_path / "trader_state.json").read_text())["peak_equity"], float)


def test_a_secret_of_digits_is_masked_in_strings_and_never_cuts_a_number(tmp_path: Path) -> None:
    """Masking the journal's serialized line would turn an equity of 101234.5 into 10**********.5 with a
    registered secret "1234", and the entry would be lost: secrets are masked inside strings only."""
    from finrl.masking import MASK, _secrets, register_secrets

    register_secrets(["1234"])
    try:
        journal = Journal(tmp_path / "journal.jsonl")
        journal.record("decision", equity=101234.5, error="HTTP 403: key 1234 refused", nested={"why": ["1234"]})
        (entry,) = journal.entries()
    finally:
        _secrets.clear()
    assert entry["equity"] == 101234.5
    assert entry["error"] == f"HTTP 403: key {MASK} refused" and entry["nested"] == {"why": [MASK]}
