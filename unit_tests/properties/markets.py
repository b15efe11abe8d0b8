"""Random markets for the property tests: daily bars on NYSE sessions with planted dividends, and the
env's arrays built from them exactly as the simulated broker reads the same bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from finrl.meta.env.execution import dividends_per_share
from finrl.meta.env.market_arrays import MarketArrays, bars_liquidity
from unit_tests.conftest import make_bars


@st.composite
def bars(draw: st.DrawFn, min_days: int = 8, max_days: int = 40) -> pd.DataFrame:
    """Random-walk bars (conftest's make_bars) with up to 3 cash dividends planted in adj_close."""
    frame = make_bars(draw(st.integers(min_days, max_days)), seed=draw(st.integers(0, 2**16)))
    close = frame["close"].to_numpy()
    factor = np.ones(len(frame))
    for day in draw(st.lists(st.integers(1, len(frame) - 1), max_size=3, unique=True)):
        factor[:day] *= 1.0 - draw(st.floats(0.05, 2.0)) / close[day - 1]  # a dividend of $0.05..$2 on `day`
    frame["adj_close"] = close * factor
    return frame


def market_arrays(frame: pd.DataFrame) -> MarketArrays:
    """The env's arrays of ``frame`` (one constant feature: these tests are about the account)."""
    volatility, adv = bars_liquidity(frame)
    return MarketArrays(
        dates=frame.index.to_numpy(dtype="datetime64[ns]"),
        features=np.zeros((len(frame), 1), dtype=np.float32),
        open=frame["open"].to_numpy(dtype=np.float64),
        close=frame["close"].to_numpy(dtype=np.float64),
        dividends=dividends_per_share(frame["close"], frame["adj_close"]),
        volatility=volatility,
        adv=adv,
    )
