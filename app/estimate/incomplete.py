"""N_eff when reviewers have labelled a designed sample of the pairs, not all of them.

D, the number of duplicate pairs in the pool, is split three ways:

* confirmed: D of the closure of the judgements (every pair inside a confirmed cluster, whether
  the miner proposed it or not);
* unreviewed: duplicates among candidate pairs whose value the judgements do not settle,
  estimated per post-stratum of the design (design.post_strata) by a cross-fitted difference
  estimator: the isotonic P(duplicate | distance) predicts each unsettled pair, and the
  prediction errors on the sampled pairs, weighted by N_g / r_g, correct it. With a fixed
  prediction this is design-unbiased however wrong the fit is (Sarndal, Swensson & Wretman
  1992, 6.3); cross-fitting (each pair predicted by a fit that did not see its fold) keeps that
  when the fit comes from the same labels;
* missed: duplicates among pairs the miner never proposed and the closure does not cover,
  a Horvitz-Thompson estimate from the uniform sample of non-candidate pairs.

Closure makes a pair's value known without a label; a sampled pair counts as "settled by the
others" when the values of the other observed pairs imply it (it is not a bridge of the
duplicate graph, or another cannot-link joins its clusters). By exchangeability of a simple
random sample, the mean of these leave-one-out residuals over the sampled pairs estimates the
mean residual of an unsampled pair given all sampled ones (they differ only in sampling r - 1
vs r pairs), so closure shrinks the estimate's variance without biasing it.

Interval. Write D_hat - E[D] = (D_hat - D) + (D - E[D]). Given the pool, D_hat is (nearly)
unbiased for D, so the cross term vanishes and Var(D_hat) = E[Var_design(D_hat | pool)] +
Var(D): the label-sampling variance adds to the U-statistic variance of D (simpson.py), each
estimated unbiasedly. The interval is the same log-scale interval as for complete labels; with
every candidate settled and no random pairs it is exactly estimate_support's. Coverage is
checked by simulation (tests/test_estimate_incomplete.py, bench/estimator.py).

What no estimator can see: duplicates hidden among far candidate pairs where the sparse sample
found none (the monotone fit then predicts 0 there), and duplicates the miner missed at a rate
the random sample is too small to detect; `missed_ucb` gives the model-free bound on the latter.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import beta as beta_dist
from scipy.stats import norm

from app.estimate.bridges import bridge_cuts
from app.estimate.closure_gaps import GAP_PREDICTION, closure_gaps
from app.estimate.crossfit import CrossFit, PieceTotals, fold_piece_totals
from app.estimate.design import (
    ReviewDesign,
    candidate_strata,
    piece_of,
    piece_post_strata,
    piece_sizes,
    piece_strata,
    reached,
)
from app.estimate.duplicate_rate import DuplicateRateFit, fit_duplicate_rate
from app.estimate.pairs import (
    DISTINCT,
    DUPLICATE,
    UNKNOWN,
    Candidates,
    Evidence,
    RandomPairs,
    pair_priority,
)
from app.estimate.simpson import (
    d_interval,
    n_eff_bounds,
    one_cluster_d_low,
    variance_floor,
    zero_collision_bound,
)

__all__ = [
    "IncompleteEstimate",
    "Parts",
    "PieceSums",
    "ResidualFrame",
    "StratumEstimate",
    "estimate_incomplete",
    "random_deficits",
    "random_weights",
    "residual_frame",
    "jeffreys_floor",
    "residual_variance",
    "u_statistic_variance",
]

FOLDS = 5  # cross-fitting folds
KNOWN_FULL, KNOWN_FADE = 0.01, 0.1  # unconfirmed shares of D: see u_statistic_variance


@dataclass(frozen=True)
class PieceSums:
    """Per threshold piece of the design (design.piece_of): counts and prediction sums.

    Post-strata and allocation strata are unions of pieces, so the estimator and the queue
    take their sums from these (a few dozen numbers) instead of passing over every pair again:
    at 10^6 samples there are 5 * 10^6 candidate pairs.
    """

    size: NDArray[np.int64]  # pairs
    reached: NDArray[np.float64]  # reached pairs
    sampled: NDArray[np.int64]  # reached with a known value
    duplicates: NDArray[np.float64]  # pairs known to be duplicates (judged or implied)
    unreached_unknown: NDArray[np.float64]  # not reached, value unknown: a label would help
    unreached_predicted: NDArray[np.float64]  # sum of predictions over those
    unreached_spread: NDArray[np.float64]  # sum of f (1 - f) over those


@dataclass(frozen=True)
class ResidualFrame:
    """Per-candidate quantities shared by the estimator and the review queue.

    The design's sample is small (labels), the candidates many: what only sampled pairs carry
    is kept for them alone, in the order of `sample`.
    """

    value: NDArray[np.int8]  # Evidence.candidate_value
    sampled: NDArray[np.bool_]  # reached with a known value: the design's sample
    reached: NDArray[np.bool_]  # reached, known or not (an "unsure" or leased pair is unknown)
    stratum: NDArray[np.int64]  # allocation stratum
    piece: NDArray[np.int64]  # threshold piece (design.piece_of)
    piece_post: NDArray[np.int64]  # post-stratum of each piece
    piece_stratum: NDArray[np.int64]  # allocation stratum of each piece
    pieces: PieceSums
    pending: NDArray[np.int64]  # reached pairs whose value is unknown (increasing)
    sample: NDArray[np.int64]  # the sampled pairs (increasing)
    sample_post: NDArray[np.int64]  # their post-stratum
    sample_residual: NDArray[np.float64]  # leave-one-out residual (0 where settled by others)
    sample_settled: NDArray[np.bool_]  # their value is implied by the other observations
    crossfit: CrossFit  # cross-fitted P(duplicate | distance) of any pair
    fit: DuplicateRateFit  # fitted on all sampled pairs
    random_residual: NDArray[np.float64]  # sampled random pairs: duplicate outside the closure
    random_sampled: NDArray[np.bool_]
    gaps: NDArray[np.int64]  # closure gaps, in the order the queue hands them out

    def per_post(self, piece_values: NDArray[np.generic]) -> NDArray[np.float64]:
        """Sums per post-stratum of a per-piece array."""
        return _sums(self.piece_post, piece_values, 0)

    def per_stratum(self, piece_values: NDArray[np.generic], strata: int) -> NDArray[np.float64]:
        """Sums per allocation stratum of a per-piece array."""
        return _sums(self.piece_stratum, piece_values, strata)

    def open_sampled(self, strata: int) -> NDArray[np.int64]:
        """Per allocation stratum, sampled pairs whose value the other observations leave open:
        a stratum's sample the closure settles whole says nothing of its unsettled pairs (see
        `_unexplored`), so the estimator and the queue both count these."""
        opened = np.bincount(self.stratum[self.sample[~self.sample_settled]], minlength=strata)
        return np.asarray(opened, dtype=np.int64)


def _sums(group: NDArray[np.int64], values: ArrayLike, groups: int) -> NDArray[np.float64]:
    """Sum of values per group (a weighted bincount), as floats."""
    return np.asarray(np.bincount(group, weights=values, minlength=groups), dtype=np.float64)


def _duplicate_bridges(
    candidates: Candidates, evidence: Evidence, sampled: NDArray[np.bool_]
) -> NDArray[np.bool_]:
    """Bridge flags of the observed duplicate candidate pairs (sampled or judged)."""
    observed = (sampled | evidence.candidate_labelled) & (evidence.candidate_value == DUPLICATE)
    out = np.zeros(len(candidates), dtype=np.bool_)
    out[observed] = bridge_cuts(candidates.i[observed], candidates.j[observed]) > 0
    return out


def _cannot_link_counts(
    candidates: Candidates, evidence: Evidence, index: NDArray[np.int64]
) -> NDArray[np.int64]:
    """For the candidates at `index`: "not duplicate" judgements joining their two clusters,
    their own excluded.

    A blocked "duplicate" judgement is no cannot-link, but the one that blocked it joins the
    same two clusters, so its value is settled by the others too.
    """
    cl = evidence.clustering.labels
    n_cl = np.int64(int(cl.max()) + 1)
    own_all = np.flatnonzero(evidence.candidate_label == DISTINCT)

    def keys(k: NDArray[np.int64]) -> NDArray[np.int64]:
        a, b = cl[candidates.i[k]], cl[candidates.j[k]]
        return np.asarray(np.minimum(a, b) * n_cl + np.maximum(a, b), dtype=np.int64)

    uniq, counts = np.unique(keys(own_all), return_counts=True)
    if uniq.size == 0 or index.size == 0:
        return np.zeros(index.size, dtype=np.int64)
    key = keys(index)
    pos = np.minimum(np.searchsorted(uniq, key), uniq.size - 1)
    found = np.where(uniq[pos] == key, counts[pos], 0)
    own = evidence.candidate_label[index] == DISTINCT
    return np.asarray(found - own.astype(np.int64), dtype=np.int64)


def _random_sample(random_pairs: RandomPairs, evidence: Evidence, seed: int) -> NDArray[np.bool_]:
    """Per generation, the random pairs in priority order up to the first one nobody has
    settled, those judged "unsure" left out (passed over, as an unsure candidate is).

    Only a prefix of the random order is a simple random sample of the generation: a pair
    judged out of turn (browsing, or while another annotator holds an earlier one) waits
    until the pairs before it are settled.
    """
    out = np.zeros(len(random_pairs), dtype=np.bool_)
    if len(random_pairs) == 0:
        return out
    unsure = evidence.random_unsure
    u = pair_priority(seed, random_pairs.i, random_pairs.j)
    for g in np.unique(random_pairs.generation):
        idx = np.flatnonzero(random_pairs.generation == g)
        idx = idx[np.argsort(u[idx], kind="stable")]
        known = evidence.random_value[idx] != UNKNOWN
        passed = known | unsure[idx]
        stop = idx.size if passed.all() else int(np.argmin(passed))
        out[idx[:stop][known[:stop]]] = True
    return out


def random_deficits(
    design: ReviewDesign,
    random_pairs: RandomPairs,
    evidence: Evidence,
    counted: NDArray[np.bool_],
) -> NDArray[np.int64]:
    """Per generation, random pairs still to judge before its miner check counts as done.

    Each generation (the pairs an extension added) needs its own check: its missed part is
    estimated from its own random pairs only, and is 0 while none is judged. The quota is
    design.random_min, or what the generation holds apart from pairs passed over as unsure.
    """
    k = len(random_pairs.pool_sizes)
    gen = random_pairs.generation
    size = np.bincount(gen, minlength=k)
    unsure = evidence.random_unsure
    passed = np.bincount(gen[unsure], minlength=k)
    quota = np.minimum(design.random_min, size - passed)
    got = np.bincount(gen[counted], minlength=k)
    return np.asarray(np.maximum(quota - got, 0), dtype=np.int64)


def _fold_distances(candidates: Candidates, seed: int, folds: int, k: int) -> NDArray[np.float64]:
    """Distances of fold k's pairs, sorted (cached: they never change for the candidates)."""
    return candidates.cached(
        ("fold-distances", int(seed), int(folds), k),
        lambda: np.sort(candidates.distance[candidates.folds(seed, folds) == k]),
    )


