"""Drift: how far the paper trader's recent inputs and decisions have moved from training.

The population stability index of a distribution ``a`` (shares of the live window in each bin)
against ``e`` (the training shares, :class:`finrl.agents.bundle.DriftReference`) is
``sum((a - e) * ln(a / e))``, each share floored at :data:`EPSILON` so that an empty bin counts as a
large, finite difference. Common reading: below 0.1 stable, 0.1-0.25 moderate, above 0.25 a
significant shift (the FinrlFeatureDrift alert).

At each decision the trader measures every observed feature over the trailing :data:`WINDOW`
sessions up to the decision (the features frame holds them), and the mix of the trailing
:data:`WINDOW` decisions' actions (this model's, from the journal, this one included: see
:func:`model_actions`) against the policy's mix on the training window. A window shorter than
:data:`MIN_SAMPLES` is not measured (with ten bins the index of a handful of values is noise).

Why a year: the features are indicators over weeks to months, so a short window sits in a few
deciles even when nothing has changed. Measured on the offline sample (a model trained on
2014-2017), 63-session windows inside the training window itself read above 0.25 for most features
most of the time (the alert would never stop); 252-session windows do for the slow regime features
only (volatility, VIX) in the stretches where the year's regime differs from the training mix,
which is the drift worth knowing. Sampling noise alone is small at 252 (about 9/252 = 0.04).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from finrl.agents.bundle import Binned, DriftReference, bin_shares

WINDOW = 252  # sessions (a trading year) of features, and decisions, compared with training
MIN_SAMPLES = 20  # fewer values than this: no reading
EPSILON = 1e-4  # the floor of a share, for empty bins


def psi(expected: Iterable[float], actual: Iterable[float], epsilon: float = EPSILON) -> float:
    """The population stability index of ``actual`` shares against ``expected`` (same bins)."""
    e = np.maximum(np.asarray(list(expected), dtype=np.float64), epsilon)
    a = np.maximum(np.asarray(list(actual), dtype=np.float64), epsilon)
    if e.shape != a.shape:
        raise ValueError(f"{a.size} shares against {e.size} reference shares")
    return float(np.sum((a - e) * np.log(a / e)))


def binned_psi(reference: Binned, values: Any) -> float | None:
    """The PSI of ``values`` in ``reference``'s bins; None with fewer than :data:`MIN_SAMPLES` finite values."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.count_nonzero(np.isfinite(array)) < MIN_SAMPLES:
        return None
    return psi(reference.shares, bin_shares(array, reference.edges))


def action_value(action_space: str, entry: Mapping[str, Any]) -> float | None:
    """What a journal decision asked for, in the reference's action bins: the action for ``discrete3``, the
    decided target weight otherwise (a level, or the clipped continuous weight); None when halted."""
    if entry.get("action") is None:  # a halted decision has no action
        return None
    value = entry.get("action" if action_space == "discrete3" else "target")
    return float(value) if isinstance(value, int | float) else None


def model_actions(
    entries: Iterable[Mapping[str, Any]], model: str, action_space: str, session: str, current: Mapping[str, Any]
) -> list[float]:
    """The trailing :data:`WINDOW` decisions' values of ``model`` (a bundle's run name) in the journal's
    ``entries``, oldest first, with ``current`` (this decision, for ``session``) last.

    Only ``model``'s own decisions count: after a model switch in the same logs folder the earlier
    model's (another action space's targets, even) say nothing about this one's mix. A decision
    without ``model`` (journals from before it was recorded) is of an unknown model: left out.
    A rerun's decision for ``session`` is replaced by ``current``.
    """
    decisions = {e.get("session"): e for e in entries if e.get("event") == "decision" and e.get("model") == model}
    decisions.pop(session, None)
    decisions[session] = current
    values = (action_value(action_space, entry) for entry in decisions.values())
    return [v for v in values if v is not None][-WINDOW:]


@dataclass(frozen=True)
class DriftReading:
    """One decision's drift: each feature's PSI, the action mix's (None when not measured), and the samples."""

    features: dict[str, float] = field(default_factory=dict)
    action: float | None = None
    sessions: int = 0  # feature values per window
    decisions: int = 0  # decisions in the action window
    action_mix: dict[str, float] = field(default_factory=dict)  # the window's share of each action bin

    def to_journal(self) -> dict[str, Any]:
        return {
            "feature_psi": {name: round(value, 6) for name, value in self.features.items()},
            "action_psi": None if self.action is None else round(self.action, 6),
            "sessions": self.sessions,
            "decisions": self.decisions,
            "action_mix": {name: round(share, 6) for name, share in self.action_mix.items()},
        }


def measure(
    reference: DriftReference,
    features: Mapping[str, Any],
    actions: list[float] | None,
) -> DriftReading:
    """The drift of the trailing ``features`` (name -> values, oldest first) and ``actions`` (the trailing
    decisions' values, oldest first; None: not measured, as for an ensemble) against ``reference``."""
    psis: dict[str, float] = {}
    sessions = 0
    for name, binned in reference.features.items():
        values = np.asarray(features[name], dtype=np.float64)[-WINDOW:]
        sessions = max(sessions, len(values))
        value = binned_psi(binned, values)
        if value is not None:
            psis[name] = value
    if actions is None:
        return DriftReading(psis, None, sessions)
    recent = actions[-WINDOW:]
    mix = bin_shares(recent, reference.actions.edges)
    labels = reference.actions.labels or tuple(str(i) for i in range(len(mix)))
    return DriftReading(
        psis,
        binned_psi(reference.actions, recent),
        sessions,
        len(recent),
        dict(zip(labels, mix.tolist(), strict=True)),
    )
