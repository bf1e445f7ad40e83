"""Secondary figures against hand computations and independent reference paths: the exact pool
batch curve, the uniform-model batch MLE against brute force, Chao1, and the Vendi score."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import chi2

from app.estimate import (
    chao1,
    chao1_from_pool,
    pool_batch_curve,
    pool_batch_view,
    uniform_batch_collision,
    uniform_batch_mle,
    vendi_scores,
)

# --- the paper's batch curve from the pool -------------------------------------------------------


def _exact_none(n: int, sizes: list[int], s: int) -> Fraction:
    """Batches of s with at most one sample per cluster, over all C(n, s) batches, by DP."""
    all_sizes = sizes + [1] * (n - sum(sizes))
    e = [1] + [0] * s
    for size in all_sizes:
        for k in range(s, 0, -1):
            e[k] += e[k - 1] * size
    return Fraction(e[s], math.comb(n, s))


@pytest.mark.parametrize(("n", "sizes"), [(14, [4, 3, 2]), (30, [2] * 6), (9, [9]), (12, [])])
def test_pool_curve_is_exact(n: int, sizes: list[int]) -> None:
    s_values = np.arange(0, n + 1)
    got = pool_batch_curve(n, sizes, s_values)
    want = [float(1 - _exact_none(n, sizes, int(s))) for s in s_values]
    assert got.tolist() == pytest.approx(want, abs=1e-12)


def test_pool_curve_in_a_large_pool_neither_overflows_nor_underflows() -> None:
    # 400 clusters of 3 in a pool of 10^5: e_k overflows float64 without rescaling.
    sizes = [3] * 400
    got = pool_batch_curve(100_000, sizes, [2, 50, 400, 2000, 20_000])
    assert got[0] == pytest.approx(400 * 3 / math.comb(100_000, 2), rel=1e-9)
    assert np.all(np.diff(got) > 0) and got[-1] == pytest.approx(1.0, abs=1e-9)
    # About 1200 C(2000,2) / C(10^5,2) = 0.48 colliding pairs: nearly Poisson.
    expected_pairs = 1200 * math.comb(2000, 2) / math.comb(100_000, 2)
    assert got[3] == pytest.approx(-math.expm1(-expected_pairs), rel=0.02)
    view = pool_batch_view(100_000, sizes)
    assert view.s50 is not None and view.paper_support == view.s50**2
    assert pool_batch_curve(100_000, sizes, [view.s50])[0] >= 0.5
    assert pool_batch_curve(100_000, sizes, [view.s50 - 1])[0] < 0.5


def test_pool_curve_stays_at_one_where_batches_near_the_singletons() -> None:
    # 500 pairs and 1000 singletons: for s near 1000 the ratio sum exceeds e^709 (it overflowed
    # to P = 0 there, and the curve fell from 1 to 0).
    s_values = np.array([10, 100, 300, 600, 900, 990, 1000, 1001, 1500, 2000])
    got = pool_batch_curve(2000, [2] * 500, s_values)
    assert np.all(np.diff(got) >= 0)
    assert got[3:] == pytest.approx(1.0, abs=1e-12)
    assert got[1] == pytest.approx(float(1 - _exact_none(2000, [2] * 500, 100)), abs=1e-12)


def test_pool_view_without_duplicates() -> None:
    assert pool_batch_view(50, []).s50 is None
    assert pool_batch_view(50, [1, 1]).paper_support is None


# --- the uniform-model MLE from batch indicators -------------------------------------------------


def _loglik(big_n: int, sizes: np.ndarray, hits: np.ndarray) -> float:
    """Log-likelihood of integer N straight from the product formula, batch by batch."""
    total = 0.0
    for s in np.unique(sizes).tolist():
        p = uniform_batch_collision(s, big_n)
        x = int(hits[sizes == s].sum())
        misses = int((sizes == s).sum()) - x
        if (x and p == 0.0) or (misses and p == 1.0):
            return -math.inf
        total += (x * math.log(p) if x else 0.0) + (misses * math.log1p(-p) if misses else 0.0)
    return total


def test_batch_mle_against_brute_force_over_integer_n() -> None:
    rng = np.random.default_rng(0)
    for true_n in (300, 2000):
        sizes = np.repeat([10, 20, 30, 40, 60, 80], 8)
        probs = np.array([uniform_batch_collision(int(s), true_n) for s in sizes])
        hits = (rng.random(sizes.size) < probs).astype(np.int64)
        got = uniform_batch_mle(sizes, hits)
        assert got.n_hat is not None and got.low is not None and got.high is not None
        grid = np.arange(int(got.low * 0.5), int(got.high * 2) + 2)
        ll = np.array([_loglik(int(k), sizes, hits) for k in grid])
        best = int(grid[np.argmax(ll)])
        assert abs(got.n_hat - best) <= 1.0  # continuous optimum beside the integer one
        assert got.log_likelihood >= ll.max() - 1e-6
        # The profile interval: the integers inside are those within chi2/2 of the maximum.
        inside = grid[ll >= got.log_likelihood - chi2.ppf(0.95, 1) / 2]
        assert inside.min() == pytest.approx(got.low, abs=1.0)
        assert inside.max() == pytest.approx(got.high, abs=1.0)


def test_batch_mle_with_all_or_no_hits() -> None:
    none = uniform_batch_mle([20, 40], [0, 0])
    assert none.n_hat is None and none.high is None and none.low is not None
    # Both batches duplicate-free is likely when N is large: the bound is where it gets unlikely.
    p_none = (1 - uniform_batch_collision(20, round(none.low))) * (
        1 - uniform_batch_collision(40, round(none.low))
    )
    assert math.log(p_none) == pytest.approx(-chi2.ppf(0.95, 1) / 2, abs=0.01)
    every = uniform_batch_mle([20, 40], [1, 1])
    assert every.n_hat is None and every.low is None and every.high is not None
    with pytest.raises(ValueError):
        uniform_batch_mle([1], [0])


# --- Chao1 ---------------------------------------------------------------------------------------


def test_chao1_hand_case_with_doubletons() -> None:
    # Abundances: four singletons, two doubletons, one tripleton: n = 11, S_obs = 7.
    got = chao1([1, 1, 1, 1, 2, 2, 3])
    a = 10 / 11
    est = 7 + a * 4 * 3 / (2 * 3)
    var = a * 12 / 6 + a**2 * 4 * 49 / (4 * 9) + a**2 * 16 * 2 * 9 / (4 * 81)
    assert (got.observed, got.f1, got.f2) == (7, 4, 2)
    assert got.estimate == pytest.approx(est)
    assert got.se == pytest.approx(math.sqrt(var))
    t = est - 7
    k = math.exp(1.959963984540054 * math.sqrt(math.log(1 + var / t**2)))
    assert (got.low, got.high) == pytest.approx((7 + t / k, 7 + t * k))


def test_chao1_without_doubletons_and_without_singletons() -> None:
    got = chao1([1, 1, 1, 5])  # f2 = 0: the bias-corrected form
    a = 7 / 8
    est = 4 + a * 3 * 2 / 2
    var = a * 3 + a**2 * 3 * 25 / 4 - a**2 * 81 / (4 * est)
    assert got.estimate == pytest.approx(est)
    assert got.se == pytest.approx(math.sqrt(var))
    full = chao1([2, 3, 4])  # nothing seen once: nothing unseen, interval from S_obs
    assert full.estimate == 3 and full.low >= 3 and full.high > 3
    assert chao1_from_pool(10, [3, 2]).observed == 7  # 5 singletons + 2 clusters


# --- the Vendi score -----------------------------------------------------------------------------


def test_vendi_of_identical_and_orthogonal_points() -> None:
    same = np.tile(np.array([[0.3, -1.0, 2.0]]), (7, 1))
    got = vendi_scores(same)
    assert (got.order1, got.order2) == pytest.approx((1.0, 1.0))
    ortho = np.eye(5) * np.arange(1, 6)[:, None]  # lengths do not matter: cosine kernel
    got = vendi_scores(ortho)
    assert (got.order1, got.order2) == pytest.approx((5.0, 5.0))
    # k copies of each of m orthogonal directions: m, whatever k.
    blocks = np.repeat(np.eye(3), 4, axis=0)
    assert vendi_scores(blocks).order1 == pytest.approx(3.0)


def test_vendi_against_the_n_by_n_kernel() -> None:
    rng = np.random.default_rng(5)
    for n, d in ((40, 6), (8, 30)):  # the d x d path and the n x n path
        x = rng.normal(size=(n, d)) + rng.normal(size=(1, d))
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        lam = np.clip(np.linalg.eigvalsh(unit @ unit.T / n), 0, None)
        lam /= lam.sum()
        order1 = math.exp(-sum(v * math.log(v) for v in lam if v > 0))
        k = unit @ unit.T
        order2 = n**2 / float(np.sum(k**2))
        got = vendi_scores(x, chunk=7)
        assert (got.order1, got.order2) == pytest.approx((order1, order2), rel=1e-9)
        assert 1.0 <= got.order2 <= got.order1 <= n
