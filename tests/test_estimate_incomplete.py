"""The estimator for incomplete labels: exact small cases, the isotonic fit against sklearn, the
leave-one-out logic against brute force, and design-unbiasedness by simulation."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.stats import ttest_1samp
from sklearn.isotonic import IsotonicRegression

from app.estimate import (
    DUPLICATE,
    UNKNOWN,
    Candidates,
    RandomPairs,
    cluster_judgements,
    d_interval,
    duplicates_stop,
    estimate_incomplete,
    estimate_support,
    fit_duplicate_rate,
    jackknife_var_q,
    judge_evidence,
    new_design,
    next_pairs,
    pair_fold,
    pair_priority,
    post_strata,
    random_deficits,
    reach,
    reached,
    residual_frame,
    sample_noncandidate_pairs,
    u_statistic_variance,
    update_design,
)
from app.estimate.bridges import bridge_cuts
from app.estimate.incomplete import FOLDS, _jackknife_var_d
from app.estimate.simpson import _var_d_hat

# --- the isotonic fit ----------------------------------------------------------------------------


def test_fit_hand_cases() -> None:
    fit = fit_duplicate_rate([1.0, 2.0, 3.0], [0.0, 1.0, 0.0])
    assert fit([1.0, 2.0, 3.0]).tolist() == pytest.approx([0.5, 0.5, 0.0])
    # Inverse-probability weights: the first pair stands for three.
    fit = fit_duplicate_rate([1.0, 2.0, 3.0], [0.0, 1.0, 0.0], [3.0, 1.0, 1.0])
    assert fit([1.0, 2.0, 3.0]).tolist() == pytest.approx([0.25, 0.25, 0.0])
    # Linear between blocks, constant beyond the ends; no data: 1/2.
    fit = fit_duplicate_rate([1.0, 3.0], [1.0, 0.0])
    assert fit([0.0, 2.0, 9.0]).tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert fit_duplicate_rate([], [])([0.3]).tolist() == [0.5]


def test_fit_matches_sklearn_and_is_monotone() -> None:
    rng = np.random.default_rng(4)
    for _ in range(200):
        size = int(rng.integers(1, 60))
        x = rng.integers(0, 30, size).astype(np.float64) / 10  # ties
        y = (rng.random(size) < 1 / (1 + np.exp(8 * (x - 1.5)))).astype(np.float64)
        w = rng.uniform(0.5, 20.0, size)
        grid = np.linspace(-1, 4, 101)
        got = fit_duplicate_rate(x, y, w)(grid)
        assert np.all(np.diff(got) <= 1e-12) and got.min() >= 0 and got.max() <= 1
        if np.unique(x).size < 2:
            continue
        iso = IsotonicRegression(increasing=False, y_min=0, y_max=1, out_of_bounds="clip")
        want = iso.fit(x, y, sample_weight=w).predict(grid)
        assert got == pytest.approx(want, abs=1e-9)


def test_duplicates_stop_where_the_fit_crosses_one_half() -> None:
    fit = fit_duplicate_rate([0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 0.0, 0.0])
    assert duplicates_stop(fit) == pytest.approx(0.25)  # linear between 0.2 (1) and 0.3 (0)
    assert duplicates_stop(fit_duplicate_rate([0.1, 0.2], [0.0, 0.0])) is None
    assert duplicates_stop(fit_duplicate_rate([0.1, 0.2], [1.0, 1.0])) is None


# --- bridges, used to tell which sampled pairs the others settle --------------------------------


def test_bridge_cuts_against_deleting_each_edge() -> None:
    rng = np.random.default_rng(9)
    for _ in range(200):
        nodes = int(rng.integers(2, 12))
        pairs = list(itertools.combinations(range(nodes), 2))
        keep = rng.random(len(pairs)) < rng.uniform(0.1, 0.6)
        edges = [p for p, k in zip(pairs, keep, strict=True) if k]
        u = np.array([a for a, _ in edges], dtype=np.int64)
        v = np.array([b for _, b in edges], dtype=np.int64)
        got = bridge_cuts(u + 100, v + 100)  # labels need not start at 0
        for k, (a, b) in enumerate(edges):
            rest = [(x, y, 0.0) for m, (x, y) in enumerate(edges) if m != k]
            apart = cluster_judgements(nodes, rest).labels
            if apart[a] == apart[b]:
                assert got[k] == 0
            else:  # the cut-off side is one of the two halves the deletion leaves
                assert got[k] in (np.sum(apart == apart[a]), np.sum(apart == apart[b]))


# --- the U-statistic part with estimated pairs ---------------------------------------------------


@pytest.mark.parametrize(("n", "sizes", "extra"), [(50, [3, 2], 4), (12, [5], 2), (300, [], 7)])
def test_extra_pairs_count_as_clusters_of_two(n: int, sizes: list[int], extra: int) -> None:
    completed = Counter(sizes + [2] * extra)
    # The first two have p3_hat > q2_hat: the same estimate as if the extra pairs were confirmed.
    # The third is all extra pairs: its negative fourth-order term is clipped to 0, leaving
    # the Poisson part C(n,2)(q_hat - q2_hat).
    got = u_statistic_variance(n, Counter(sizes), float(extra))
    if sizes:
        assert got == pytest.approx(float(_var_d_hat(n, completed)))
    else:
        q2 = Fraction(4 * extra * extra - 4 * extra, n * (n - 1) * (n - 2) * (n - 3))
        assert got == pytest.approx(
            float(math.comb(n, 2) * (Fraction(extra, math.comb(n, 2)) - q2))
        )
        assert got > float(_var_d_hat(n, completed))
    assert u_statistic_variance(n, completed) == pytest.approx(float(_var_d_hat(n, completed)))
    jack = jackknife_var_q(n, sizes + [2] * extra) * math.comb(n, 2) ** 2
    assert _jackknife_var_d(n, Counter(sizes), float(extra)) == pytest.approx(jack)


def test_a_negative_fourth_order_term_fades_with_the_unconfirmed_share() -> None:
    # n=101, 17 confirmed pairs and 1 estimated: D = 18, 1/18 of it unconfirmed, between the 1%
    # where the negative p3 - q^2 term counts in full and the 10% where it is clipped to 0.
    n, n3 = 101, 101 * 100 * 99
    n4 = n3 * 98
    q = 36 / (101 * 100)
    q2 = (36**2 - (17 * 4 + 4)) / n4
    poisson = math.comb(n, 2) * (q - q2)
    weight = (0.1 - 1 / 18) / (0.1 - 0.01)
    got = u_statistic_variance(n, Counter({2: 17}), 1.0)
    assert got == pytest.approx(poisson + n3 * (0.0 - q2) * weight)
    # All confirmed: the full negative term, which here falls below the floor D (1 - q_hat) / 2.
    assert poisson - n3 * q2 < 18 * (1 - 18 / 5050) / 2
    assert u_statistic_variance(n, Counter({2: 18})) == pytest.approx(18 * (1 - 18 / 5050) / 2)
    assert u_statistic_variance(n, Counter({2: 9}), 9.0) == pytest.approx(poisson)


# --- small populations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    candidates: Candidates
    truth: NDArray[np.int8]  # per candidate
    ids: NDArray[np.int64]  # per sample: identity


def population(seed: int, n: int = 240, clusters: int = 40, extra: int = 500) -> Population:
    """Clusters of 2-4 samples whose pairs are candidates at small distances (a few overlap
    the distinct ones), plus distinct candidate pairs at larger distances."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64)
    members = rng.permutation(n)
    pos, pairs = 0, []
    for _ in range(clusters):
        size = int(rng.integers(2, 5))
        group = members[pos : pos + size]
        ids[group] = group[0]
        pos += size
        pairs += [(int(a), int(b)) for a, b in itertools.combinations(group, 2)]
    dup_d = np.abs(rng.normal(0, 0.1, len(pairs)))
    seen = {(min(a, b), max(a, b)) for a, b in pairs}
    while len(seen) < len(pairs) + extra:
        a, b = (int(x) for x in rng.integers(0, n, 2))
        if a != b and ids[a] != ids[b]:
            seen.add((min(a, b), max(a, b)))
    others = sorted(seen - {(min(a, b), max(a, b)) for a, b in pairs})
    i = np.array([min(p) for p in pairs] + [p[0] for p in others])
    j = np.array([max(p) for p in pairs] + [p[1] for p in others])
    d = np.concatenate([dup_d, 0.2 + rng.gamma(2.0, 0.15, len(others))])
    c = Candidates.build(n, i, j, d)
    return Population(c, (ids[c.i] == ids[c.j]).astype(np.int8), ids)


