"""quantstats' HTML tearsheet of the agent against buy-and-hold: tearsheet.html, offline and reproducible.

quantstats is given both return series (never a ticker: it would download one with yfinance). Its
page links a favicon and its home page and its SVG charts stamp the time and random ids: those are
removed or fixed here, so the file makes no network request and the same result writes the same bytes.
Its font lookups ("findfont: Font family 'Arial' not found") and plotting warnings are silenced around
the call only; matplotlib's global settings (quantstats restyles them on import) are restored after.
"""

from __future__ import annotations

import html
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from finrl.backtest.engine import AGENT, BacktestResult
from finrl.log import get_logger
from finrl.performance import daily_returns

log = get_logger(__name__)

# what quantstats' template and matplotlib's SVGs point at; none of it is needed to read the page
_FAVICON = re.compile(r'\s*<link rel="shortcut icon"[^>]*>')
_HOME_LINK = re.compile(r'<a href="https?://quantstats\.io"[^>]*>(.*?)</a>')
_SVG_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)  # creation date, creator URL
_SVG_PROLOGUE = re.compile(r"<\?xml[^>]*\?>\s*|<!DOCTYPE svg[^>]*>\s*")  # a DTD URL; HTML ignores both
# the template calls save() on load, a function quantstats only adds when it offers the page as a
# download: saved to a file, the page threw "save is not defined" in every browser
_SAVE_ON_LOAD = re.compile(r'\s+onload="save\(\)"')
_ANY_URL_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


@contextmanager
def quiet_matplotlib() -> Iterator[None]:
    """Agg, matplotlib's settings restored on exit, no font-lookup log lines and no plotting warnings."""
    import matplotlib

    matplotlib.use("Agg")
    font_log = logging.getLogger("matplotlib.font_manager")
    level = font_log.level
    font_log.setLevel(logging.ERROR)
    try:
        # svg.hashsalt fixes the ids matplotlib gives clip paths in SVGs (random otherwise)
        with matplotlib.rc_context({"svg.hashsalt": "finrl-tearsheet"}), warnings.catch_warnings():
            # quantstats' and seaborn's own deprecations and plotting notes, not ours to act on
            warnings.filterwarnings("ignore", module=r"(quantstats|seaborn)\b")
            warnings.filterwarnings("ignore", category=UserWarning, module=r"matplotlib\b")
            warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"numpy\b")
            yield
    finally:
        font_log.setLevel(level)


def offline(page: str) -> str:
    """The page without its network references (favicon, home-page link), its SVGs' stamps and its call of
    an undefined ``save()`` on load."""
    page = _FAVICON.sub("", page)
    page = _HOME_LINK.sub(r"\1", page)
    page = _SVG_METADATA.sub("", page)
    page = _SVG_PROLOGUE.sub("", page)
    page = _SAVE_ON_LOAD.sub("", page)
    if _ANY_URL_REFERENCE.search(page):  # a newer quantstats added one: fail loudly rather than phone home
        raise ValueError(f"the quantstats tearsheet references a URL: {_ANY_URL_REFERENCE.search(page)}")
    return page


def write_tearsheet(result: BacktestResult, path: Path) -> None:
    """quantstats' full tearsheet of the agent (benchmark: buy-and-hold) at ``path``.

    quantstats cannot describe every series (an agent that never trades has constant returns: its
    regressions and density estimates fail); the backtest's own report stands without it, so a
    failure there writes a page that says why instead of losing the run.
    """
    try:
        _quantstats_page(result, path)
    except OSError:
        raise
    except Exception as error:  # any quantstats failure: say it, keep the backtest
        log.warning("tearsheet_unavailable", error=f"{type(error).__name__}: {error}")
        path.write_text(unavailable_page(result, error), encoding="utf-8")


def unavailable_page(result: BacktestResult, error: Exception) -> str:
    reason = html.escape(f"{type(error).__name__}: {error}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tearsheet {html.escape(result.bundle.run_name)}</title></head>
<body><h1>No quantstats tearsheet for {html.escape(result.bundle.run_name)}</h1>
<p>quantstats could not describe the agent against buy-and-hold over {result.window.start} \N{EN DASH}
{result.window.end} (an agent that never trades has constant returns, which its statistics cannot take):</p>
<pre>{reason}</pre><p>report.html holds the backtest's own analysis.</p></body></html>
"""


def _quantstats_page(result: BacktestResult, path: Path) -> None:
    returns = daily_returns(result.ledgers[AGENT].nav).rename("Agent")
    benchmark = daily_returns(result.ledgers["buy_and_hold"].nav).rename("Buy and hold")
    with quiet_matplotlib():
        import quantstats

        quantstats.reports.html(  # type: ignore[no-untyped-call]
            returns,
            benchmark=benchmark,
            rf=result.risk_free_rate,
            output=str(path),
            title=f"{result.bundle.run_name}: agent vs buy-and-hold",  # quantstats adds the dates
            strategy_title="Agent",
            benchmark_title="Buy and hold",
            figfmt="svg",
            match_dates=False,  # the whole test window: matching would cut it to the first day either one trades
        )
    path.write_text(offline(path.read_text(encoding="utf-8")), encoding="utf-8")
