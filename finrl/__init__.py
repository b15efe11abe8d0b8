"""finrl: a reinforcement-learning trading library, built around the SPY ETF.

Importing this package stays cheap (no torch, no pandas): the container health check runs
``python -c "import finrl"`` every 30 seconds.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("finrl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