def residual_frame(
    candidates: Candidates,
    design: ReviewDesign,
    evidence: Evidence,
    random_pairs: RandomPairs | None = None,
    folds: int = FOLDS,
) -> ResidualFrame:
    """The sample, the cross-fitted predictions and the leave-one-out residuals."""
    rand = random_pairs if random_pairs is not None else RandomPairs.empty(candidates.n)
    if evidence.candidate_value.size != len(candidates) or evidence.random_value.size != len(rand):
        raise ValueError("evidence does not match the candidates and random pairs")
    value = evidence.candidate_value
    hit = reached(design, candidates)
    unknown = value == UNKNOWN
    sampled = hit & ~unknown
    sample = np.flatnonzero(sampled)
    piece = piece_of(design, candidates)
    pieces_count = len(design.breaks) + 1
    piece_size = piece_sizes(design, candidates)
    piece_post = piece_post_strata(design)
    post_size = np.bincount(piece_post, weights=piece_size)
    sample_post = piece_post[piece[sample]]
    got = np.bincount(sample_post, minlength=post_size.size)
    weight = post_size[sample_post] / np.maximum(got[sample_post], 1.0)
    y = (value[sample] == DUPLICATE).astype(np.float64)
    d = candidates.distance
    d_sample = d[sample]
    fit = fit_duplicate_rate(d_sample, y, weight)
    fold = candidates.folds(design.seed, folds)
    sample_fold = fold[sample]
    fits = tuple(
        fit_duplicate_rate(d_sample[train], y[train], weight[train]) if train.any() else fit
        for train in (sample_fold != k for k in range(folds))
    )
    crossfit = CrossFit(fits, fold, d)

    bridge = _duplicate_bridges(candidates, evidence, sampled)
    links = _cannot_link_counts(candidates, evidence, sample)
    settled = np.where(value[sample] == DUPLICATE, ~bridge[sample], links >= 1)
    residual = np.where(settled, 0.0, y - crossfit.predict(sample))
    # Sums over every pair per piece, less those over the (few) reached or known pairs.
    everything = sum(
        (
            fold_piece_totals(
                f_k, _fold_distances(candidates, design.seed, folds, k), design.breaks, pieces_count
            )
            for k, f_k in enumerate(fits)
        ),
        start=PieceTotals(np.zeros(pieces_count), np.zeros(pieces_count)),
    )
    settled_or_reached = np.flatnonzero(~unknown | hit)
    taken = crossfit.totals(settled_or_reached, piece[settled_or_reached], pieces_count)

    def count(mask: NDArray[np.bool_]) -> NDArray[np.int64]:  # masks of few pairs: gather them
        return np.bincount(piece[mask], minlength=pieces_count)

    reached_count = count(hit)
    unreached_unknown = piece_size - np.bincount(piece[settled_or_reached], minlength=pieces_count)
    # What is left of a difference of two sums is rounding where nothing is left.
    left = unreached_unknown > 0
    pieces = PieceSums(
        size=piece_size,
        reached=reached_count.astype(np.float64),
        sampled=np.bincount(piece[sample], minlength=pieces_count),
        duplicates=count(value == DUPLICATE).astype(np.float64),
        unreached_unknown=unreached_unknown.astype(np.float64),
        unreached_predicted=np.where(
            left, np.maximum(everything.predicted - taken.predicted, 0.0), 0.0
        ),
        unreached_spread=np.where(left, np.maximum(everything.spread - taken.spread, 0.0), 0.0),
    )
    # Given the closure of candidate judgements, a sampled random pair that is a duplicate
    # outside it is a duplicate the closure misses.
    random_sampled = _random_sample(rand, evidence, design.seed)
    cl = evidence.clustering.labels
    outside = (evidence.random_value == DUPLICATE) & (cl[rand.i] != cl[rand.j])
    return ResidualFrame(
        value=value,
        sampled=sampled,
        reached=hit,
        stratum=candidate_strata(design, candidates),
        piece=piece,
        piece_post=piece_post,
        piece_stratum=piece_strata(design),
        pieces=pieces,
        pending=np.flatnonzero(hit & unknown),
        sample=sample,
        sample_post=sample_post,
        sample_residual=residual,
        sample_settled=settled,
        crossfit=crossfit,
        fit=fit,
        random_residual=np.where(random_sampled, outside, 0.0),
        random_sampled=random_sampled,
        gaps=closure_gaps(
            candidates,
            evidence,
            crossfit.predict,
            sampled,
            within=crossfit.reach(GAP_PREDICTION),
        ),
    )


