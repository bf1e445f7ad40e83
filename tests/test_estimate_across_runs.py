"""N_eff across training runs: the random-effects cell means and the width trend, against hand
values and, over simulated sweeps of known support, against the truth they must cover."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from scipy.stats import binomtest, norm
from scipy.stats import t as student_t

from app.estimate.across_runs import (
    LogEstimate,
    cell_means,
    log_scale_variance,
    random_effects_fit,
    ratio_interval,
    width_trend,
)
from app.estimate.simpson import estimate_support


def test_two_runs_of_one_cell_by_hand() -> None:
    # y = 0 and 2 with sampling variance 1 each: the fixed-effect mean 1 leaves Q = 2 on one
    # degree of freedom, and sum w - sum w^2 / sum w = 2 - 1 = 1, so tau^2 = (2 - 1) / 1 = 1.
    # Weights 1 / (1 + 1) each: mean 1, variance 1 / (1/2 + 1/2) = 1; the Knapp-Hartung scale
    # (1/2 * 1 + 1/2 * 1) / 1 = 1. Interval 1 +- t(1, 0.975) * 1.
    fit = random_effects_fit([0.0, 2.0], [1.0, 1.0], np.ones((2, 1)))
    assert fit.tau2 == pytest.approx(1.0)
    assert fit.coef[0] == pytest.approx(1.0)
    assert fit.cov[0, 0] == pytest.approx(1.0)
    value, low, high = fit.interval(0)
    assert (value, high - value) == (pytest.approx(1.0), pytest.approx(12.7062047, rel=1e-6))
    assert low == pytest.approx(1.0 - 12.7062047, rel=1e-6)


def test_agreeing_runs_keep_the_model_variance() -> None:
    # Points exactly on y = 1 + 0.5 x: no heterogeneity (tau^2 = 0), the slope exact, and the
    # Knapp-Hartung scale (0 here) truncated at 1: se(b) = sqrt(v / sum (x - mean x)^2).
    x = np.array([-1.0, 0.0, 1.0, 2.0])
    y = 1 + 0.5 * x
    fit = random_effects_fit(y, [0.04] * 4, np.column_stack([np.ones(4), x]))
    assert fit.tau2 == 0.0 and fit.df == 2
    assert fit.coef == pytest.approx([1.0, 0.5])
    assert fit.cov[1, 1] == pytest.approx(0.04 / 5.0)
    assert fit.p_value(1) == pytest.approx(2 * student_t.sf(0.5 / math.sqrt(0.008), 2))


def test_one_run_per_coefficient_falls_back_to_sampling_noise() -> None:
    fit = random_effects_fit([math.log(100.0)], [0.09], np.ones((1, 1)), level=0.9)
    assert (fit.df, fit.tau2) == (0, 0.0)
    value, low, high = fit.interval(0)
    assert high - value == pytest.approx(norm.ppf(0.95) * 0.3)


def test_the_variance_read_off_an_interval() -> None:
    assert log_scale_variance(100 / math.e, 100 * math.e) == pytest.approx(
        (1 / norm.ppf(0.975)) ** 2
    )
    for low, high in [(0.0, 10.0), (5.0, 4.0), (1.0, math.inf)]:
        with pytest.raises(ValueError):
            log_scale_variance(low, high)


def test_bad_designs_are_refused() -> None:
    with pytest.raises(ValueError, match="identify"):
        random_effects_fit([1.0, 2.0], [1.0, 1.0], np.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="positive"):
        random_effects_fit([1.0, 2.0], [1.0, 0.0], np.ones((2, 1)))
    with pytest.raises(ValueError, match="level"):
        random_effects_fit([1.0], [1.0], np.ones((1, 1)), level=1.0)
    one_width = [LogEstimate("a", 1.0, 1.0, 0.1)] * 3
    with pytest.raises(ValueError, match="two widths"):
        width_trend(one_width)
    with pytest.raises(ValueError, match="no run"):
        cell_means([])


def test_cells_keep_their_order_and_a_geometric_mean() -> None:
    runs = [
        LogEstimate("b", 2.0, math.log(400.0), 0.05),
        LogEstimate("a", 1.0, math.log(100.0), 0.05),
        LogEstimate("b", 2.0, math.log(400.0), 0.05),
        LogEstimate("a", 1.0, math.log(100.0), 0.05),
    ]
    means = cell_means(runs)
    assert [(c.cell, c.runs) for c in means.cells] == [("b", 2), ("a", 2)]
    assert [c.n_eff for c in means.cells] == [pytest.approx(400.0), pytest.approx(100.0)]
    assert means.tau == 0.0 and means.df == 2
    trend = width_trend(runs)
    assert trend.exponent == pytest.approx(2.0)  # 100 -> 400 as the width doubles
    assert trend.n_eff_at_width_1 == pytest.approx(100.0)


def _simulated_sweep(
    rng: np.random.Generator,
    widths: Sequence[float],
    seeds: int,
    exponent: float,
    seed_sd: float,
    expected_d: float,
    n_eff_at_1: float = 2000.0,
) -> list[LogEstimate]:
    """A sweep of uniform generators whose support is n_eff_at_1 * width^b times a seed's
    log-normal luck, each audited by an oracle through the estimator's own interval."""
    runs = []
    for width in widths:
        centre = n_eff_at_1 * width**exponent
        n = int(math.sqrt(2 * expected_d * centre)) + 1
        for _ in range(seeds):
            support = max(2, round(centre * math.exp(seed_sd * rng.standard_normal())))
            counts = np.bincount(rng.integers(0, support, n))
            e = estimate_support(n, counts[counts > 1].tolist())
            if e.n_eff is None or e.n_eff_high is None:
                continue  # no duplicate: the service keeps such a run out and says so
            variance = log_scale_variance(e.n_eff_low, e.n_eff_high)
            runs.append(LogEstimate(width, width, math.log(e.n_eff), variance))
    return runs


