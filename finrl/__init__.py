"""finrl: a reinforcement-learning trading library, built around the SPY ETF.

Importing this package stays cheap (no torch, no pandas, not even package metadata until
``__version__`` is read): container health checks import it every 30 seconds.
"""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("finrl")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0+unknown"
    raise AttributeError(f"module 'finrl' has no attribute {name!r}")
