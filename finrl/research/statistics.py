"""Statistics of honest evaluation: is the agent's Sharpe ratio real, and does it beat buy-and-hold?

A single backtest Sharpe ratio says little on its own: it is an estimate with a standard error, its
returns are skewed and fat-tailed, the configuration it comes from was picked among many tries, and
the benchmark's Sharpe is estimated from the same days. This module answers those four objections:

- :func:`probabilistic_sharpe_ratio` (PSR; Bailey & López de Prado 2012, "The Sharpe Ratio Efficient
  Frontier", Journal of Risk 15(2)): the probability that the true Sharpe exceeds a benchmark value,
  given the track record's length, skewness and kurtosis.
- :func:`deflated_sharpe_ratio` (DSR; Bailey & López de Prado 2014, "The Deflated Sharpe Ratio",
  Journal of Portfolio Management 40(5)): the PSR against the Sharpe ratio the best of ``n_trials``
  skill-less configurations would show by luck alone (:func:`expected_max_sharpe`).
- :func:`sharpe_difference_test`: a paired stationary bootstrap (Politis & Romano 1994, JASA 89(428))
  of the annualised Sharpe difference between the agent and the benchmark over the same days, which
  keeps their correlation and the returns' serial dependence (volatility clustering) within blocks.
- :func:`verdict`: one plain-language line that never claims an edge the interval does not support.

Units: every Sharpe ratio taken or returned by the PSR/DSR functions is **per period** (per day for
daily returns), never annualised, because the PSR's standard error is written in the sampling
frequency of the returns. Convert an annual figure with ``annual / sqrt(252)`` and a variance of
annual Sharpe ratios with ``variance / 252``; :func:`annualised` goes the other way. Only the
bootstrap's :class:`SharpeDifference` is annualised, since it is read by people. Returns are simple
per-period returns, not in excess of a risk-free rate (subtract ``rate / 252`` first if wanted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from finrl.performance import TRADING_DAYS

EULER_MASCHERONI = 0.5772156649015329
MIN_OBSERVATIONS = 3  # the fewest returns with a defined skewness (and n - 1 > 0 in the PSR)
MIN_BOOTSTRAP_SAMPLES = 100  # fewer leave the 2.5% / 97.5% percentiles resting on one or two draws
_BOOTSTRAP_CHUNK = 250  # resamples gathered at once: bounds memory at ~5 MB per 2,500-day series

_NORMAL = NormalDist()


def sharpe_ratio(returns: npt.ArrayLike) -> float:
    """Per-period Sharpe ratio ``mean / std`` of simple returns (ddof=1); 0 when it is undefined.

    A flat or one-return series has no volatility to scale by; 0 (no measurable skill) keeps reports
    free of NaN and inf, as :mod:`finrl.performance` does.
    """
    r = _as_returns(returns, minimum=0)
    if r.size < 2 or np.ptp(r) == 0.0:  # exact test: the std of equal values is rounding noise, not 0
        return 0.0
    return float(np.mean(r)) / float(np.std(r, ddof=1))


def annualised(sr: float, periods: int = TRADING_DAYS) -> float:
    """A per-period Sharpe ratio scaled to a year of ``periods`` returns (``sr * sqrt(periods)``)."""
    return sr * math.sqrt(periods)


def psr_from_moments(sr: float, sr_star: float, n: int, skew: float, kurtosis: float) -> float:
    """PSR from summary statistics: Φ((SR - SR*)·√(n-1) / √(1 - skew·SR + (kurt - 1)/4·SR²)).

    Equation of Bailey & López de Prado (2012), with ``sr`` and ``sr_star`` per period, ``n`` the number
    of returns, ``skew`` their skewness and ``kurtosis`` their (non-excess) kurtosis, 3 for normal
    returns. The square root is the standard error of the Sharpe estimate times √(n-1)
    (Mertens 2002): negative skew and fat tails widen it when SR > 0.
    """
    if n < 2:
        raise ValueError(f"the PSR needs at least 2 returns, got n={n}")
    variance = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not variance > 0.0:  # impossible for real moments: kurtosis >= 1 + skew**2 keeps it positive
        raise ValueError(f"skew={skew} and kurtosis={kurtosis} are not the moments of any distribution")
    return _NORMAL.cdf((sr - sr_star) * math.sqrt(n - 1) / math.sqrt(variance))


def probabilistic_sharpe_ratio(returns: npt.ArrayLike, benchmark_sharpe: float = 0.0) -> float:
    """Probability that the true per-period Sharpe ratio exceeds ``benchmark_sharpe`` (PSR).

    ``benchmark_sharpe`` is per period like the returns: an annual Sharpe of 1.0 is ``1 / sqrt(252)``
    against daily returns. Skewness and kurtosis are the sample moments (central moments over n, as
    ``scipy.stats.skew`` and ``kurtosis(fisher=False)`` give them); a flat series counts as normal
    (skew 0, kurtosis 3).
    """
    r = _as_returns(returns, minimum=MIN_OBSERVATIONS)
    skew, kurtosis = _skew_kurtosis(r)
    return psr_from_moments(sharpe_ratio(r), benchmark_sharpe, r.size, skew, kurtosis)


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum of ``n_trials`` independent Sharpe estimates whose true Sharpe is 0.

    √V·((1 - c)·Φ⁻¹(1 - 1/N) + c·Φ⁻¹(1 - 1/(N·e))), c the Euler-Mascheroni constant (Bailey & López
    de Prado 2014, after the extreme-value limit of the maximum of N normals). ``sharpe_variance`` V is
    the variance of the trials' Sharpe ratios in the same (per-period) units as the result. One trial
    selects nothing, so its expected maximum is the null's mean, 0.
    """
    if isinstance(n_trials, bool) or int(n_trials) != n_trials or n_trials < 1:
        raise ValueError(f"n_trials must be a whole number of configurations >= 1, got {n_trials!r}")
    if not (math.isfinite(sharpe_variance) and sharpe_variance >= 0.0):
        raise ValueError(f"sharpe_variance must be a finite variance >= 0, got {sharpe_variance}")
    if n_trials == 1:
        return 0.0
    n = float(n_trials)
    z = (1.0 - EULER_MASCHERONI) * _NORMAL.inv_cdf(1.0 - 1.0 / n) + EULER_MASCHERONI * _NORMAL.inv_cdf(
        1.0 - 1.0 / (n * math.e)
    )
    return math.sqrt(sharpe_variance) * z


