"""Start-up by need: only training imports torch, stable-baselines3 or TensorBoard. The light
commands (``health``, ``version``, ``--help``) import not even pandas or NumPy, and backtests and
paper trading run with torch made unimportable (as in the slim inference image)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unit_tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

TRAINING_ONLY = ("torch", "stable_baselines3", "tensorboard")
HEAVY = (*TRAINING_ONLY, "pandas", "numpy", "exchange_calendars", "matplotlib", "prometheus_client", "alpaca",
         "requests")  # fmt: skip

# runs the CLI in a fresh interpreter, optionally with some packages unimportable, and reports what got imported
PROBE = """
import json, sys
blocked = set(json.loads(sys.argv[1]))

class Unimportable:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (made unimportable by the test)", name=name)
        return None

sys.meta_path.insert(0, Unimportable())
from finrl.applications.spy_rl_trading.cli import app
code = 0
try:
    app(sys.argv[2:], prog_name="spy-rl")
except SystemExit as stop:
    code = stop.code or 0
print("PROBE " + json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}), file=sys.stderr)
"""


def run_cli(args: list[str], cwd: Path, *, blocked: tuple[str, ...] = ()) -> tuple[int, set[str], str]:
    env = {"PATH": "/usr/bin:/bin", "SPY_ENV_FILE": str(cwd / "absent.env"), "SPY_SECRETS_DIR": str(cwd / "none")}
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(blocked), *map(str, args)],
        cwd=cwd, env={**env, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    probe = [line for line in completed.stderr.splitlines() if line.startswith("PROBE ")]
    assert probe, completed.stdout + completed.stderr
    report = json.loads(probe[-1].removeprefix("PROBE "))
    return report["code"], set(report["modules"]), completed.stdout + completed.stderr


@pytest.mark.parametrize(
    "args",
    [["--help"], ["version"], ["health", "--logs-dir", "logs"], ["train", "--help"], ["backtest", "--help"]],
    ids=lambda args: " ".join(args[:2]),
)
def test_light_commands_import_no_heavy_library(tmp_path: Path, args: list[str]) -> None:
    code, modules, output = run_cli(args, tmp_path)
    assert code in (0, 1), output  # health exits 1: no heartbeat in an empty folder
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def working_copy(sample_bundles: dict[str, Path], tmp_path: Path) -> list[str]:
    """Flags pointing every folder of a command at a copy of the session's tiny bundles."""
    import shutil

    from finrl.agents.bundle import point_latest

    models = tmp_path / "models"
    shutil.copytree(sample_bundles["r1"], models / "r1")
    point_latest(models, models / "r1")
    shutil.copytree(sample_bundles["r1"].parent.parent / "datasets", tmp_path / "datasets")
    return ["--models-dir", str(models), "--datasets-dir", str(tmp_path / "datasets")]


@pytest.mark.parametrize("blocked", [(), TRAINING_ONLY], ids=["installed", "unimportable"])
def test_backtest_and_paper_trading_never_import_torch(
    sample_bundles: dict[str, Path], tmp_path: Path, blocked: tuple[str, ...]
) -> None:
    folders = working_copy(sample_bundles, tmp_path)
    commands = [
        ["data", "fetch", "--source", "sample", "--datasets-dir", str(tmp_path / "datasets")],
        ["backtest", *folders, "--results-dir", str(tmp_path / "results")],
        ["paper", "--live-source", "sample", "--broker", "simulated", "--once", "--metrics-port", "0",
         "--logs-dir", str(tmp_path / "logs"), *folders],
    ]  # fmt: skip
    for args in commands:
        code, modules, output = run_cli(args, tmp_path, blocked=blocked)
        assert code == 0, output
        assert not modules & set(TRAINING_ONLY), (args[0], sorted(modules & set(TRAINING_ONLY)))
    assert len(list((tmp_path / "results").glob("r1__*/report.html"))) == 1
    assert (tmp_path / "logs" / "journal.jsonl").is_file()


def test_training_without_the_train_extra_is_one_line(tmp_path: Path) -> None:
    code, _, output = run_cli(["train", "--source", "sample", "--timesteps", "64"], tmp_path, blocked=TRAINING_ONLY)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "pip install 'finrl[train]'" in errors[0], output
    assert "Traceback" not in output