def _true_d(ids: NDArray[np.int64]) -> int:
    return sum(math.comb(k, 2) for k in Counter(ids.tolist()).values())


def test_complete_labels_give_estimate_support_exactly() -> None:
    pop = population(1)
    c = pop.candidates
    design = new_design(c, 0)
    for s in range(design.strata):
        design = reach(design, s, 1.0)
    est = estimate_incomplete(c, design, judge_evidence(c, pop.truth))
    full = estimate_support(c.n, Counter(pop.ids.tolist()).values())
    assert est.complete and est.parts.unreviewed == 0.0 and est.parts.missed == 0.0
    assert est.d_hat == full.d == _true_d(pop.ids)
    assert est.var_design == 0.0
    assert est.var_u == pytest.approx(full.var_d)
    assert (est.d_low, est.d_high) == pytest.approx((full.d_low, full.d_high))
    assert (est.n_eff_low, est.n_eff_high) == pytest.approx((full.n_eff_low, full.n_eff_high))


def test_a_pool_confirmed_as_one_cluster_gets_the_exact_bound() -> None:
    """A collapsed generator: a chain of confirmed pairs closes over every sample, so Var(D) is 0
    and the interval is estimate_support's exact one, not [1, 1]."""
    n = 30
    c = Candidates.build(n, np.arange(n - 1), np.arange(1, n), np.full(n - 1, 0.01))
    design = new_design(c, 0, random_share=0.0, random_min=0)
    for s in range(design.strata):
        design = reach(design, s, 1.0)
    est = estimate_incomplete(c, design, judge_evidence(c, np.ones(n - 1, dtype=np.int8)))
    full = estimate_support(n, [n])
    assert est.d_hat == est.parts.confirmed == math.comb(n, 2)
    assert est.parts.implied == math.comb(n, 2) - (n - 1)
    assert est.n_eff == est.n_eff_low == 1.0
    assert est.n_eff_high == pytest.approx(full.n_eff_high) == pytest.approx(0.025 ** (-2 / n))


