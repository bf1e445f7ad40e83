"""Exact checks of app.estimate: hand-computed cases, enumeration, brute-force reference paths."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binomtest
from scipy.stats import t as student_t

from app.estimate import (
    batch_collision,
    batch_curve,
    batch_curve_empirical,
    cluster_judgements,
    collision_variance,
    d_interval,
    estimate_support,
    jackknife_var_q,
    n_eff_bounds,
    paper_support,
    s50,
    uniform_batch_collision,
    zero_collision_bound,
)
from app.estimate.simpson import _var_d_hat

# --- clusters ------------------------------------------------------------------------------------


def test_cannot_link_blocks_the_weaker_merge_of_a_chain() -> None:
    a, b, c = 0, 1, 2
    got = cluster_judgements(4, [(b, c, 0.30), (a, b, 0.10)], [(a, c)])
    assert got.clusters == ((a, b),)
    assert got.blocked == ((b, c, 0.30),)
    assert got.d == 1
    # The closer pair wins whichever it is.
    got = cluster_judgements(4, [(a, b, 0.30), (b, c, 0.10)], [(a, c)])
    assert got.clusters == ((b, c),)
    assert got.blocked == ((a, b, 0.30),)


def test_equal_distances_are_merged_in_pair_order() -> None:
    got = cluster_judgements(3, [(1, 2, 0.5), (0, 1, 0.5)], [(0, 2)])
    assert got.clusters == ((0, 1),)
    assert got.blocked == ((1, 2, 0.5),)


def test_cannot_link_follows_components_through_merges() -> None:
    # 0-1 and 2-3 merge first; then 1-2 would put 0 and 3 together.
    got = cluster_judgements(5, [(0, 1, 0.1), (2, 3, 0.2), (1, 2, 0.3)], [(0, 3)])
    assert got.clusters == ((0, 1), (2, 3))
    assert got.blocked == ((1, 2, 0.3),)
    assert got.d == 2


def test_direct_and_implied_pairs() -> None:
    # {0,1,2} from two judgements, {3,4} from one: D = 3 + 1, one pair (0,2) only implied.
    got = cluster_judgements(6, [(0, 1, 0.1), (1, 2, 0.2), (3, 4, 0.1)], [])
    assert got.sizes == (3, 2)
    assert (got.d, got.direct_pairs, got.implied_pairs) == (4, 3, 1)
    # One "yes" between the clusters joins 3 x 2 pairs: D = C(5,2) = 10, direct 4, implied 6.
    got = cluster_judgements(6, [(0, 1, 0.1), (1, 2, 0.2), (3, 4, 0.1), (2, 3, 0.9)], [])
    assert got.sizes == (5,)
    assert (got.d, got.direct_pairs, got.implied_pairs) == (10, 4, 6)


def test_repeated_and_contradicted_pairs() -> None:
    # A pair given twice counts once, at its closest distance; order of i, j does not matter.
    got = cluster_judgements(4, [(0, 1, 0.4), (1, 0, 0.2), (2, 3, 0.3)], [])
    assert (got.d, got.direct_pairs) == (2, 2)
    # A pair judged both duplicate and distinct is blocked.
    got = cluster_judgements(4, [(0, 1, 0.2)], [(1, 0)])
    assert got.clusters == ()
    assert got.blocked == ((0, 1, 0.2),)
    assert got.d == 0


def test_members_labels_and_sizes_per_sample() -> None:
    got = cluster_judgements(7, [(5, 6, 0.1), (1, 3, 0.2), (3, 5, 0.3), (0, 2, 0.4)], [])
    assert got.clusters == ((1, 3, 5, 6), (0, 2))
    assert got.members(6) == (1, 3, 5, 6)
    assert got.members(2) == (0, 2)
    assert got.members(4) == (4,)
    assert got.size_per_sample().tolist() == [2, 4, 2, 4, 1, 4, 4]
    assert got.labels.tolist() == [1, 0, 1, 0, 2, 0, 0]
    with pytest.raises(ValueError, match="out of range"):
        got.members(7)


def _reference_clusters(
    n: int, duplicates: list[tuple[int, int, float]], distinct: list[tuple[int, int]]
) -> tuple[set[frozenset[int]], list[tuple[int, int, float]]]:
    """Naive closure: explicit member sets, every cannot-link checked against both sets."""
    comp = {i: frozenset([i]) for i in range(n)}
    blocked = []
    for i, j, dist in sorted(duplicates, key=lambda t: (t[2], t[0], t[1])):
        a, b = comp[i], comp[j]
        if a == b:
            continue
        if any((x in a and y in b) or (x in b and y in a) for x, y in distinct):
            blocked.append((i, j, dist))
            continue
        for k in a | b:
            comp[k] = a | b
    return {c for c in comp.values() if len(c) >= 2}, blocked


def test_closure_matches_a_naive_reference_on_random_judgements() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(2, 14))
        all_pairs = list(itertools.combinations(range(n), 2))
        picked = rng.permutation(len(all_pairs))
        n_dup = int(rng.integers(0, len(all_pairs) + 1))
        n_dis = int(rng.integers(0, len(all_pairs) - n_dup + 1))
        # Distances on a coarse grid so ties happen; pairs distinct so the sort key is total.
        dup = [(*all_pairs[k], float(rng.integers(0, 4))) for k in picked[:n_dup]]
        dis = [all_pairs[k] for k in picked[n_dup : n_dup + n_dis]]
        got = cluster_judgements(n, dup, dis)
        want, want_blocked = _reference_clusters(n, dup, dis)
        assert {frozenset(c) for c in got.clusters} == want
        assert list(got.blocked) == want_blocked
        assert got.d == sum(math.comb(len(c), 2) for c in want)
        direct = sum(1 for i, j, _ in dup if any(i in c and j in c for c in want))
        assert (got.direct_pairs, got.implied_pairs) == (direct, got.d - direct)
        for c in got.clusters:  # no cannot-link inside a cluster
            assert not any(x in c and y in c for x, y in dis)
        # Ids: clusters by size, largest first, then by smallest member; singletons after.
        ranked = sorted(want, key=lambda c: (-len(c), min(c)))
        assert got.clusters == tuple(tuple(sorted(c)) for c in ranked)
        label = {i: r for r, c in enumerate(ranked) for i in c}
        alone = [i for i in range(n) if i not in label]
        label.update({i: len(ranked) + r for r, i in enumerate(alone)})
        assert got.labels.tolist() == [label[i] for i in range(n)]


@pytest.mark.parametrize(
    ("n", "duplicates", "distinct", "message"),
    [
        (1, [], [], "n must be"),
        (4, [(0, 0, 0.1)], [], "itself"),
        (4, [(0, 4, 0.1)], [], "out of range"),
        (4, [(-1, 2, 0.1)], [], "out of range"),
        (4, [], [(2, 2)], "itself"),
        (4, [], [(1, 9)], "out of range"),
        (4, [(0, 1, float("nan"))], [], "non-finite"),
        (4, [(0, 1.5, 0.1)], [], "integers"),
    ],
)
def test_cluster_judgements_rejects_bad_input(
    n: int,
    duplicates: list[tuple[int, int, float]],
    distinct: list[tuple[int, int]],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        cluster_judgements(n, duplicates, distinct)


# --- Simpson's estimator and its interval --------------------------------------------------------


def test_hand_case_n10_clusters_3_2() -> None:
    est = estimate_support(10, [3, 2])
    assert est.pairs == 45
    assert est.d == 4  # C(3,2) + C(2,2)
    assert est.q_hat == pytest.approx(4 / 45)
    assert est.p3_hat == pytest.approx(6 / 720)  # 3*2*1 / (10*9*8)
    assert est.n_eff == pytest.approx(45 / 4)
    # Unbiased q^2: (2D)^2 - sum (n_c(n_c-1))^2 + sum n_c..(n_c-3) = 64 - 40 + 0 over 10*9*8*7.
    q2 = 24 / 5040
    var_d = 45 * (4 / 45 - q2) + 720 * (6 / 720 - q2)
    assert var_d == pytest.approx(89 / 14)
    assert est.var_d == pytest.approx(var_d)
    z = student_t.ppf(0.975, 2 * 2)  # Student's t with 2k df, k = 2 clusters
    half = z * math.sqrt(var_d) / 4
    assert est.d_low == pytest.approx(4 * math.exp(-half))
    assert est.d_high == pytest.approx(4 * math.exp(half))
    assert est.n_eff_low == pytest.approx(45 / (4 * math.exp(half)))
    assert est.n_eff_high == pytest.approx(45 / (4 * math.exp(-half)))
    assert est.n_eff_low < est.n_eff < est.n_eff_high  # type: ignore[operator]


def test_jackknife_hand_case_n10_clusters_3_2() -> None:
    # D_(-i) = 2 (three samples), 3 (two samples), 4 (five singletons), over C(9,2) = 36;
    # deviations from q_hat = 4/45 are -6/180, -1/180, 4/180.
    want = Fraction(9, 10) * Fraction(3 * 36 + 2 * 1 + 5 * 16, 180**2)
    assert want == Fraction(19, 3600)
    assert jackknife_var_q(10, [3, 2]) == pytest.approx(float(want))
    check = estimate_support(10, [3, 2]).jackknife
    assert check is not None
    assert check.var_q == pytest.approx(float(want))
    half = student_t.ppf(0.975, 4) * math.sqrt(float(want)) * 45 / 4
    assert check.n_eff_low == pytest.approx(45 / (4 * math.exp(half)))


def test_jackknife_matches_deleting_each_sample() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(3, 30))
        labels = rng.integers(0, int(rng.integers(1, n + 1)), size=n)
        sizes = np.bincount(labels)
        q_minus = []
        for i in range(n):
            rest = np.bincount(np.delete(labels, i))
            q_minus.append(sum(math.comb(int(c), 2) for c in rest) / math.comb(n - 1, 2))
        q = np.array(q_minus)
        want = (n - 1) / n * float(np.sum((q - q.mean()) ** 2))
        assert jackknife_var_q(n, sizes[sizes > 0].tolist()) == pytest.approx(want, abs=1e-15)
        # The mean of the delete-one estimates is q_hat itself: no jackknife bias correction.
        assert q.mean() == pytest.approx(sum(math.comb(int(c), 2) for c in sizes) / math.comb(n, 2))


def _outcomes(n: int, p: list[Fraction]) -> list[tuple[Fraction, list[int]]]:
    """Every multinomial outcome of n draws from p, with its exact probability."""
    out = []
    for counts in itertools.product(range(n + 1), repeat=len(p)):
        if sum(counts) != n:
            continue
        prob = Fraction(math.factorial(n))
        for c, pc in zip(counts, p, strict=True):
            prob *= pc**c / math.factorial(c)
        out.append((prob, list(counts)))
    return out


@pytest.mark.parametrize(
    ("n", "p"),
    [
        (5, [Fraction(1, 2), Fraction(1, 3), Fraction(1, 6)]),
        (6, [Fraction(1, 4)] * 4),
        (7, [Fraction(5, 8), Fraction(1, 8), Fraction(1, 8), Fraction(1, 16), Fraction(1, 16)]),
    ],
)
def test_moments_by_exact_enumeration(n: int, p: list[Fraction]) -> None:
    q = sum(pc**2 for pc in p)
    p3 = sum(pc**3 for pc in p)
    outcomes = _outcomes(n, p)
    assert sum(prob for prob, _ in outcomes) == 1
    pairs = math.comb(n, 2)
    ds = [Fraction(sum(math.comb(c, 2) for c in counts)) for _, counts in outcomes]
    e_d = sum(prob * d for (prob, _), d in zip(outcomes, ds, strict=True))
    e_d2 = sum(prob * d * d for (prob, _), d in zip(outcomes, ds, strict=True))
    var_d = e_d2 - e_d**2
    assert e_d / pairs == q  # Simpson's estimator is unbiased
    sizes = [[c for c in counts if c >= 2] for _, counts in outcomes]
    probs = [prob for prob, _ in outcomes]
    e_p3 = sum(prob * estimate_support(n, sz).p3_hat for prob, sz in zip(probs, sizes, strict=True))
    assert e_p3 == pytest.approx(float(p3), rel=1e-12)
    assert collision_variance(n, float(q), float(p3)) == pytest.approx(float(var_d), rel=1e-12)
    # The unclipped variance estimate is exactly unbiased; clipping only makes it larger.
    e_var_hat = sum(
        prob * _var_d_hat(n, Counter(sz), clip=False) for prob, sz in zip(probs, sizes, strict=True)
    )
    assert e_var_hat == var_d
    e_clipped = sum(
        prob * estimate_support(n, sz).var_d for prob, sz in zip(probs, sizes, strict=True)
    )
    assert e_clipped >= float(var_d) - 1e-12


def test_no_collision_gives_the_rule_of_three() -> None:
    est = estimate_support(1000, [])
    assert (est.d, est.q_hat, est.n_eff, est.n_eff_high) == (0, 0.0, None, None)
    assert est.n_eff_low == pytest.approx(math.comb(1000, 2) / 2.995732273553991)  # -log(0.05)
    assert estimate_support(1000, [1, 1], level=0.9).n_eff_low == pytest.approx(
        math.comb(1000, 2) / math.log(10)
    )
    assert zero_collision_bound(0.95) == pytest.approx(-math.log(0.05))
    assert est.jackknife is not None and est.jackknife.n_eff_high is None


def test_single_pair_and_single_cluster() -> None:
    est = estimate_support(100, [2])
    assert (est.d, est.p3_hat) == (1, 0.0)
    # Var = C(n,2) q_hat: the unbiased q^2 estimate is 0 with a single pair.
    assert est.var_d == pytest.approx(1.0)
    assert est.d_high == pytest.approx(math.exp(student_t.ppf(0.975, 2)))  # one cluster: 2 df
    everything = estimate_support(6, [6])
    assert (everything.q_hat, everything.p3_hat, everything.n_eff) == (1.0, 1.0, 1.0)
    assert everything.var_d == pytest.approx(0.0, abs=1e-12)


def test_a_pool_that_is_one_cluster_gets_the_exact_bound() -> None:
    """Var(D) is 0 there, so the delta method's interval would be [1, 1]. A generator with one
    output of mass p and the rest never repeating has q = p^2 and makes such a pool with
    probability p^n = q^(n/2), the largest any distribution with that q can have: at the bound
    it is exactly the one-sided 2.5%, beyond it less."""
    for n in (2, 10, 100):
        est = estimate_support(n, [n])
        bound = 0.025 ** (-2 / n)
        assert (est.n_eff, est.n_eff_low) == (1.0, 1.0)
        assert est.n_eff_high == pytest.approx(bound, rel=1e-12)
        if n >= 3:  # the jackknife needs a sample to delete
            assert est.jackknife is not None
            assert est.jackknife.n_eff_high == pytest.approx(bound)
        share = bound**-0.5  # the single output's mass at N_eff = bound
        assert share**n == pytest.approx(0.025, rel=1e-12)
        assert (0.999 * share) ** n < 0.025
    assert estimate_support(100, [100], level=0.9).n_eff_high == pytest.approx(0.05**-0.02)
    # One sample short of one cluster: the delta method has a variance again.
    assert estimate_support(100, [99]).n_eff_high != pytest.approx(0.025**-0.02)


def test_a_variance_far_beyond_d_gives_an_open_bound_not_an_overflow() -> None:
    low, high = d_interval(2.0, 1e9, 0.95)
    assert high == math.inf and 0.0 <= low < 1e-300


def test_intervals_stay_where_n_eff_can_be() -> None:
    """q <= 1, so E[D] <= C(n,2) and N_eff >= 1: a log-scale bound beyond it is clipped (two
    samples without a duplicate claimed N_eff >= 1/3; three of four samples alike, >= 0.28)."""
    pair = estimate_support(2, [])
    assert (pair.d_high, pair.n_eff_low) == (1.0, 1.0)
    triple = estimate_support(4, [3])
    half = student_t.ppf(0.975, 2) * math.sqrt(triple.var_d) / 3
    assert 3 * math.exp(half) > 6  # the unclipped bound
    assert (triple.d_high, triple.n_eff_low) == (6.0, 1.0)
    assert triple.jackknife is not None and triple.jackknife.n_eff_low == 1.0
    assert triple.d_low == pytest.approx(3 * math.exp(-half))  # the other end as it was


def test_negative_variance_estimates_are_floored() -> None:
    # n=5, clusters {2, 2}: unbiased q^2 = (4^2 - 8) / 120 = 1/15 > p3_hat = 0, so the unbiased
    # Var = C(5,2) (1/5 - 1/15) + 60 (0 - 1/15) = -8/3; the floor is half the Poisson part,
    # D (1 - q_hat) / 2 = 2 (1 - 1/5) / 2 = 4/5.
    assert _var_d_hat(5, Counter({2: 2}), clip=False) == Fraction(-8, 3)
    assert _var_d_hat(5, Counter({2: 2})) == Fraction(4, 5)
    assert estimate_support(5, [2, 2]).var_d == pytest.approx(4 / 5)


def test_p3_term_is_not_clipped_on_its_own() -> None:
    # n=101, ten pairs: p3_hat = 0 < unbiased q^2 = (20^2 - 10 * 2^2) / (101*100*99*98), so the
    # fourth-order term pulls Var(D) below the Poisson part C(n,2)(q_hat - q^2_hat), as the
    # unbiased estimate must near uniformity (clipping it at 0 biased Var(D) upwards).
    q2 = Fraction(360, 101 * 100 * 99 * 98)
    expected = 5050 * (Fraction(10, 5050) - q2) + 101 * 100 * 99 * (0 - q2)
    assert _var_d_hat(101, Counter({2: 10})) == expected
    assert expected < 10 - 3
    assert estimate_support(101, [2] * 10).var_d == pytest.approx(float(expected))


def test_wider_level_gives_a_wider_interval() -> None:
    narrow = estimate_support(200, [3, 2, 2, 2])
    wide = estimate_support(200, [3, 2, 2, 2], level=0.99)
    assert wide.n_eff_low < narrow.n_eff_low < narrow.n_eff_high < wide.n_eff_high  # type: ignore[operator]


def test_n_eff_bounds_without_a_positive_lower_bound_on_d() -> None:
    assert n_eff_bounds(10, 0.0, 9.0) == (5.0, None)
    assert n_eff_bounds(10, -1.0, 9.0) == (5.0, None)
    assert n_eff_bounds(10, 3.0, 9.0) == (5.0, 15.0)


@pytest.mark.parametrize(
    ("n", "sizes", "level", "message"),
    [
        (1, [], 0.95, "n must be"),
        (2.5, [], 0.95, "n must be"),
        (10, [6, 5], 0.95, "sum to 11"),
        (10, [0], 0.95, "positive integers"),
        (10, [2.5], 0.95, "positive integers"),
        (10, [2], 1.0, "level"),
        (10, [2], 0.0, "level"),
    ],
)
def test_estimate_support_rejects_bad_input(
    n: int, sizes: list[int], level: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        estimate_support(n, sizes, level=level)


def test_jackknife_needs_three_samples() -> None:
    assert estimate_support(2, [2]).jackknife is None
    with pytest.raises(ValueError, match="n >= 3"):
        jackknife_var_q(2, [2])


# --- the paper's batch view ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "N"), [(0, 5), (1, 5), (2, 5), (5, 5), (6, 5), (23, 365), (40, 1000)]
)
def test_uniform_batch_collision_against_the_exact_product(s: int, N: int) -> None:
    none = Fraction(1)
    for i in range(s):
        none *= Fraction(N - i, N) if i < N else 0
    assert uniform_batch_collision(s, N) == pytest.approx(float(1 - none), rel=1e-12, abs=1e-15)


def test_uniform_batch_collision_is_stable_at_both_ends() -> None:
    assert uniform_batch_collision(23, 365) == pytest.approx(0.5072972343239857)
    # 1 - (1 - 1/N) for N = 1e12: naive 1 - product would keep ~4 digits.
    assert uniform_batch_collision(2, 10**12) == pytest.approx(1e-12, rel=1e-9)
    assert uniform_batch_collision(10**5, 10**6) == pytest.approx(1.0, abs=1e-300)


def test_batch_collision_approximates_uniform() -> None:
    assert batch_collision(2, 0.25) == pytest.approx(1 - math.exp(-0.25))
    assert batch_collision(1, 0.5) == 0.0
    N = 10**6
    for s in (10, 100, 1000, 3000):
        # The Poisson approximation errs by O(s^3 / N^2).
        exact = uniform_batch_collision(s, N)
        assert batch_collision(s, 1 / N) == pytest.approx(exact, abs=s**3 / N**2)


def test_s50_is_the_smallest_batch_reaching_one_half() -> None:
    for q in (1.0, 0.5, 0.3, 0.1, 1 / 7, 1e-2, 1 / 365, 1e-4, 3.3e-5):
        s = 2
        while batch_collision(s, q) < 0.5:
            s += 1
        assert s50(q) == s
        assert paper_support(s) == s * s
    assert s50(0.0) is None
    # For uniform N the paper's figure is about 2 ln 2 N.
    s_uniform = s50(1e-6)
    assert s_uniform is not None
    assert paper_support(s_uniform) / 1e6 == pytest.approx(2 * math.log(2), rel=2e-3)


def test_batch_curve_is_batch_collision_elementwise() -> None:
    s_values = np.array([0, 1, 2, 10, 100])
    got = batch_curve(0.01, s_values)
    assert got.tolist() == pytest.approx([batch_collision(int(s), 0.01) for s in s_values])


def _exact_pool_batch_collision(n: int, sizes: list[int], s: int) -> Fraction:
    """1 - e_s(cluster sizes, singletons included) / C(n, s): batches with no two in one cluster."""
    all_sizes = sizes + [1] * (n - sum(sizes))
    e = [1] + [0] * s  # elementary symmetric polynomials of the sizes, by DP
    for size in all_sizes:
        for k in range(s, 0, -1):
            e[k] += e[k - 1] * size
    return 1 - Fraction(e[s], math.comb(n, s))


def test_batch_curve_empirical_against_exact_pool_probabilities() -> None:
    clusters = [(0, 3, 7, 9), (2, 5, 11), (4, 8)]
    n, m = 14, 3000
    s_values = np.array([2, 3, 4, 6, 8])
    got = batch_curve_empirical(n, clusters, s_values, np.random.default_rng(11), m)
    for s, p_hat in zip(s_values, got, strict=True):
        p = float(_exact_pool_batch_collision(n, [4, 3, 2], int(s)))
        # Seeded; a 5-way Bonferroni two-sided test at 1e-3 each.
        assert binomtest(round(p_hat * m), m, p).pvalue > 2e-4, (s, p_hat, p)
    assert _exact_pool_batch_collision(n, [4, 3, 2], 2) == Fraction(6 + 3 + 1, 91)


def test_batch_curve_empirical_edge_cases() -> None:
    rng = np.random.default_rng(0)
    assert batch_curve_empirical(10, [], [2, 10], rng, 50).tolist() == [0.0, 0.0]
    assert batch_curve_empirical(10, [range(10)], [1, 2], rng, 50).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="disjoint"):
        batch_curve_empirical(10, [(0, 1), (1, 2)], [2], rng, 5)
    with pytest.raises(ValueError, match="out of range"):
        batch_curve_empirical(10, [(0, 10)], [2], rng, 5)
    with pytest.raises(ValueError, match="s_values"):
        batch_curve_empirical(10, [], [11], rng, 5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: uniform_batch_collision(-1, 5), "batch size"),
        (lambda: uniform_batch_collision(3, 0), "support size"),
        (lambda: batch_collision(3, 1.5), "q must be"),
        (lambda: s50(-0.1), "q must be"),
        (lambda: batch_curve(0.1, [1.5]), "s_values"),
    ],
)
def test_batch_functions_reject_bad_input(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
