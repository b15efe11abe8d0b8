"""Backtest a model bundle: ``python -m finrl.applications.spy_rl_trading.example_backtesting``.

The entry module the deployment doc's backtest container runs; same flags and SPY_* variables
as ``spy-rl backtest`` (default model: ``latest``).
"""

from __future__ import annotations

import sys

from finrl.applications.spy_rl_trading.cli import app


def main(argv: list[str] | None = None) -> None:
    app(["backtest", *(sys.argv[1:] if argv is None else argv)], prog_name="example_backtesting")


if __name__ == "__main__":
    main()
