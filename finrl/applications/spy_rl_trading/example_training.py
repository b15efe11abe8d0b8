"""Train a PPO agent on SPY: ``python -m finrl.applications.spy_rl_trading.example_training``.

The entry module the deployment doc and the container's default command name; it takes the
same flags and SPY_* variables as ``spy-rl train``.
"""

from __future__ import annotations

import sys

from finrl.applications.spy_rl_trading.cli import app


def main(argv: list[str] | None = None) -> None:
    app(["train", *(sys.argv[1:] if argv is None else argv)], prog_name="example_training")


if __name__ == "__main__":
    main()
