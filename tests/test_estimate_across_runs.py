"""N_eff across training runs: the Poisson-lognormal cell means and width trend, against hand
values, numerical integration and, over simulated sweeps of known support, against the truth
they must cover."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import binomtest, norm
from scipy.stats import t as student_t

from app.estimate.across_runs import (
    PoolCount,
    cell_means,
    log_scale_variance,
    ratio_interval,
    width_trend,
)
from app.estimate.poisson_lognormal import _terms, poisson_lognormal_fit
from app.estimate.simpson import estimate_support


def test_one_run_per_coefficient_is_its_own_poisson_interval() -> None:
    # k = 20 duplicate pairs at exposure 20,000: N_eff-hat = 1,000, and the Poisson information
    # of log N at the fit is k = 20; no spread between seeds is identifiable (df 0).
    means = cell_means([PoolCount("a", 1.0, 20.0, 20_000.0)], level=0.9)
    (cell,) = means.cells
    assert (means.df, means.tau) == (0, 0.0)
    half = norm.ppf(0.95) / math.sqrt(20)
    assert cell.n_eff == pytest.approx(1000.0)
    assert (cell.n_eff_low, cell.n_eff_high) == (
        pytest.approx(1000 * math.exp(-half)),
        pytest.approx(1000 * math.exp(half)),
    )


def test_counts_at_their_means_leave_no_spread() -> None:
    # Counts exactly t / N on log N = 5 + 0.5 log w: no heterogeneity (tau = 0), the line
    # exact, and the covariance the inverse Poisson information (X' diag(k) X)^-1.
    log_w = np.array([-1.0, 0.0, 1.0, 2.0])
    k = np.array([30.0, 10.0, 40.0, 20.0])
    x = np.column_stack([np.ones(4), log_w])
    fit = poisson_lognormal_fit(k, k * np.exp(5 + 0.5 * log_w), x)
    assert fit.tau2 == 0.0 and fit.df == 2
    assert fit.coef == pytest.approx([5.0, 0.5])
    assert fit.cov == pytest.approx(np.linalg.inv(x.T @ (k[:, None] * x)))
    stat = 0.5 / math.sqrt(fit.cov[1, 1])
    assert fit.p_value(1) == pytest.approx(2 * student_t.sf(stat, 2))


def test_spread_between_seeds_is_found_and_widens_the_interval() -> None:
    # Two seeds per cell that disagree far beyond their Poisson noise (k = 100 each).
    k = np.full(4, 100.0)
    n_eff = np.array([500.0, 2000.0, 1000.0, 4000.0])
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    fit = poisson_lognormal_fit(k, k * n_eff, x)
    # log N differs by ln 4 = 1.39 within each cell: tau ~ 0.98 (the REML moment ~ (1.39)^2 / 2
    # less the sampling variance 1 / 100).
    assert math.sqrt(fit.tau2) == pytest.approx(math.sqrt(math.log(4) ** 2 / 2 - 0.01), rel=0.05)
    # Geometric means, up to the skew of a Poisson likelihood on the log scale (~1 / (2k)).
    assert math.exp(fit.coef[0]) == pytest.approx(1000.0, rel=0.01)
    assert math.exp(fit.coef[1]) == pytest.approx(2000.0, rel=0.01)
    assert fit.cov[0, 0] == pytest.approx((fit.tau2 + 0.01) / 2, rel=0.05)


@pytest.mark.parametrize(
    ("k", "t", "eta", "tau"),
    [(20.0, 2e4, 6.9, 0.3), (200.0, 2e5, 7.0, 1.0), (0.0, 5e3, 8.0, 0.5), (3.0, 1e3, 5.0, 2.5)],
)
def test_the_marginal_likelihood_matches_numerical_integration(
    k: float, t: float, eta: float, tau: float
) -> None:
    """Adaptive quadrature, including a Poisson likelihood (k = 200) far narrower than tau,
    where fixed Gauss-Hermite nodes fail, and an empty pool."""
    offset = k * math.log(k) - k if k else 0.0

    def integrand(u: float) -> float:
        log_rate = math.log(t) - eta - u
        return math.exp(k * log_rate - math.exp(log_rate) - offset - u * u / (2 * tau * tau))

    mode = math.log(t / max(k, 1.0)) - eta
    value = quad(integrand, -12 * tau - 5, 12 * tau + 5, points=[0.0, mode], limit=500)[0]
    expected = -math.log(value / (tau * math.sqrt(2 * math.pi))) - offset
    got = _terms(np.array([eta]), tau, np.array([k]), np.log([t]), np.ones((1, 1))).nll
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_tau_zero_is_the_limit_of_a_small_tau() -> None:
    args = (np.array([7.0]), np.array([50.0]), np.log([1e5]), np.ones((1, 1)))
    at_zero = _terms(args[0], 0.0, *args[1:])
    near_zero = _terms(args[0], 1e-6, *args[1:])
    assert near_zero.nll == pytest.approx(at_zero.nll, abs=1e-6)
    assert near_zero.grad == pytest.approx(at_zero.grad, abs=1e-4)
    assert near_zero.hess == pytest.approx(at_zero.hess, rel=1e-4)


def test_the_count_read_off_an_interval() -> None:
    z = norm.ppf(0.975)
    run = PoolCount.from_interval(
        "a", 1.0, 1000.0, 1000 * math.exp(-z * 0.2), 1000 * math.exp(z * 0.2), 0.95
    )
    assert run.count == pytest.approx(25.0)  # 1 / 0.2^2
    assert run.exposure == pytest.approx(25_000.0)
    empty = PoolCount.from_empty_pool("a", 1.0, 10_000.0, 0.95)
    assert (empty.count, empty.has_duplicates) == (0.0, False)
    # P(no duplicate | N_eff = 10,000) = exp(-exposure / 10,000) = 5%
    assert math.exp(-empty.exposure / 10_000.0) == pytest.approx(0.05)


def test_the_variance_read_off_an_interval() -> None:
    assert log_scale_variance(100 / math.e, 100 * math.e) == pytest.approx(
        (1 / norm.ppf(0.975)) ** 2
    )
    for low, high in [(0.0, 10.0), (5.0, 4.0), (1.0, math.inf)]:
        with pytest.raises(ValueError):
            log_scale_variance(low, high)


def test_bad_designs_are_refused() -> None:
    with pytest.raises(ValueError, match="identify"):
        poisson_lognormal_fit(np.ones(2), np.ones(2), np.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="identify"):  # empty pools alone bound N from below
        poisson_lognormal_fit(np.zeros(3), np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match="exposures"):
        poisson_lognormal_fit(np.ones(2), np.array([1.0, 0.0]), np.ones((2, 1)))
    with pytest.raises(ValueError, match="level"):
        poisson_lognormal_fit(np.ones(1), np.ones(1), np.ones((1, 1)), level=1.0)
    with pytest.raises(ValueError, match="no width"):
        PoolCount.from_interval("a", 1.0, 10.0, 10.0, 10.0, 0.95)
    one_width = [PoolCount("a", 1.0, 10.0, 1000.0)] * 3
    with pytest.raises(ValueError, match="two widths"):
        width_trend(one_width)
    empty_at_2 = [*one_width, PoolCount("b", 2.0, 0.0, 1000.0)]
    with pytest.raises(ValueError, match="two widths"):  # duplicates at one width only
        width_trend(empty_at_2)
    with pytest.raises(ValueError, match="cell 'b'"):
        cell_means(empty_at_2)
    with pytest.raises(ValueError, match="no run"):
        cell_means([])


def test_cells_keep_their_order_and_a_geometric_mean() -> None:
    runs = [
        PoolCount("b", 2.0, 20.0, 20 * 400.0),
        PoolCount("a", 1.0, 20.0, 20 * 100.0),
        PoolCount("b", 2.0, 20.0, 20 * 400.0),
        PoolCount("a", 1.0, 20.0, 20 * 100.0),
    ]
    means = cell_means(runs)
    assert [(c.cell, c.runs) for c in means.cells] == [("b", 2), ("a", 2)]
    assert [c.n_eff for c in means.cells] == [pytest.approx(400.0), pytest.approx(100.0)]
    assert means.tau == 0.0 and means.df == 2
    trend = width_trend(runs)
    assert trend.exponent == pytest.approx(2.0)  # 100 -> 400 as the width doubles
    assert trend.n_eff_at_width_1 == pytest.approx(100.0)
    assert trend.empty_pools == 0


def test_runs_that_disagree_beyond_any_seed_spread_say_so() -> None:
    # N_eff 10, 1,000 and 1,000,000 in one cell, each well measured: log N_eff spreads by 4.6
    # per step, beyond the e the model allows between seeds.
    runs = [PoolCount("a", 1.0, 100.0, 100.0 * n) for n in (10.0, 1e3, 1e6)]
    means = cell_means(runs)
    assert means.tau_at_limit and means.tau == pytest.approx(math.e)
    calm = cell_means([PoolCount("a", 1.0, 100.0, 100.0 * n) for n in (900.0, 1e3, 1.1e3)])
    assert not calm.tau_at_limit


def test_an_empty_pool_pulls_the_line_up_and_leaving_it_out_would_not() -> None:
    runs = [PoolCount(w, w, 20.0, 20 * 1000.0 * w) for w in (1.0, 1.0, 2.0, 2.0) for _ in range(1)]
    without = width_trend(runs)
    with_empty = width_trend([*runs, PoolCount(4.0, 4.0, 0.0, 20_000.0)])
    assert without.exponent == pytest.approx(1.0)
    # No duplicate among 20,000 pairs' worth of exposure says N_eff at width 4 is well above
    # 20,000 / 3: larger than the line's 4,000 predicts, so the slope rises.
    assert with_empty.exponent > without.exponent + 0.1
    assert with_empty.empty_pools == 1 and with_empty.runs == 5


def _simulated_sweep(
    rng: np.random.Generator,
    widths: Sequence[float],
    seeds: int,
    exponent: float,
    seed_sd: float,
    expected_d: float,
    fixed_n: bool = False,
    n_eff_at_1: float = 2000.0,
) -> list[PoolCount]:
    """A sweep of uniform generators whose support is n_eff_at_1 * width^b times a seed's
    log-normal luck, each audited by an oracle through the estimator's own interval; with
    `fixed_n` every width gets width 1's pool, so the widest get the fewest duplicates."""
    runs = []
    for width in widths:
        centre = n_eff_at_1 * width**exponent
        n = int(math.sqrt(2 * expected_d * (n_eff_at_1 if fixed_n else centre))) + 1
        for _ in range(seeds):
            support = max(2, round(centre * math.exp(seed_sd * rng.standard_normal())))
            counts = np.bincount(rng.integers(0, support, n))
            e = estimate_support(n, counts[counts > 1].tolist())
            if e.n_eff is None or e.n_eff_high is None:
                runs.append(PoolCount.from_empty_pool(width, width, e.n_eff_low, e.level))
            else:
                runs.append(
                    PoolCount.from_interval(
                        width, width, e.n_eff, e.n_eff_low, e.n_eff_high, e.level
                    )
                )
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
    without the between-seed variance (tau = 0: a plain Poisson fit) the exponent's coverage
    collapses."""
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
        k = np.array([r.count for r in runs])
        log_n = np.log(np.array([r.exposure for r in runs]) / k)
        cov = np.linalg.inv(design.T @ (k[:, None] * design))
        b = (cov @ (design.T @ (k * log_n)))[1]
        fixed_hits += abs(b - exponent) <= 1.96 * math.sqrt(cov[1, 1])
    for hits, total in [(trend_hits, reps), (cell_hits, cells)]:
        assert binomtest(hits, total, 0.95, alternative="less").pvalue > 0.01, (hits, total)
        assert hits / total < 0.995, (hits, total)  # and not vacuous: infinitely wide covers
    assert binomtest(fixed_hits, reps, 0.95, alternative="less").pvalue < 1e-4, fixed_hits


def test_empty_pools_keep_the_exponent_unbiased() -> None:
    """One pool size for the whole sweep (E[D] = 6 at width 1, 1.5 at width 4): about 7% of
    pools hold no duplicate, all at the largest N_eff. With them in, b is unbiased and covered;
    left out (the figure's old way, a mean of log N_eff over the pools with duplicates) it
    leans low."""
    rng = np.random.default_rng(20261207)
    reps, exponent = 300, 1.0
    hits, fitted, left_out = 0, [], []
    for _ in range(reps):
        runs = _simulated_sweep(rng, (0.5, 1.0, 2.0, 4.0), 3, exponent, 0.3, 6, fixed_n=True)
        trend = width_trend(runs)
        hits += trend.low <= exponent <= trend.high
        fitted.append(trend.exponent)
        kept = [r for r in runs if r.has_duplicates]
        design = np.array([[1.0, math.log(r.width)] for r in kept])
        log_n = np.log([r.exposure / r.count for r in kept])
        left_out.append(np.linalg.lstsq(design, log_n, rcond=None)[0][1])
    assert binomtest(hits, reps, 0.95, alternative="less").pvalue > 0.01, hits
    se = float(np.std(fitted)) / math.sqrt(reps)
    assert abs(float(np.mean(fitted)) - exponent) < 3 * se, (np.mean(fitted), se)
    assert float(np.mean(left_out)) < exponent - 5 * float(np.std(left_out)) / math.sqrt(reps)


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