def deflated_sharpe_ratio(returns: npt.ArrayLike, n_trials: int, sharpe_variance: float) -> float:
    """PSR against the Sharpe the luckiest of ``n_trials`` skill-less configurations would show (DSR).

    ``n_trials`` counts every configuration tried before this one was chosen (seeds, hyperparameters,
    features, checkpoints); ``sharpe_variance`` is the variance of their per-period Sharpe ratios
    (``variance_of_annual_sharpes / 252`` for daily returns). With one trial it is the PSR against 0.
    """
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(n_trials, sharpe_variance))


def default_mean_block(n: int) -> int:
    """Mean block length for ``n`` days: ``round(n ** (1/3))``, at least 1 (14 for 2,500 days).

    The mean-squared-error-optimal block length of the stationary bootstrap grows as n^(1/3) (Politis &
    White 2004); its constant depends on the series' autocovariances, which for daily returns are weak
    in the mean and persistent only in the volatility. A constant of 1 keeps a few weeks of volatility
    clustering together without a data-driven estimate that would itself be noisy on short windows.
    """
    return max(1, round(math.cbrt(n)))


def stationary_bootstrap_indices(
    n: int, mean_block: float, n_samples: int, rng: np.random.Generator
) -> npt.NDArray[np.intp]:
    """``n_samples`` rows of ``n`` indices into a series of length ``n`` (Politis & Romano 1994).

    Each row is a chain of blocks: a block starts at a uniform random day and runs over consecutive
    days, wrapping from the last day to the first, until a new block starts, which happens before
    each day with probability ``1 / mean_block``; block lengths are thus geometric with mean
    ``mean_block``. Vectorised: the start of the block covering each position is found with a running
    maximum, so no Python loop runs over days or samples.
    """
    if n < 1 or n_samples < 1:
        raise ValueError(f"n and n_samples must be >= 1, got n={n}, n_samples={n_samples}")
    if not mean_block >= 1.0:
        raise ValueError(f"mean_block must be >= 1 day, got {mean_block}")
    positions = np.arange(n, dtype=np.intp)
    new_block = rng.random((n_samples, n)) < 1.0 / mean_block
    new_block[:, 0] = True
    block_start = np.maximum.accumulate(np.where(new_block, positions, 0), axis=1)
    first_day = rng.integers(0, n, size=(n_samples, n), dtype=np.intp)
    start_day = np.take_along_axis(first_day, block_start, axis=1)
    return (start_day + (positions - block_start)) % n


@dataclass(frozen=True)
class SharpeDifference:
    """Paired bootstrap comparison of two return series over the same days (annualised Sharpe units).

    ``difference`` is Sharpe(agent) - Sharpe(benchmark) on the observed days; ``ci95`` the 2.5% and
    97.5% percentiles of the bootstrapped differences; ``p_value`` the two-sided p-value of
    H0: difference = 0; ``mean_block`` the bootstrap's mean block length in days.
    """

    difference: float
    ci95: tuple[float, float]
    p_value: float
    n_boot: int
    mean_block: float