def test_the_interval_holds_while_distance_bands_are_unsampled() -> None:
    """The queue explores the closest bands first, all duplicates, so the calibration curve is 1
    everywhere and D-hat counts every candidate, with no variance: the interval it gives for
    that extrapolation misses the pool's D. The unsampled bands' pairs are bounded instead
    (none to all duplicates): the interval holds D at every label until they are sampled."""
    pop = population(3)
    c = pop.candidates
    truth = _true_d(pop.ids)
    design = new_design(c, 0, random_share=0.0, random_min=0)
    labels = np.full(len(c), UNKNOWN, dtype=np.int8)
    steps = fit_only_misses = 0
    while True:
        evidence = judge_evidence(c, labels)
        est = estimate_incomplete(c, design, evidence)
        if est.unexplored_strata == 0:
            break
        steps += 1
        assert est.d_low <= truth <= est.d_high, (steps, est.d_low, est.d_high)
        sizes = Counter(evidence.clustering.sizes)
        clusters = sum(m for s, m in sizes.items() if s >= 2) + est.d_hat - est.parts.confirmed
        low, high = d_interval(est.d_hat, est.var_u + est.var_design, 0.95, clusters)
        fit_only_misses += not low <= truth <= high
        handouts, design = next_pairs(c, design, evidence, count=1)
        for h in handouts:
            labels[h.index] = pop.truth[h.index]
    assert steps >= 10 and fit_only_misses >= steps // 2, (steps, fit_only_misses)
    # Once every band is sampled the interval is the design's again, not widened.
    assert est.d_low > 0 and est.n_eff_high is not None


def _label_with_queue(
    pop: Population, seed: int, budget: int, rand: RandomPairs | None = None
) -> tuple[object, NDArray[np.int8]]:
    c = pop.candidates
    design = new_design(c, seed, random_share=0.0, random_min=0)
    labels = np.full(len(c), UNKNOWN, dtype=np.int8)
    while (labels != UNKNOWN).sum() < budget:
        handouts, design = next_pairs(c, design, judge_evidence(c, labels), count=5)
        if not handouts:
            break
        for h in handouts:
            labels[h.index] = pop.truth[h.index]
    return design, labels