def jeffreys_floor(value: NDArray[np.int8], settled: NDArray[np.bool_]) -> float:
    """Floor on a stratum's residual variance where its sample is mostly duplicates.

    A stratum whose open (not settled by others) sampled pairs all turned out duplicates would
    claim zero variance after a few labels. Such strata hold at most about twice as many pairs
    as duplicates, so a Jeffreys floor (r_open / r) p (1 - p), p = (x + 1/2) / (r_open + 1),
    costs little there. Strata dominated by distinct pairs can be huge; there the monotone fit
    is trusted instead.
    """
    open_ = ~settled
    r_open = int(open_.sum())
    x_open = int((value[open_] == DUPLICATE).sum())
    if r_open == 0 or 2 * x_open < r_open:
        return 0.0
    p = (x_open + 0.5) / (r_open + 1.0)
    return r_open / value.size * p * (1.0 - p)


def residual_variance(
    residual: NDArray[np.float64], value: NDArray[np.int8], settled: NDArray[np.bool_]
) -> float:
    """s^2 of one stratum's leave-one-out residuals (ddof 1), at least jeffreys_floor."""
    s2 = float(np.var(residual, ddof=1)) if residual.size >= 2 else 0.0
    return max(s2, jeffreys_floor(value, settled))


@dataclass(frozen=True)
class StratumEstimate:
    """One post-stratum: a distance band where every pair had the same chance to be sampled."""

    low: float  # smallest and largest distance of its pairs
    high: float
    pairs: int  # N_g
    sampled: int  # r_g: reached pairs with a known value
    open_sampled: int  # of which the other observations leave the value open
    known_duplicates: int  # pairs known to be duplicates (judged or implied), sampled or not
    unsettled: int  # pairs whose value is unknown (each needs a label once reached)
    unreviewed: float  # estimated duplicates among its unsettled pairs
    variance: float  # design variance of that estimate
    inclusion: float  # r_g / N_g


