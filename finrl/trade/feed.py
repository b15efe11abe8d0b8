"""The paper trader's market: the bundle's features over fresh final bars, reloaded when a newer
session is needed (network sources grow while the service runs; a live CSV grows when rewritten)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from finrl.errors import DataError
from finrl.meta.data.market_data import final_through
from finrl.meta.data.request import DataRequest
from finrl.meta.dataset import FeatureData, load_feature_data
from finrl.meta.features import FeatureSpec

Clock = Callable[[], datetime]


def _machine_clock() -> datetime:
    return datetime.now(UTC)


class MarketFeed:
    """``clock`` judges which bars are final (the broker's clock for a real broker; default the machine's)."""

    def __init__(self, request: DataRequest, datasets_dir: Path, spec: FeatureSpec, clock: Clock | None = None) -> None:
        self.request, self.datasets_dir, self.spec = request, Path(datasets_dir), spec
        self.clock = clock or _machine_clock
        self._data: FeatureData | None = None

    def data(self) -> FeatureData:
        if self._data is None:
            self._data = load_feature_data(self.request, self.datasets_dir, self.spec, now=self.clock())
        return self._data

    @property
    def bars(self) -> pd.DataFrame:
        return self.data().market.bars

    def refresh(self) -> bool:
        """Load the source again where it can have grown; True when the data was reloaded."""
        if not self.request.grows:
            return False
        self._data = None
        self.data()
        return True

    def features_until(self, session: date) -> pd.DataFrame:
        """Features up to ``session``'s final bar, reloading once when the data ends before it;
        a source that still ends before it stops the cycle with one line naming it."""
        data = self.data()
        if data.features.index[-1].date() < session:
            self._data = None
            data = self.data()
        last = data.market.bars.index[-1].date()
        if last < session:
            needed = f"the {session} decision needs that session's final bar"
            raise DataError(f"{self.describe_source()} ends {last}: {needed}{self._hint()}")
        return data.features.loc[: pd.Timestamp(session)]

    def require_current(self) -> None:
        """A growing source must reach the last session its clock says has closed: a stalled
        provider or a file nobody updates would otherwise replay its last day as if it were today's."""
        due = final_through(self.request, self.clock())
        last = self.bars.index[-1].date()
        if due is not None and last < due:
            needed = f"the last closed session is {due}"
            raise DataError(f"{self.describe_source()} ends {last}: {needed}{self._hint()}")

    def describe_source(self) -> str:
        if self.request.source == "csv":
            return f"the live bars file {self.request.csv_path}"
        return self.data().market.label

    def _hint(self) -> str:
        if self.request.source == "csv":
            return (
                ": append it to the file after the close plus --decision-delay-minutes "
                "(a bar written earlier is not final)"
            )
        if self.request.source == "sample":
            return ": the sample is history; trade live data with --live-source yahoo|alpaca|csv"
        return ": the provider has not published it yet (the service retries at its next wake)"