def test_leave_one_out_residuals_against_brute_force() -> None:
    """Recompute the unreviewed estimate by hand: a sampled pair is settled by the others when
    the closure of all other observations (sampled values and judgements) implies its value;
    predictions come from sklearn's isotonic fit per fold."""
    pop = population(2)
    c = pop.candidates
    design, labels = _label_with_queue(pop, 3, budget=70)
    evidence = judge_evidence(c, labels)
    est = estimate_incomplete(c, design, evidence)
    hit = reached(design, c)
    value = evidence.candidate_value
    sampled = hit & (value != UNKNOWN)
    observed = np.flatnonzero(sampled | (labels != UNKNOWN))
    g = post_strata(design, c)
    size = np.bincount(g)
    r = np.bincount(g, weights=sampled, minlength=size.size)
    weight = size[g] / np.maximum(r[g], 1)
    fold = pair_fold(design.seed, c.i, c.j, FOLDS)
    pred = np.empty(len(c))
    for k in range(FOLDS):
        train = sampled & (fold != k)
        iso = IsotonicRegression(increasing=False, y_min=0, y_max=1, out_of_bounds="clip")
        iso.fit(c.distance[train], value[train] == DUPLICATE, sample_weight=weight[train])
        pred[fold == k] = iso.predict(c.distance[fold == k])
    total = 0.0
    for group in np.flatnonzero(size):
        mine = np.flatnonzero((g == group) & sampled)
        residuals = []
        for p in mine:
            others = [q for q in observed if q != p]
            dup = [(c.i[q], c.j[q], c.distance[q]) for q in others if value[q] == DUPLICATE]
            dis = [(c.i[q], c.j[q]) for q in others if labels[q] == 0]
            closure = cluster_judgements(c.n, dup, dis)
            same = closure.labels[c.i[p]] == closure.labels[c.j[p]]
            linked = any(
                {closure.labels[a], closure.labels[b]}
                == {closure.labels[c.i[p]], closure.labels[c.j[p]]}
                for a, b in dis
            )
            settled = same if value[p] == DUPLICATE else linked
            residuals.append(0.0 if settled else float(value[p] == DUPLICATE) - pred[p])
        open_ = (g == group) & (value == UNKNOWN)
        total += pred[open_].sum() + (size[group] - len(mine)) * np.mean(residuals)
    assert est.parts.unreviewed == pytest.approx(max(total, 0.0), abs=1e-9)
    assert est.d_hat == pytest.approx(evidence.clustering.d + max(total, 0.0), abs=1e-9)


def _fixed_design(pop: Population, seed: int, threshold: float) -> tuple[object, np.ndarray]:
    """Every stratum reached up to one threshold: a stratified simple random sample."""
    c = pop.candidates
    design = new_design(c, seed)
    for s in range(design.strata):
        design = reach(design, s, threshold)
    hit = reached(design, c)
    labels = np.full(len(c), UNKNOWN, dtype=np.int8)
    labels[hit] = pop.truth[hit]
    return design, labels


def test_unreviewed_estimate_is_design_unbiased_by_simulation() -> None:
    """One fixed pool, 300 design seeds, 12% of pairs sampled per stratum: D_hat is unbiased
    for the pool's D (one-sample t test) and the mean estimated design variance matches the
    spread of D_hat (measured: 55 vs 52)."""
    pop = population(5)
    c = pop.candidates
    truth = _true_d(pop.ids)
    errors, variances = [], []
    for seed in range(300):
        design, labels = _fixed_design(pop, seed, 0.12)
        est = estimate_incomplete(c, design, judge_evidence(c, labels))
        assert not est.complete
        errors.append(est.d_hat - truth)
        variances.append(est.var_design)
    err = np.asarray(errors)
    assert ttest_1samp(err, 0.0).pvalue > 1e-3, err.mean()
    assert 0.8 < np.mean(variances) / err.var(ddof=1) < 1.25, (np.mean(variances), err.var())