@dataclass(frozen=True)
class Parts:
    """D_hat = confirmed + unreviewed + missed."""

    confirmed: int  # D of the closure: pairs inside confirmed clusters
    direct: int  # of which a human judged directly
    implied: int  # of which only the closure asserts
    unreviewed: float  # estimated duplicates among candidate pairs nobody settled
    missed: float  # estimated duplicates the miner did not propose, outside confirmed clusters


@dataclass(frozen=True)
class IncompleteEstimate:
    """N_eff = 1/q (inverse Simpson index, the Hill number of order 2) from partial labels.

    N_eff is a lower bound on support size that equals it for a uniform distribution. The
    interval bounds E[D] = C(n, 2) q, and so N_eff, joining the pool's U-statistic variance and
    the label-sampling variance.
    """

    n: int
    pairs: int  # C(n, 2)
    candidate_pairs: int
    labelled_pairs: int  # judged pairs, candidates and random
    sampled_pairs: int  # candidate pairs in the design's sample
    d_hat: float  # estimated duplicate pairs in the pool
    parts: Parts
    q_hat: float  # d_hat / C(n, 2)
    n_eff: float | None  # 1 / q_hat; None when d_hat = 0
    p3_hat: float  # from the confirmed clusters (unreviewed duplicates are mostly pairs)
    var_u: float  # U-statistic variance of D (pool sampling)
    var_unreviewed: float  # design variance of the unreviewed part
    var_missed: float  # design variance of the missed part
    d_low: float  # bounds on E[D]
    d_high: float
    n_eff_low: float
    n_eff_high: float | None  # None: no upper bound yet
    level: float
    unreviewed_ucb: float  # one-sided upper bound on the unreviewed part (model-assisted)
    missed_ucb: float  # one-sided Clopper-Pearson bound on missed duplicates, model-free
    jackknife_d_high: float  # conservative check: upper bound with the jackknife Var(D)
    jackknife_n_eff_low: float
    complete: bool  # every candidate pair is settled: nothing left to review
    unexplored_strata: int  # allocation strata with fewer than min_per_stratum pairs sampled
    random_to_go: int  # random pairs still to judge before the miner check counts as done
    closure_gaps: int  # likely duplicates that would merge clusters (closure_gaps.py)
    fit: DuplicateRateFit
    strata: tuple[StratumEstimate, ...]

    @property
    def explored(self) -> bool:
        """Every stratum explored, the miner check done and no cluster left in pieces."""
        return self.unexplored_strata == 0 and self.random_to_go == 0 and self.closure_gaps == 0

    @property
    def var_design(self) -> float:
        return self.var_unreviewed + self.var_missed

    @property
    def var_total(self) -> float:
        return self.var_u + self.var_design

    @property
    def relative_half_width(self) -> float | None:
        """(n_eff_high - n_eff_low) / (2 n_eff); None without an estimate or an upper bound."""
        if self.n_eff is None or self.n_eff_high is None:
            return None
        return (self.n_eff_high - self.n_eff_low) / (2.0 * self.n_eff)


