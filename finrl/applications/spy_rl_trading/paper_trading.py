"""Paper trading service: ``python -m finrl.applications.spy_rl_trading.paper_trading``.

The entry module the deployment doc's paper-trading container runs; same flags and SPY_*/ALPACA_*
variables as ``spy-rl paper`` (``--once`` for a single cycle).
"""

from __future__ import annotations

import sys

from finrl.applications.spy_rl_trading.cli import app


def main(argv: list[str] | None = None) -> None:
    app(["paper", *(sys.argv[1:] if argv is None else argv)], prog_name="paper_trading")


if __name__ == "__main__":
    main()