@pytest.mark.parametrize("pool_seed", [5, 11])
def test_the_adaptive_queue_keeps_the_bias_small_and_the_variance_honest(pool_seed: int) -> None:
    """The queue picks strata from the labels so far, which makes D_hat only approximately
    unbiased: sampling stops sooner where early draws found nothing. Measured over 300 seeds
    of 60 labels (D = 107 and 135): bias -0.7 and -1.0 pairs, RMSE 4.5 and 3.7, against
    sd(D) ~ 11 from the pool itself; the same pools under a fixed design are unbiased (above).
    Checked: the bias stays under a tenth of the pool's sd(D), so it cannot move coverage,
    and the estimated design variance is no smaller than the actual mean squared error."""
    pop = population(pool_seed)
    c = pop.candidates
    truth = _true_d(pop.ids)
    errors, variances, var_u = [], [], []
    for seed in range(300):
        design, labels = _label_with_queue(pop, seed, budget=60)
        est = estimate_incomplete(c, design, judge_evidence(c, labels))
        errors.append(est.d_hat - truth)
        variances.append(est.var_design)
        var_u.append(est.var_u)
    err = np.asarray(errors)
    assert abs(err.mean()) < 0.1 * math.sqrt(np.mean(var_u)), (err.mean(), np.mean(var_u))
    assert np.mean(variances) >= np.mean(err**2), (np.mean(variances), np.mean(err**2))


def test_missed_part_is_a_horvitz_thompson_estimate() -> None:
    """Hand case: C(11,2) - 3 = 52 non-candidate pairs, 5 judged, 2 of them duplicates outside
    any cluster (a third lies inside the confirmed cluster {0, 1, 2}: already counted):
    missed = 52 * 2 / 5, variance 52^2 (1 - 5/52) s^2 / 5 with s^2 = 0.3."""
    n = 11
    c = Candidates.build(n, [0, 1, 4], [1, 2, 5], [0.1, 0.2, 0.9])
    picked = np.array([[6, 7], [8, 9], [0, 2], [5, 10], [1, 6]])
    rand = RandomPairs.build(n, picked[:, 0], picked[:, 1], np.ones(5))
    design = new_design(c, 0, random_min=5)
    for s in range(design.strata):
        design = reach(design, s, 1.0)
    ev = judge_evidence(c, [1, 1, 0], rand, [1, 1, 1, 0, 0])
    est = estimate_incomplete(c, design, ev, rand)
    assert est.parts.confirmed == 3
    assert est.parts.missed == pytest.approx(52 * 2 / 5)
    assert est.var_missed == pytest.approx(52**2 * (1 - 5 / 52) * 0.3 / 5)
    assert est.d_hat == pytest.approx(3 + 52 * 2 / 5)
    assert est.random_to_go == 0
    # Half the random pairs judged: the sample is the judged prefix in priority order.
    partial = judge_evidence(c, [1, 1, 0], rand, [1, 1, 1, -1, -1])
    assert estimate_incomplete(c, design, partial, rand).random_to_go > 0


def test_a_random_sample_of_all_duplicates_keeps_a_variance() -> None:
    """Hand case of the test above, every judged random pair a duplicate. With one of them
    inside the confirmed cluster (settled: not open, and not a duplicate found) the residuals
    vary and s^2 is above the Jeffreys floor; with all four outside it s^2 = 0 and the floor
    p (1 - p), p = 4.5 / 5, holds instead, so the interval keeps its width (it read "1 - 1"
    after three labels)."""
    n = 11
    c = Candidates.build(n, [0, 1, 4], [1, 2, 5], [0.1, 0.2, 0.9])
    picked = np.array([[6, 7], [8, 9], [5, 10], [0, 2]])
    rand = RandomPairs.build(n, picked[:, 0], picked[:, 1], np.ones(4))
    design = new_design(c, 0, random_min=4)
    for s in range(design.strata):
        design = reach(design, s, 1.0)
    ev = judge_evidence(c, [1, 1, 0], rand, [1, 1, 1, 1])
    est = estimate_incomplete(c, design, ev, rand)
    assert est.parts.missed == pytest.approx(52 * 3 / 4)
    s2 = max(np.var([1, 1, 1, 0], ddof=1), 3 / 4 * (3.5 / 4) * (0.5 / 4))
    assert est.var_missed == pytest.approx(52**2 * (1 - 4 / 52) * s2 / 4)
    assert est.d_low < est.d_hat < est.d_high
    # All four outside the cluster and duplicates: s^2 = 0 without the floor.
    picked = np.array([[6, 7], [8, 9], [5, 10], [3, 6]])
    rand = RandomPairs.build(n, picked[:, 0], picked[:, 1], np.ones(4))
    ev = judge_evidence(c, [1, 1, 0], rand, [1, 1, 1, 1])
    est = estimate_incomplete(c, design, ev, rand)
    assert est.var_missed == pytest.approx(52**2 * (1 - 4 / 52) * (4.5 / 5) * (0.5 / 5) / 4)
    assert est.n_eff is not None and est.n_eff_high is not None
    assert est.n_eff_high > 1.2 * est.n_eff and est.n_eff_low >= 1.0
    # No duplicate among them: the model is trusted, no floor.
    ev = judge_evidence(c, [1, 1, 0], rand, [0, 0, 0, 0])
    assert estimate_incomplete(c, design, ev, rand).var_missed == 0.0