@pytest.mark.parametrize(
    ("widths", "seeds", "exponent", "seed_sd"),
    [((0.5, 1.0, 2.0), 3, 0.8, 0.3), ((0.5, 1.0, 2.0, 4.0), 2, 1.0, 0.5)],
)
def test_intervals_cover_the_truth_over_simulated_sweeps(
    widths: tuple[float, ...], seeds: int, exponent: float, seed_sd: float
) -> None:
    """The exponent's interval covers b, and each cell's covers n_eff_at_1 * width^b (the
    median of its seeds' N_eff), at a rate a binomial test cannot tell from 95% or above;
    without the between-seed variance (a fixed-effect fit) the exponent's coverage collapses."""
    rng = np.random.default_rng(20261206)
    reps = 400
    trend_hits = cell_hits = cells = fixed_hits = 0
    for _ in range(reps):
        runs = _simulated_sweep(rng, widths, seeds, exponent, seed_sd, expected_d=20)
        trend = width_trend(runs)
        trend_hits += trend.low <= exponent <= trend.high
        for cell in cell_means(runs).cells:
            truth = 2000.0 * float(cell.cell) ** exponent  # type: ignore[arg-type]
            cell_hits += cell.n_eff_low <= truth <= cell.n_eff_high
            cells += 1
        design = np.array([[1.0, math.log(r.width)] for r in runs])
        y = np.array([r.log_n_eff for r in runs])
        w = 1 / np.array([r.variance for r in runs])
        cov = np.linalg.inv(design.T @ (w[:, None] * design))
        b = (cov @ (design.T @ (w * y)))[1]
        fixed_hits += abs(b - exponent) <= 1.96 * math.sqrt(cov[1, 1])
    for hits, total in [(trend_hits, reps), (cell_hits, cells)]:
        assert binomtest(hits, total, 0.95, alternative="less").pvalue > 0.01, (hits, total)
        assert hits / total < 0.995, (hits, total)  # and not vacuous: infinitely wide covers
    assert binomtest(fixed_hits, reps, 0.95, alternative="less").pvalue < 1e-4, fixed_hits


def test_a_ratio_of_two_audits_by_hand() -> None:
    z = norm.ppf(0.975)
    a = (200.0, 200 * math.exp(-z * 0.2), 200 * math.exp(z * 0.2))  # se 0.2 on the log scale
    b = (100.0, 100 * math.exp(-z * 0.15), 100 * math.exp(z * 0.15))  # se 0.15
    value, low, high = ratio_interval(a, b)
    assert value == pytest.approx(2.0)
    assert (low, high) == (
        pytest.approx(2 * math.exp(-z * 0.25)),  # sqrt(0.2^2 + 0.15^2) = 0.25
        pytest.approx(2 * math.exp(z * 0.25)),
    )


def test_the_ratio_of_two_oracle_audits_covers_the_true_ratio() -> None:
    rng = np.random.default_rng(7)
    hits, reps = 0, 400
    for _ in range(reps):
        estimates = []
        for support in (1000, 2000):
            n = int(math.sqrt(2 * 15 * support))
            counts = np.bincount(rng.integers(0, support, n))
            e = estimate_support(n, counts[counts > 1].tolist())
            assert e.n_eff is not None and e.n_eff_high is not None
            estimates.append((e.n_eff, e.n_eff_low, e.n_eff_high))
        _value, low, high = ratio_interval(estimates[1], estimates[0])
        hits += low <= 2.0 <= high
    assert binomtest(hits, reps, 0.95, alternative="less").pvalue > 0.01, hits
    assert hits / reps < 0.995, hits