def u_statistic_variance(n: int, sizes: Counter[int], extra_pairs: float = 0.0) -> float:
    """Estimated Var(D) (simpson._var_d_hat in floats) with extra_pairs estimated duplicate
    pairs counted as clusters of two. Their cluster structure is unknown, so a negative
    p3 - q^2 estimate is trusted only while nearly all of D is confirmed (with no extra pairs
    this is simpson's estimate exactly)."""
    pairs, n2 = n * (n - 1) / 2.0, float(n * (n - 1))
    n3 = float(n * (n - 1) * (n - 2))
    n4 = n3 * (n - 3)
    ordered = sum(m * s * (s - 1) for s, m in sizes.items()) + 2.0 * extra_pairs
    q = ordered / n2
    p3 = sum(m * s * (s - 1) * (s - 2) for s, m in sizes.items()) / n3 if n3 else 0.0
    if n4:
        squares = sum(m * (s * (s - 1)) ** 2 for s, m in sizes.items()) + 4.0 * extra_pairs
        fours = sum(m * s * (s - 1) * (s - 2) * (s - 3) for s, m in sizes.items())
        q2 = (ordered**2 - squares + fours) / n4
    else:
        q2 = q * q
    d = ordered / 2.0
    fourth = p3 - q2
    if fourth < 0.0 and d > 0.0:
        # Below 0 only by noise (p3 >= q^2), and p3 sees the confirmed clusters alone: the
        # unreviewed pairs may hide triples. The negative part counts in full while at most
        # 1% of D is unconfirmed, and fades out (the term clipped at 0) by 10%, the share the
        # stopping rule allows.
        fourth *= min(max((KNOWN_FADE - extra_pairs / d) / (KNOWN_FADE - KNOWN_FULL), 0.0), 1.0)
    return max(pairs * (q - q2) + n3 * fourth, float(variance_floor(pairs, d)))


def _jackknife_var_d(n: int, sizes: Counter[int], extra_pairs: float) -> float:
    """Delete-one-sample jackknife variance of D (simpson._jackknife_var_q times C(n,2)^2)."""
    pairs = n * (n - 1) / 2.0
    d = sum(m * s * (s - 1) / 2.0 for s, m in sizes.items()) + extra_pairs
    singles = n - sum(s * m for s, m in sizes.items()) - 2.0 * extra_pairs
    spread = max(singles, 0.0) * (2 * d) ** 2 + 2.0 * extra_pairs * (2 * d - n) ** 2
    spread += sum(s * m * (2 * d - n * (s - 1)) ** 2 for s, m in sizes.items())
    var_q = (n - 1) * spread / (n * (n * (n - 1) * (n - 2) / 2.0) ** 2)
    return var_q * pairs**2


def _proposed(candidates: Candidates, lo: int, hi: int) -> int:
    """Candidate pairs with lo <= j < hi: a generation's pairs the miner proposed (cached)."""
    count = candidates.cached(
        ("proposed", lo, hi),
        lambda: np.array([np.count_nonzero((candidates.j >= lo) & (candidates.j < hi))]),
    )
    return int(count[0])