def test_the_random_sample_is_a_prefix_of_the_random_order() -> None:
    """A random pair judged out of turn waits for the ones before it; one judged "unsure" is
    passed over (missing at random) instead of holding the check back for good."""
    n = 11
    c = Candidates.build(n, [0, 1, 4], [1, 2, 5], [0.1, 0.2, 0.9])
    picked = np.array([[6, 7], [8, 9], [0, 3], [5, 10], [1, 6]])
    rand = RandomPairs.build(n, picked[:, 0], picked[:, 1], np.ones(5))
    design = new_design(c, 0, random_min=5)
    order = np.argsort(pair_priority(design.seed, rand.i, rand.j), kind="stable")
    first, second = int(order[0]), int(order[1])
    labels = np.full(5, -1, dtype=np.int8)
    labels[second] = 1
    out_of_turn = judge_evidence(c, [1, 1, 0], rand, labels)
    frame = residual_frame(c, design, out_of_turn, rand)
    assert not frame.random_sampled.any()
    assert estimate_incomplete(c, design, out_of_turn, rand).random_to_go == 5
    unsure = np.zeros(5, dtype=bool)
    unsure[first] = True
    passed = judge_evidence(c, [1, 1, 0], rand, labels, unsure)
    frame = residual_frame(c, design, passed, rand)
    assert frame.random_sampled.tolist() == [k == second for k in range(5)]
    est = estimate_incomplete(c, design, passed, rand)
    # One judged pair, a duplicate: 52 non-candidate pairs, capped at the 51 that the
    # confirmed cluster {0, 1, 2} does not already hold. Of random_min = 5, only 4 pairs can
    # count now (one passed over), and one does.
    assert est.random_to_go == 3 and est.parts.missed == pytest.approx(51.0)
    with pytest.raises(ValueError, match="random_unsure"):
        judge_evidence(c, [1, 1, 0], rand, labels, [True])


def test_each_generation_of_random_pairs_has_its_own_quota() -> None:
    """Pool of 8 extended to 12: 3 random pairs among the first 8 samples, 4 touching the new
    ones. With random_min 2 each generation needs 2 (the second one's unsure pair passed over)."""
    c = Candidates.build(12, [0, 8], [1, 9], [0.1, 0.1])
    i, j = [2, 3, 4, 0, 1, 2, 3], [5, 6, 7, 8, 10, 11, 9]
    rand = RandomPairs.build(12, i, j, np.ones(7), [0, 0, 0, 1, 1, 1, 1], (8, 12))
    design = new_design(c, 0, random_min=2)
    nothing = judge_evidence(c, [-1, -1], rand)
    none = np.zeros(7, dtype=bool)
    assert random_deficits(design, rand, nothing, none).tolist() == [2, 2]
    first = np.array([True, True, False, False, False, False, False])
    assert random_deficits(design, rand, nothing, first).tolist() == [0, 2]
    unsure = judge_evidence(c, [-1, -1], rand, None, [False] * 3 + [True] * 3 + [False])
    assert random_deficits(design, rand, unsure, first).tolist() == [0, 1]
    # The estimator's random_to_go is their sum.
    assert estimate_incomplete(c, design, nothing, rand).random_to_go == 4


