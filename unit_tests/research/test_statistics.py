"""Statistics of honest evaluation against published worked examples, hand-derived numbers and Monte
Carlo checks of what each number claims to mean.

References:
- Bailey, D. H. & López de Prado, M. (2012). "The Sharpe Ratio Efficient Frontier". Journal of Risk
  15(2). PSR = Φ((SR - SR*)·√(n-1) / √(1 - skew·SR + (kurt - 1)/4·SR²)), SR per period, kurt non-excess.
- Bailey, D. H. & López de Prado, M. (2014). "The Deflated Sharpe Ratio". Journal of Portfolio
  Management 40(5), 94-107. Numerical example: E[max SR] ≈ 0.1132 (daily), DSR ≈ 0.9004.
- Politis, D. N. & Romano, J. P. (1994). "The Stationary Bootstrap". JASA 89(428), 1303-1313.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from finrl.performance import sharpe_ratio as nav_sharpe_ratio
from finrl.research.statistics import (
    SharpeDifference,
    annualised,
    default_mean_block,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    psr_from_moments,
    sharpe_difference_test,
    sharpe_ratio,
    stationary_bootstrap_indices,
    verdict,
)

pytestmark = pytest.mark.unit

PHI = NormalDist().cdf


# ---- Sharpe ratio


def test_sharpe_ratio_is_per_period_with_ddof_1_and_zero_when_flat() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0])
    assert sharpe_ratio(r) == pytest.approx(r.mean() / r.std(ddof=1), rel=1e-12)
    assert sharpe_ratio(np.full(10, 0.001)) == 0.0
    assert sharpe_ratio([0.01]) == 0.0
    assert annualised(0.1) == pytest.approx(0.1 * math.sqrt(252))
    assert annualised(0.1, periods=12) == pytest.approx(0.1 * math.sqrt(12))


def test_annualised_sharpe_agrees_with_the_nav_metrics_of_reports() -> None:
    """The same days give the same Sharpe here and in finrl.performance (empyrical, from the NAV)."""
    r = np.random.default_rng(3).normal(0.0005, 0.01, 300)
    nav = pd.Series(100.0 * np.cumprod(np.concatenate([[1.0], 1.0 + r])))
    assert annualised(sharpe_ratio(r)) == pytest.approx(nav_sharpe_ratio(nav), rel=1e-9)


# ---- PSR


def test_psr_matches_a_hand_derived_example() -> None:
    """A negatively skewed, fat-tailed monthly track record, worked by hand with the 2012 equation.

    SR = 0.458 a month (≈ 1.59 annualised: 0.458·√12), n = 24 months, skew = -2.448, kurt = 10.164, SR* = 0:
      numerator   (0.458 - 0)·√23                                   = 0.458·4.79583 = 2.19649
      variance    1 - (-2.448)(0.458) + (10.164 - 1)/4·0.458²        = 1 + 1.12118 + 2.291·0.209764
                                                                     = 2.60175, √ = 1.61300
      z = 2.19649 / 1.61300 = 1.36175, PSR = Φ(1.36175) ≈ 0.9134.
    Read with normal moments (skew = 0, kurt = 3) the same record looks far surer:
      z = 2.19649 / √(1 + 0.5·0.209764) = 2.19649 / 1.05118 = 2.08955, PSR ≈ 0.9817.
    """
    assert psr_from_moments(0.458, 0.0, 24, -2.448, 10.164) == pytest.approx(0.9134, abs=1e-4)
    assert psr_from_moments(0.458, 0.0, 24, 0.0, 3.0) == pytest.approx(0.9817, abs=1e-4)
    # SR equal to the benchmark: a coin toss whatever the moments
    assert psr_from_moments(0.2, 0.2, 50, -1.0, 6.0) == pytest.approx(0.5)


def test_psr_from_returns_uses_sample_skewness_and_non_excess_kurtosis() -> None:
    r = np.random.default_rng(11).standard_exponential(400) * -0.01 + 0.012  # skewed left
    skew, kurt = scipy.stats.skew(r), scipy.stats.kurtosis(r, fisher=False)  # an independent estimator
    assert skew < -1.0 and kurt > 4.0  # far from normal (an exponential's are -2 and 9)
    sr = r.mean() / r.std(ddof=1)
    z = (sr - 0.05) * math.sqrt(len(r) - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    assert probabilistic_sharpe_ratio(r, benchmark_sharpe=0.05) == pytest.approx(PHI(z), rel=1e-12)


def test_psr_standard_error_matches_simulated_skewed_returns() -> None:
    """Monte Carlo: the PSR's denominator is the true spread of the Sharpe estimate, skew sign included.

    Returns a + b·(1 - Exp(1)): skewness -2, kurtosis 9, per-period SR 0.2. The 2012 standard error is
    √((1 - skew·SR + (kurt-1)/4·SR²)/(n-1)) = √(1.48/(n-1)); the normal-returns formula would give √(1.02/(n-1)),
    about 17% too small. 2,000 track records of 1,000 returns pin the spread to about 2%.
    """
    rng = np.random.default_rng(2012)
    n, sims, sr_true = 1000, 2000, 0.2
    draws = 0.01 * (1.0 - rng.standard_exponential((sims, n))) + 0.01 * sr_true
    estimates = draws.mean(axis=1) / draws.std(axis=1, ddof=1)
    expected = math.sqrt((1 - (-2.0) * sr_true + (9.0 - 1.0) / 4.0 * sr_true**2) / (n - 1))
    assert estimates.mean() == pytest.approx(sr_true, abs=0.005)
    assert estimates.std(ddof=1) == pytest.approx(expected, rel=0.05)
    assert estimates.std(ddof=1) > 1.1 * math.sqrt((1 + 0.5 * sr_true**2) / (n - 1))


def test_psr_is_calibrated_under_the_null() -> None:
    """Monte Carlo: when the true Sharpe equals SR*, PSR exceeds 0.95 in about 5% of track records.

    4,000 normal track records of 500 days with true per-period SR 0.05 = SR*: the share with
    PSR > 0.95 (a false claim of beating SR* at 95%) is 5% ± 1.1% (three binomial standard errors).
    """
    rng = np.random.default_rng(7)
    sims, n, sr_star = 4000, 500, 0.05
    draws = rng.normal(sr_star * 0.01, 0.01, (sims, n))
    psr = np.array([probabilistic_sharpe_ratio(row, benchmark_sharpe=sr_star) for row in draws])
    assert np.mean(psr > 0.95) == pytest.approx(0.05, abs=0.011)
    assert np.mean(psr) == pytest.approx(0.5, abs=0.02)


def test_psr_refuses_too_few_or_broken_returns() -> None:
    with pytest.raises(ValueError, match="at least 3 returns"):
        probabilistic_sharpe_ratio([0.01, 0.02])
    with pytest.raises(ValueError, match="finite"):
        probabilistic_sharpe_ratio([0.01, float("nan"), 0.02])
    with pytest.raises(ValueError, match="one-dimensional"):
        probabilistic_sharpe_ratio(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="not the moments"):
        psr_from_moments(1.0, 0.0, 100, 3.0, 2.0)  # kurtosis < 1 + skew²


# ---- expected maximum Sharpe and DSR


def test_dsr_reproduces_the_2014_paper_numerical_example() -> None:
    """Bailey & López de Prado (2014), numerical example.

    N = 100 independent trials whose annualised Sharpe ratios have variance V = 1/2; the chosen one has
    an annualised SR of 2.5 over T = 1,250 daily returns (five years of 250 days) with skewness -3 and
    kurtosis 10. In daily units V/250 and SR = 2.5/√250 = 0.158114. The paper reports
    E[max SR] ≈ 0.1132 a day (≈ 1.79 annualised: 0.1132·√250) and DSR ≈ 0.9004:
      E[max] = √(0.5/250)·(0.42278·Φ⁻¹(0.99) + 0.57722·Φ⁻¹(1 - 1/(100e))) = 0.044721·2.53060 = 0.113172
      z = (0.158114 - 0.113172)·√1249 / √(1 + 3·0.158114 + 9/4·0.158114²) = 1.58831/1.23720 = 1.28382
      DSR = Φ(1.28382) = 0.90040
    """
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert sr0 * math.sqrt(250) == pytest.approx(1.79, abs=5e-3)
    dsr = psr_from_moments(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_dsr_with_one_trial_is_the_psr_against_zero() -> None:
    r = np.random.default_rng(5).normal(0.0006, 0.01, 750)
    assert expected_max_sharpe(1, 0.01) == 0.0
    assert deflated_sharpe_ratio(r, n_trials=1, sharpe_variance=0.5 / 252) == probabilistic_sharpe_ratio(r, 0.0)


def test_dsr_falls_as_more_configurations_are_tried() -> None:
    r = np.random.default_rng(6).normal(0.0008, 0.01, 1250)
    trials = [1, 2, 5, 10, 100, 1000]
    maxima = [expected_max_sharpe(n, 0.5 / 252) for n in trials]
    dsrs = [deflated_sharpe_ratio(r, n, 0.5 / 252) for n in trials]
    assert all(a < b for a, b in itertools.pairwise(maxima))
    assert all(a > b for a, b in itertools.pairwise(dsrs))
    assert expected_max_sharpe(100, 0.0) == 0.0  # identical trials: nothing to select


def test_expected_max_sharpe_matches_simulated_maxima() -> None:
    """Monte Carlo: the mean of the largest of N null Sharpe estimates is close to E[max] (within 3%)."""
    rng = np.random.default_rng(14)
    variance = 0.5 / 252
    for n_trials in (10, 100):
        maxima = rng.normal(0.0, math.sqrt(variance), (20_000, n_trials)).max(axis=1)
        assert maxima.mean() == pytest.approx(expected_max_sharpe(n_trials, variance), rel=0.03)


@pytest.mark.parametrize("n_trials", [0, -3, 2.5, True])
def test_dsr_refuses_a_trial_count_that_is_not_a_count(n_trials: object) -> None:
    with pytest.raises(ValueError, match="n_trials"):
        deflated_sharpe_ratio(np.linspace(-0.01, 0.02, 30), n_trials, 0.001)  # type: ignore[arg-type]


def test_dsr_refuses_a_negative_variance() -> None:
    with pytest.raises(ValueError, match="sharpe_variance"):
        expected_max_sharpe(10, -0.1)


# ---- stationary bootstrap


def test_bootstrap_indices_are_wrapped_blocks_of_the_requested_mean_length() -> None:
    n, mean_block = 2500, 14.0
    idx = stationary_bootstrap_indices(n, mean_block, 400, np.random.default_rng(1))
    assert idx.shape == (400, n)
    assert idx.min() >= 0 and idx.max() < n
    continues = idx[:, 1:] == (idx[:, :-1] + 1) % n
    assert np.any(idx[:, 1:][continues] == 0)  # blocks wrap from the last day to the first
    # a new block starts before each day with probability 1/mean_block (and lands on the next day 1/n)
    breaks = np.count_nonzero(~continues) + idx.shape[0]
    assert idx.size / breaks == pytest.approx(mean_block, rel=0.03)
    # every day is drawn about equally often
    counts = np.bincount(idx.ravel(), minlength=n)
    assert counts.mean() == 400 and counts.std() / counts.mean() < 0.5


def test_bootstrap_with_unit_blocks_is_the_iid_bootstrap() -> None:
    idx = stationary_bootstrap_indices(1000, 1.0, 50, np.random.default_rng(2))
    continues = np.mean(idx[:, 1:] == (idx[:, :-1] + 1) % 1000)
    assert continues < 0.01  # only by chance (1/n)


def test_bootstrap_refuses_blocks_shorter_than_a_day() -> None:
    with pytest.raises(ValueError, match="mean_block"):
        stationary_bootstrap_indices(100, 0.5, 10, np.random.default_rng(0))


def _planted_edge(seed: int, days: int = 2500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    benchmark = rng.normal(0.0004, 0.011, days)
    agent = benchmark + 0.0004 + rng.normal(0.0, 0.002, days)  # +10% a year, little extra risk
    return agent, benchmark


def test_a_planted_edge_is_detected() -> None:
    agent, benchmark = _planted_edge(seed=21)
    test = sharpe_difference_test(agent, benchmark, seed=0)
    assert test.difference == pytest.approx(annualised(sharpe_ratio(agent) - sharpe_ratio(benchmark)))
    assert test.difference > 0.3
    assert test.ci95[0] > 0.0 and test.ci95[0] < test.difference < test.ci95[1]
    assert test.p_value < 0.05
    assert test.n_boot == 2000 and test.mean_block == default_mean_block(2500) == 14


def test_equal_sharpe_series_are_rarely_called_different() -> None:
    """Two independent series with the same true Sharpe: p < 0.05 in about 5% of data sets.

    50 data sets of 1,000 days: at most 5 false alarms (2.5 expected; 6 or more has probability 4% for
    a test of exact size 5%), and p-values spread evenly (mean near 1/2, no pile-up below 0.1).
    """
    p_values = np.array(
        [
            sharpe_difference_test(
                *np.random.default_rng(1000 + seed).normal(0.0004, 0.01, (2, 1000)), n_boot=400, seed=seed
            ).p_value
            for seed in range(50)
        ]
    )
    assert np.count_nonzero(p_values < 0.05) <= 5
    assert np.count_nonzero(p_values < 0.10) <= 10
    assert 0.4 < p_values.mean() < 0.6


def test_the_bootstrap_is_deterministic_for_a_seed() -> None:
    agent, benchmark = _planted_edge(seed=4, days=600)
    first = sharpe_difference_test(agent, benchmark, n_boot=300, seed=9)
    assert sharpe_difference_test(agent, benchmark, n_boot=300, seed=9) == first
    other = sharpe_difference_test(agent, benchmark, n_boot=300, seed=10)
    assert other.difference == first.difference and other.ci95 != first.ci95


def test_the_bootstrap_resamples_paired_days() -> None:
    """Identical series differ by exactly 0 in every resample: the same days are drawn for both."""
    r = np.random.default_rng(8).normal(0.0005, 0.01, 500)
    test = sharpe_difference_test(r, r.copy(), n_boot=200, mean_block=5)
    assert test.difference == 0.0 and test.ci95 == (0.0, 0.0) and test.p_value == 1.0
    assert test.mean_block == 5.0


def test_the_bootstrap_refuses_mismatched_or_tiny_inputs() -> None:
    with pytest.raises(ValueError, match="same days"):
        sharpe_difference_test(np.zeros(10), np.zeros(11))
    with pytest.raises(ValueError, match="n_boot"):
        sharpe_difference_test(np.zeros(10), np.zeros(10), n_boot=10)


# ---- verdict


def test_verdict_when_the_agent_does_not_beat_the_benchmark() -> None:
    test = SharpeDifference(difference=-0.31, ci95=(-0.90, 0.25), p_value=0.29, n_boot=2000, mean_block=14)
    line = verdict(test, psr_vs_benchmark=0.22, dsr=0.05)
    assert line.startswith("does not beat buy-and-hold at 95% confidence (")
    assert "Sharpe difference -0.31, 95% CI [-0.90, 0.25], p = 0.29" in line
    assert "artefact" not in line


def test_verdict_when_the_agent_beats_the_benchmark() -> None:
    test = SharpeDifference(difference=0.62, ci95=(0.20, 1.05), p_value=0.004, n_boot=2000, mean_block=14)
    line = verdict(test, psr_vs_benchmark=0.99, dsr=0.97)
    assert line.startswith("beats buy-and-hold at 95% confidence (")
    assert "+0.62, 95% CI [0.20, 1.05], p = 0.004" in line and "DSR 0.97" in line
    assert "artefact" not in line


def test_verdict_claims_no_edge_when_the_agents_own_sharpe_is_not_real() -> None:
    """Above buy-and-hold on a falling path, but its own Sharpe fails the deflated test: not an edge."""
    test = SharpeDifference(difference=0.85, ci95=(0.14, 1.58), p_value=0.016, n_boot=2000, mean_block=10)
    line = verdict(test, psr_vs_benchmark=0.95, dsr=0.44)
    assert line.startswith("does not beat buy-and-hold at 95% confidence as an edge: its Sharpe ratio is above")
    assert "DSR 0.44 < 0.95: a lucky path or a multiple-testing artefact" in line and "+0.85" in line
    assert verdict(test, psr_vs_benchmark=0.95, dsr=0.95).startswith("beats buy-and-hold at 95% confidence (")


def test_verdict_never_claims_an_edge_the_interval_includes_zero() -> None:
    test = SharpeDifference(difference=0.40, ci95=(-0.01, 0.80), p_value=0.04, n_boot=2000, mean_block=14)
    assert verdict(test, 0.97, 0.96).startswith("does not beat buy-and-hold")
    stricter = SharpeDifference(difference=0.40, ci95=(0.02, 0.80), p_value=0.03, n_boot=2000, mean_block=14)
    assert verdict(stricter, 0.97, 0.96, confidence=0.99).startswith("does not beat buy-and-hold at 99%")


def test_verdict_names_a_significant_underperformance() -> None:
    test = SharpeDifference(difference=-0.8, ci95=(-1.3, -0.3), p_value=0.0005, n_boot=2000, mean_block=14)
    line = verdict(test, 0.01, 0.0)
    assert line.startswith("does not beat buy-and-hold: it underperforms at 95% confidence")
    assert "p < 0.001" in line
