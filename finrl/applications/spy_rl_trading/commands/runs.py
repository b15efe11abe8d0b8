"""``spy-rl runs``: work with the model bundles in the models folder."""

from __future__ import annotations

from typing import Annotated

import typer

from finrl.applications.spy_rl_trading.cli_support import Flag, echo_lines, settings_command
from finrl.applications.spy_rl_trading.settings import Settings

runs_app = typer.Typer(help="Work with trained model bundles.", no_args_is_help=True)


@runs_app.command("convert")
@settings_command((Flag("trained_models_dir", ("--models-dir",)),))
def convert_command(
    ctx: typer.Context,
    settings: Settings,
    model: Annotated[str, typer.Argument(help="Bundle folder, run name in the models folder, or 'latest'")],
) -> None:
    """Add torch-free policy arrays (policy.npz) to a bundle written before they existed (needs finrl[train])."""
    from finrl.agents.bundle import POLICY_FILE, convert_bundle, load_bundle

    bundle = load_bundle(model, settings.trained_models_dir)
    if POLICY_FILE in bundle.manifest.files:
        echo_lines([f"{bundle.path}: already has {POLICY_FILE}"])
        return
    convert_bundle(bundle)
    echo_lines([f"{bundle.path}: wrote {POLICY_FILE}; backtests and paper trading no longer need torch for it"])


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