def test_missed_part_is_unbiased_by_simulation() -> None:
    """Fixed pool with duplicates the miner dropped; the random sample is redrawn per rep."""
    pop = population(6)
    keep = np.ones(len(pop.candidates), dtype=bool)
    dup_idx = np.flatnonzero(pop.truth)
    keep[dup_idx[::3]] = False  # the miner misses every third duplicate pair
    c0 = pop.candidates
    c = Candidates.build(c0.n, c0.i[keep], c0.j[keep], c0.distance[keep])
    truth = pop.truth[keep]
    design = new_design(c, 0)
    for s in range(design.strata):
        design = reach(design, s, 1.0)
    ev = judge_evidence(c, truth)
    outside = _true_d(pop.ids) - ev.clustering.d
    assert outside > 0
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(400):
        picked = sample_noncandidate_pairs(c.n, np.stack([c.i, c.j], 1), 2000, rng)
        rand = RandomPairs.build(c.n, picked[:, 0], picked[:, 1], np.ones(len(picked)))
        r_truth = (pop.ids[rand.i] == pop.ids[rand.j]).astype(np.int8)
        est = estimate_incomplete(c, design, judge_evidence(c, truth, rand, r_truth), rand)
        errors.append(est.parts.missed - outside)
    assert ttest_1samp(errors, 0.0).pvalue > 1e-3, np.mean(errors)


def test_parts_add_up_and_frame_can_be_shared() -> None:
    pop = population(7)
    c = pop.candidates
    design, labels = _label_with_queue(pop, 1, budget=40)
    ev = judge_evidence(c, labels)
    est = estimate_incomplete(c, design, ev)
    p = est.parts
    assert est.d_hat == pytest.approx(p.confirmed + p.unreviewed + p.missed)
    assert p.confirmed == p.direct + p.implied
    assert est.q_hat == pytest.approx(est.d_hat / math.comb(c.n, 2))
    assert est.n_eff_low <= est.n_eff <= est.n_eff_high  # type: ignore[operator]
    assert sum(st.pairs for st in est.strata) == len(c)
    shared = estimate_incomplete(c, design, ev, frame=residual_frame(c, design, ev))
    assert (shared.d_hat, shared.var_design, shared.d_high) == (
        est.d_hat,
        est.var_design,
        est.d_high,
    )
    with pytest.raises(ValueError, match="level"):
        estimate_incomplete(c, design, ev, level=1.0)


def test_post_stratum_counts_match_the_pairs_with_pending_pairs_and_split_pieces() -> None:
    """The per-stratum figures come from sums per threshold piece: count them pair by pair,
    on a design whose strata were re-derived around a centre (pieces of one stratum with
    different thresholds) and with pairs handed out but not judged yet."""
    pop = population(11)
    c = pop.candidates
    design, labels = _label_with_queue(pop, 2, budget=60)
    design = update_design(design, c, centre=0.25)
    handouts, design = next_pairs(c, design, judge_evidence(c, labels), count=5)
    assert handouts  # reached now, unjudged: pending
    evidence = judge_evidence(c, labels)
    frame = residual_frame(c, design, evidence)
    est = estimate_incomplete(c, design, evidence, frame=frame)
    g = post_strata(design, c)
    value = evidence.candidate_value
    sampled = reached(design, c) & (value != UNKNOWN)
    assert frame.pending.size >= 1
    rows = [group for group in np.unique(g)]
    assert len(est.strata) == len(rows)
    for st, group in zip(est.strata, rows, strict=True):
        mine = g == group
        assert st.pairs == int(mine.sum())
        assert st.sampled == int((mine & sampled).sum())
        assert st.known_duplicates == int((mine & (value == DUPLICATE)).sum())
        assert st.unsettled == int((mine & (value == UNKNOWN)).sum())
        assert (st.low, st.high) == (c.distance[mine].min(), c.distance[mine].max())
        if st.sampled == 0:  # the fit alone: its predictions over the unsettled pairs
            open_ = mine & (value == UNKNOWN)
            assert st.unreviewed == pytest.approx(
                frame.crossfit.predict(np.flatnonzero(open_)).sum(), abs=1e-9
            )