def _generation_populations(candidates: Candidates, rand: RandomPairs) -> list[int | None]:
    """Per generation of the pool: the pairs the miner did not propose, of which the random
    pairs are a uniform sample (None for a generation beyond these candidates)."""
    bounds = (0, *rand.pool_sizes)
    out: list[int | None] = []
    for g in range(len(rand.pool_sizes)):
        lo, hi = bounds[g], bounds[g + 1]
        if hi > candidates.n:
            out.append(None)
            continue
        out.append(hi * (hi - 1) // 2 - lo * (lo - 1) // 2 - _proposed(candidates, lo, hi))
    return out


def unchecked_pairs(candidates: Candidates, rand: RandomPairs) -> int:
    """Pairs the miner did not propose in generations without a single random pair (an audit
    drawing `random_pairs` 0): there the missed duplicates are neither estimated nor bounded."""
    drawn = np.bincount(rand.generation, minlength=len(rand.pool_sizes))
    return sum(
        population
        for g, population in enumerate(_generation_populations(candidates, rand))
        if population and not drawn[g]
    )


def random_weights(
    candidates: Candidates, rand: RandomPairs, frame: ResidualFrame
) -> NDArray[np.float64]:
    """Horvitz-Thompson weight of each sampled random pair (population / sample size of its
    generation), 0 for the others: how many unproposed pairs its judgement stands for."""
    out = np.zeros(len(rand), dtype=np.float64)
    for g, population in enumerate(_generation_populations(candidates, rand)):
        mine = frame.random_sampled & (rand.generation == g)
        m = int(mine.sum())
        if population is not None and population > 0 and m:
            out[mine] = population / m
    return out


def _missed(
    candidates: Candidates,
    rand: RandomPairs,
    evidence: Evidence,
    frame: ResidualFrame,
    level: float,
) -> tuple[float, float, float]:
    """HT estimate, variance and model-free upper bound of missed duplicates.

    The variance has the candidate strata's Jeffreys floor: a random sample that came out all
    duplicates (a collapsed generator, or the first few labels) would otherwise claim to know
    the missed part exactly. A sample with no duplicate keeps variance 0: there the monotone
    model is trusted and `missed_ucb` is the model-free bound.
    """
    total = var = ucb = 0.0
    cl = evidence.clustering.labels
    inside = cl[rand.i] == cl[rand.j]  # settled by the closure of candidate judgements
    for g, population in enumerate(_generation_populations(candidates, rand)):
        mine = frame.random_sampled & (rand.generation == g)
        m = int(mine.sum())
        if population is None or population <= 0:
            continue
        if m == 0:
            ucb += population
            continue
        res = frame.random_residual[mine]
        x = int(res.sum())
        total += population * x / m
        s2 = float(np.var(res, ddof=1)) if m >= 2 else 0.0
        s2 = max(s2, jeffreys_floor(evidence.random_value[mine], inside[mine]))
        var += population**2 * (1.0 - m / population) * s2 / m
        upper = 1.0 if x >= m else float(beta_dist.ppf(level, x + 1, m - x))
        ucb += population * upper
    return total, var, ucb


def _post_stratum_estimates(candidates: Candidates, frame: ResidualFrame) -> list[StratumEstimate]:
    """Per post-stratum g: unreviewed_g = sum of predictions over its unsettled pairs +
    (N_g - r_g) * mean leave-one-out residual of its sample, and the design variance
    N_g^2 (1 - r_g/N_g) s_g^2 / r_g; with nothing sampled, the fit with Bernoulli variance."""
    sums, d = frame.pieces, candidates.distance
    size = frame.per_post(sums.size).astype(np.int64)
    k = size.size
    r = frame.per_post(sums.sampled).astype(np.int64)
    known = frame.per_post(sums.duplicates)
    # Unsettled pairs: the unreached unknown ones (per piece) and the reached unknown ones.
    pending = frame.pending
    pending_post = frame.piece_post[frame.piece[pending]]
    f_pending = frame.crossfit.predict(pending)
    open_ = frame.per_post(sums.unreached_unknown) + np.bincount(pending_post, minlength=k)
    predicted = frame.per_post(sums.unreached_predicted) + np.bincount(
        pending_post, weights=f_pending, minlength=k
    )
    bernoulli = frame.per_post(sums.unreached_spread) + np.bincount(
        pending_post, weights=f_pending * (1.0 - f_pending), minlength=k
    )
    res_sum = np.bincount(frame.sample_post, weights=frame.sample_residual, minlength=k)
    # Post-strata are runs of distance pieces, so each is a block of the sorted distances.
    d_sorted = candidates.cached(("sorted-distance",), lambda: np.sort(d))
    first = np.cumsum(size) - size
    low = np.where(size > 0, d_sorted[np.minimum(first, d.size - 1)], np.inf)
    high = np.where(size > 0, d_sorted[np.maximum(first + size - 1, 0)], -np.inf)
    at = np.argsort(frame.sample_post, kind="stable")  # positions in the sample, by post-stratum
    groups = np.split(at, np.searchsorted(frame.sample_post[at], np.arange(1, k)))
    out = []
    for g in np.flatnonzero(size):
        n_g, r_g = int(size[g]), int(r[g])
        if r_g == 0:
            part, var = float(predicted[g]), float(bernoulli[g])
        else:
            mine = groups[g]
            part = float(predicted[g]) + (n_g - r_g) * float(res_sum[g]) / r_g
            s2 = residual_variance(
                frame.sample_residual[mine],
                frame.value[frame.sample[mine]],
                frame.sample_settled[mine],
            )
            var = n_g**2 * (1.0 - r_g / n_g) * s2 / r_g
        out.append(
            StratumEstimate(
                low=float(low[g]),
                high=float(high[g]),
                pairs=n_g,
                sampled=r_g,
                open_sampled=int(np.count_nonzero(~frame.sample_settled[groups[g]])),
                known_duplicates=int(known[g]),
                unsettled=int(open_[g]),
                unreviewed=part,
                variance=var,
                inclusion=r_g / n_g,
            )
        )
    return out


def _provisional_interval(
    strata: list[StratumEstimate],
    d_hat: float,
    confirmed: int,
    missed: tuple[float, float, float],
    var: float,
    level: float,
    clusters: float,
) -> tuple[float, float]:
    """Bounds on E[D] before the review has explored what it must (IncompleteEstimate.explored).

    Until then parts of D-hat rest on no sample. A distance band with no sampled pair is the
    calibration curve's extrapolation, 1 everywhere until a first "not duplicate" is seen, with
    Bernoulli variance f (1 - f) = 0: the interval claimed N_eff 91-104 for a pool of 300
    outputs over the first 56 of 245 labels. A band whose sampled pairs the others all settle
    (duplicates inside clusters the closure has joined) says as little about its unsettled
    pairs: ten outputs of ~30 copies read N_eff 9.5 [9.2, 9.8] at the stop, their 135 far
    pairs across outputs counted as duplicates, none of them ever sampled. And the miner's
    check counts only the random pairs the closure has not joined yet, so while fragments of
    one output are still apart the random pairs that joined them no longer count as missed (a
    pool of ten outputs read N_eff 15-18 two thirds into its review). So the bounds are those of the interval with the unsampled
    bands' pairs all distinct and the missed part 0, and with those pairs all duplicates and
    the missed part at its model-free upper bound (partial identification); the estimate
    itself is unchanged. `missed` is (estimate, variance, upper bound).
    """
    blind = [st for st in strata if st.open_sampled == 0 and st.unsettled > 0]
    estimate, variance, upper = missed
    base = max(d_hat - sum(st.unreviewed for st in blind) - estimate, float(confirmed))
    var = max(var - sum(st.variance for st in blind) - variance, 0.0)
    low = d_interval(base, var, level, clusters)[0] if base > 0 else 0.0
    top = base + sum(st.unsettled for st in blind) + max(upper, estimate)
    high = d_interval(top, var, level, clusters)[1] if top > 0 else 0.0
    return low, high


MARKOV_SHARE = 0.1  # of the interval's lower tail that the floor below may add


def markov_d_floor(confirmed: int, level: float) -> float:
    """A floor on E[D] from the confirmed duplicates alone, whatever the distribution.

    Early in a review the interval's lower end can sit at 1e-70 (a wide log-scale interval over
    few clusters), which read as N_eff up to 1e77. The pool holds at least `confirmed`
    duplicate pairs, and Markov's inequality, P(D >= c) <= E[D] / c, makes E[D] < a c unlikely
    (probability at most a) when D >= c was seen. With a a tenth of the lower tail, the
    interval's lower tail errs at most 1.1 times as often, and N_eff's upper end stays
    below C(n,2) / (a c).
    """
    return MARKOV_SHARE * (1.0 - level) / 2.0 * confirmed


def _candidate_duplicates(frame: ResidualFrame) -> int:
    return int(frame.pieces.duplicates.sum())


def _unknown_pairs(frame: ResidualFrame) -> int:
    return int(frame.pieces.unreached_unknown.sum()) + frame.pending.size


def _unexplored(design: ReviewDesign, frame: ResidualFrame, evidence: Evidence) -> int:
    """Strata with fewer than min_per_stratum pairs sampled, or none whose value the other
    observations leave open, and something left unknown (a stratum the judgements settle
    whole, e.g. one a reviewer went through, needs no sample).

    Pairs judged "unsure" or tied are passed over: a stratum of four pairs, one of them
    unsure, is explored with the other three (else a lone reviewer could never finish it).
    A sample the closure settles whole (duplicates inside joined clusters) tells nothing of
    the stratum's unsettled pairs, which the monotone fit would count as duplicates wherever
    no sampled "not duplicate" lies beyond them; one label among them settles that.
    """
    k = design.strata
    sums = frame.pieces
    size = frame.per_stratum(sums.size, k)
    got = frame.per_stratum(sums.sampled, k)
    opened = frame.open_sampled(k)
    unknown = frame.per_stratum(sums.unreached_unknown, k) + np.bincount(
        frame.stratum[frame.pending], minlength=k
    )
    passed = np.bincount(frame.stratum[np.flatnonzero(evidence.candidate_unsure)], minlength=k)
    need = np.minimum(design.min_per_stratum, size - passed)
    return int(np.sum(((got < need) | (opened == 0)) & (unknown > passed)))


def estimate_incomplete(
    candidates: Candidates,
    design: ReviewDesign,
    evidence: Evidence,
    random_pairs: RandomPairs | None = None,
    level: float = 0.95,
    *,
    frame: ResidualFrame | None = None,
) -> IncompleteEstimate:
    """D_hat, N_eff and their interval from the design's sample of labelled pairs.

    `evidence` comes from pairs.judge_evidence on the same candidates and random pairs;
    `frame`, if given, from residual_frame on the same arguments (the queue needs it too).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    rand = random_pairs if random_pairs is not None else RandomPairs.empty(candidates.n)
    if evidence.candidate_value.size != len(candidates) or evidence.random_value.size != len(rand):
        raise ValueError("evidence does not match the candidates and random pairs")
    n = candidates.n
    if frame is None:
        frame = residual_frame(candidates, design, evidence, rand)
    strata = _post_stratum_estimates(candidates, frame)
    open_pairs = _unknown_pairs(frame)
    # Each part is an estimate of a count in a finite population: keep it there.
    unreviewed = min(max(sum(st.unreviewed for st in strata), 0.0), float(open_pairs))
    var_unreviewed = sum(st.variance for st in strata)
    missed, var_missed, missed_ucb = _missed(candidates, rand, evidence, frame, level)
    clustering = evidence.clustering
    confirmed = clustering.d
    outside = n * (n - 1) // 2 - len(candidates) - (confirmed - _candidate_duplicates(frame))
    missed = min(missed, float(max(outside, 0)))
    d_hat = confirmed + unreviewed + missed
    sizes = Counter(clustering.sizes)
    extra = unreviewed + missed
    var_u = u_statistic_variance(n, sizes, extra)
    var_design = var_unreviewed + var_missed
    z1 = float(norm.ppf(level))
    # Estimated unreviewed and missed duplicates count as clusters of two for the t's df.
    clusters = sum(m for s, m in sizes.items() if s >= 2) + extra
    if d_hat > 0:
        d_low, d_high = d_interval(d_hat, var_u + var_design, level, clusters)
        _, jack_high = d_interval(
            d_hat, _jackknife_var_d(n, sizes, extra) + var_design, level, clusters
        )
    else:
        d_low = 0.0
        d_high = jack_high = zero_collision_bound(level) + z1 * math.sqrt(var_design)
    unexplored = _unexplored(design, frame, evidence)
    random_to_go = int(random_deficits(design, rand, evidence, frame.random_sampled).sum())
    if unexplored or random_to_go or frame.gaps.size:
        parts = (missed, var_missed, missed_ucb)
        low, high = _provisional_interval(
            strata, d_hat, confirmed, parts, var_u + var_design, level, clusters
        )
        d_low, d_high = min(d_low, low), max(d_high, high)
        jack_var = _jackknife_var_d(n, sizes, extra) + var_design
        _, jack_wide = _provisional_interval(
            strata, d_hat, confirmed, parts, jack_var, level, clusters
        )
        jack_high = max(jack_high, jack_wide)
    d_low = max(d_low, markov_d_floor(confirmed, level))
    pairs = n * (n - 1) // 2
    if confirmed == pairs:
        # Every sample in one confirmed cluster: D is known (nothing is unreviewed or missed,
        # whatever the design's variances still hold), and q's bound is the exact one.
        d_low = one_cluster_d_low(n, level)
    d_high, jack_high = min(d_high, float(pairs)), min(jack_high, float(pairs))  # q <= 1
    n_eff_low, n_eff_high = n_eff_bounds(n, d_low, d_high)
    n3 = n * (n - 1) * (n - 2)
    return IncompleteEstimate(
        n=n,
        pairs=pairs,
        candidate_pairs=len(candidates),
        labelled_pairs=evidence.labelled,
        sampled_pairs=frame.sample.size,
        d_hat=d_hat,
        parts=Parts(
            confirmed=confirmed,
            direct=clustering.direct_pairs,
            implied=clustering.implied_pairs,
            unreviewed=unreviewed,
            missed=missed,
        ),
        q_hat=d_hat / pairs,
        n_eff=pairs / d_hat if d_hat > 0 else None,
        p3_hat=sum(m * s * (s - 1) * (s - 2) for s, m in sizes.items()) / n3 if n3 else 0.0,
        var_u=var_u,
        var_unreviewed=var_unreviewed,
        var_missed=var_missed,
        d_low=d_low,
        d_high=d_high,
        n_eff_low=n_eff_low,
        n_eff_high=n_eff_high,
        level=level,
        # bounds on counts in finite populations: no more than the pairs they count among
        unreviewed_ucb=min(unreviewed + z1 * math.sqrt(var_unreviewed), float(open_pairs)),
        missed_ucb=min(missed_ucb, float(max(outside, 0))),
        jackknife_d_high=jack_high,
        jackknife_n_eff_low=pairs / jack_high,
        complete=_unknown_pairs(frame) == 0,
        unexplored_strata=unexplored,
        random_to_go=random_to_go,
        closure_gaps=int(frame.gaps.size),
        fit=frame.fit,
        strata=tuple(strata),
    )