def sharpe_difference_test(
    agent_returns: npt.ArrayLike,
    benchmark_returns: npt.ArrayLike,
    *,
    n_boot: int = 2000,
    mean_block: float | None = None,
    seed: int = 0,
) -> SharpeDifference:
    """Does the agent's annualised Sharpe differ from the benchmark's on the same days?

    Both series are resampled with the *same* stationary-bootstrap indices, so a day the market fell
    is a day both fell in every resample. The p-value centres the bootstrap distribution on zero
    (H0 shifts it by -d̂): p = (1 + #{|d_b - d̂| >= |d̂|}) / (1 + n_boot), the +1 counting the observed
    sample as one of the draws so that p is never 0 (Davison & Hinkley 1997). ``mean_block`` defaults
    to :func:`default_mean_block`. The same inputs and ``seed`` give the same result.
    """
    agent = _as_returns(agent_returns, minimum=MIN_OBSERVATIONS)
    benchmark = _as_returns(benchmark_returns, minimum=MIN_OBSERVATIONS)
    if agent.shape != benchmark.shape:
        raise ValueError(f"agent and benchmark returns must cover the same days: {agent.size} != {benchmark.size}")
    if n_boot < MIN_BOOTSTRAP_SAMPLES:
        raise ValueError(f"n_boot must be >= {MIN_BOOTSTRAP_SAMPLES} for a 95% interval, got {n_boot}")
    block = float(default_mean_block(agent.size)) if mean_block is None else float(mean_block)

    observed = annualised(sharpe_ratio(agent) - sharpe_ratio(benchmark))
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for lo in range(0, n_boot, _BOOTSTRAP_CHUNK):
        hi = min(lo + _BOOTSTRAP_CHUNK, n_boot)
        idx = stationary_bootstrap_indices(agent.size, block, hi - lo, rng)
        boot[lo:hi] = _row_sharpes(agent[idx]) - _row_sharpes(benchmark[idx])
    boot *= math.sqrt(TRADING_DAYS)

    low, high = np.percentile(boot, [2.5, 97.5])
    extreme = int(np.count_nonzero(np.abs(boot - observed) >= abs(observed)))
    return SharpeDifference(
        difference=observed,
        ci95=(float(low), float(high)),
        p_value=(1 + extreme) / (1 + n_boot),
        n_boot=n_boot,
        mean_block=block,
    )


def verdict(
    test: SharpeDifference,
    psr_vs_benchmark: float,
    dsr: float,
    confidence: float = 0.95,
    *,
    benchmark: str = "buy-and-hold",
) -> str:
    """One line a reader can act on: does the agent beat the benchmark at ``confidence``?

    It beats the benchmark only when two things hold at ``confidence``: its Sharpe ratio exceeds the
    benchmark's (a positive difference, its p-value below ``1 - confidence`` and the 95% interval above
    0; an interval that includes 0 is never an edge), **and** its own Sharpe ratio is real after
    deflating for every trial (DSR >= ``confidence``). The second condition is what separates skill
    from a lucky path: on a market that happened to fall, a policy that stayed mostly out has a
    Sharpe ratio "significantly" above buy-and-hold's on that path (the bootstrap resamples the
    path, it cannot resample its drift) while earning nothing itself; that is reported, but not as
    an edge. ``psr_vs_benchmark`` is the PSR of the agent against the benchmark's per-period Sharpe.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    alpha = 1.0 - confidence
    low, high = test.ci95
    level = f"{confidence:.0%}"
    detail = (
        f"annualised Sharpe difference {test.difference:+.2f}, 95% CI [{low:.2f}, {high:.2f}], "
        f"{_format_p(test.p_value)}; PSR vs {benchmark} {psr_vs_benchmark:.2f}, DSR {dsr:.2f}"
    )
    significant = test.p_value < alpha
    if significant and test.difference > 0.0 and low > 0.0:
        if dsr >= confidence:
            return f"beats {benchmark} at {level} confidence ({detail})"
        return (
            f"does not beat {benchmark} at {level} confidence as an edge: its Sharpe ratio is above "
            f"{benchmark}'s, but its own is not significant after deflating for the trials "
            f"(DSR {dsr:.2f} < {confidence:.2f}: a lucky path or a multiple-testing artefact) ({detail})"
        )
    if significant and test.difference < 0.0 and high < 0.0:
        return f"does not beat {benchmark}: it underperforms at {level} confidence ({detail})"
    return f"does not beat {benchmark} at {level} confidence ({detail})"


def _format_p(p: float) -> str:
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def _row_sharpes(samples: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-period Sharpe ratio of each row, 0 where the row is flat (as :func:`sharpe_ratio`)."""
    varied = np.ptp(samples, axis=1) > 0.0
    std = np.where(varied, samples.std(axis=1, ddof=1), 1.0)
    return np.where(varied, samples.mean(axis=1) / std, 0.0)


def _skew_kurtosis(r: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Sample skewness m3/m2^1.5 and non-excess kurtosis m4/m2² (central moments over n)."""
    if np.ptp(r) == 0.0:
        return 0.0, 3.0
    centred = r - r.mean()
    m2 = float(np.mean(centred**2))
    return float(np.mean(centred**3)) / m2**1.5, float(np.mean(centred**4)) / m2**2


def _as_returns(returns: npt.ArrayLike, *, minimum: int) -> npt.NDArray[np.float64]:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"returns must be one-dimensional, got shape {r.shape}")
    if r.size < minimum:
        raise ValueError(f"need at least {minimum} returns, got {r.size}")
    if not np.all(np.isfinite(r)):
        raise ValueError("returns must be finite (no NaN or inf): drop the days without a return first")
    return r
