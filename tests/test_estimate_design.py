"""The review design: priorities, evidence from judgements, strata, inclusion probabilities by
enumeration and simulation, the non-candidate sampler and the queue."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from scipy.stats import binomtest, chisquare, kstest

from app.estimate import (
    DISTINCT,
    DUPLICATE,
    UNKNOWN,
    Candidates,
    RandomPairs,
    ReviewDesign,
    derive_edges,
    estimate_incomplete,
    inclusion,
    judge_evidence,
    new_design,
    next_pair,
    next_pairs,
    pair_fold,
    pair_priority,
    post_strata,
    reach,
    reached,
    residual_frame,
    sample_noncandidate_pairs,
    update_design,
)

# --- priorities ----------------------------------------------------------------------------------


def test_priority_is_order_free_seeded_and_uniform() -> None:
    rng = np.random.default_rng(0)
    i = rng.integers(0, 10**6, 20_000)
    j = i + rng.integers(1, 10**6, 20_000)
    u = pair_priority(7, i, j)
    assert np.array_equal(u, pair_priority(7, j, i))
    assert np.array_equal(u, pair_priority(7, i, j))
    assert not np.array_equal(u, pair_priority(8, i, j))
    assert u.min() >= 0.0 and u.max() < 1.0
    assert kstest(u, "uniform").pvalue > 1e-3
    # Consecutive pairs (as a miner emits them) are not correlated.
    seq = pair_priority(7, np.zeros(20_000, dtype=np.int64), np.arange(1, 20_001))
    assert abs(np.corrcoef(seq[:-1], seq[1:])[0, 1]) < 0.03


def test_folds_are_balanced_and_independent_of_priority() -> None:
    i = np.arange(30_000)
    j = i + 1 + (i * 7919) % 1000
    fold = pair_fold(3, i, j, 5)
    u = pair_priority(3, i, j)
    counts = np.bincount(fold, minlength=5)
    assert chisquare(counts).pvalue > 1e-3
    table = np.histogram2d(fold, u, bins=[5, 4])[0]
    expected = np.outer(table.sum(1), table.sum(0)) / table.sum()
    assert chisquare(table.ravel(), expected.ravel(), ddof=7).pvalue > 1e-3


# --- candidates and evidence ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("i", "j", "d", "message"),
    [
        ([0], [0], [0.1], "itself"),
        ([0], [5], [0.1], "out of range"),
        ([0, 1], [1, 0], [0.1, 0.2], "twice"),
        ([0], [1], [float("nan")], "finite"),
        ([0, 1], [1, 2], [0.1], "one value per pair"),
    ],
)
def test_candidates_reject_bad_input(
    i: list[int], j: list[int], d: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Candidates.build(5, i, j, d)


def test_evidence_hand_case() -> None:
    # 0-1 and 1-2 duplicate: 0-2 implied. 0-3 distinct: a cannot-link between {0,1,2} and {3},
    # so 2-3 and 1-3 are implied distinct. 4-5 duplicate (3-4 distinct does not touch it).
    c = Candidates.build(
        7,
        [0, 1, 0, 3, 0, 2, 4, 5, 1],
        [1, 2, 2, 4, 3, 3, 5, 6, 3],
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    )
    labels = [DUPLICATE, DUPLICATE, UNKNOWN, DISTINCT, DISTINCT, UNKNOWN, DUPLICATE, UNKNOWN, -1]
    ev = judge_evidence(c, labels)
    assert ev.clustering.clusters == ((0, 1, 2), (4, 5))
    assert ev.candidate_value.tolist() == [1, 1, 1, 0, 0, 0, 1, -1, 0]
    assert ev.labelled == 5
    # Judging 3-5 duplicate would merge 3 into {4, 5}, which 3-4 forbids: blocked, distinct.
    c2 = Candidates.build(6, [3, 3, 4], [4, 5, 5], [0.1, 0.2, 0.05])
    ev2 = judge_evidence(c2, [DISTINCT, DUPLICATE, DUPLICATE])
    assert ev2.candidate_value.tolist() == [0, 0, 1]
    assert ev2.clustering.blocked == ((3, 5, 0.2),)


def test_random_pairs_take_their_label_or_what_the_closure_implies() -> None:
    c = Candidates.build(6, [0, 1], [1, 2], [0.1, 0.1])
    rand = RandomPairs.build(6, [0, 3, 4], [2, 4, 5], [0.9, 0.9, 0.9])
    ev = judge_evidence(c, [DUPLICATE, DUPLICATE], rand, [UNKNOWN, DUPLICATE, UNKNOWN])
    assert ev.random_value.tolist() == [DUPLICATE, DUPLICATE, UNKNOWN]
    # Random labels stay out of the closure: the sample must stay uniform given it.
    assert ev.clustering.clusters == ((0, 1, 2),)


def test_random_pairs_validate_generations() -> None:
    rand = RandomPairs.build(10, [0, 2, 7], [3, 8, 9], [1.0, 1.0, 1.0], [0, 1, 1], (5, 10))
    assert rand.generation.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="outside its generation"):
        RandomPairs.build(10, [0], [7], [1.0], [0], (5, 10))
    with pytest.raises(ValueError, match="pool_sizes"):
        RandomPairs.build(10, [0], [7], [1.0], [0], (10, 5))


# --- strata and the reach threshold --------------------------------------------------------------


def test_edges_grow_geometrically_from_the_closest_pair_and_from_a_centre() -> None:
    d = np.arange(1000, dtype=np.float64)
    assert derive_edges(d) == derive_edges(d, base=4, growth=2.0)
    edges = derive_edges(d, base=16, growth=2.0)
    ranks = [math.ceil(e) for e in edges]  # cut midway: rank r sits at r - 0.5
    assert ranks == [16, 48, 112, 240, 496]
    centred = derive_edges(d, centre=500.0, base=16, growth=2.0)
    ranks = [math.ceil(e) for e in centred]
    # Bands of 16, 32, 64, 128, 256 both ways from rank 500.
    assert ranks == [4, 260, 388, 452, 484, 500, 516, 548, 612, 740, 996]
    # Tied distances are never split.
    tied = np.repeat(np.arange(10, dtype=np.float64), 10)
    cuts = derive_edges(tied, base=4)
    assert cuts and all(e % 1 == 0.5 for e in cuts)


def _line(n_pairs: int, n: int = 2000, seed: int = 0) -> Candidates:
    rng = np.random.default_rng(seed)
    keys = rng.choice(n * (n - 1) // 2, n_pairs, replace=False)
    j = np.floor((1 + np.sqrt(1 + 8 * keys)) / 2).astype(np.int64)
    j = np.where(j * (j - 1) // 2 > keys, j - 1, j)
    i = keys - j * (j - 1) // 2
    return Candidates.build(n, i, j, rng.random(n_pairs))


def test_reach_and_update_keep_the_sample_exact() -> None:
    c = _line(3000)
    design = new_design(c, seed=5)
    assert not reached(design, c).any()
    for s, t in [(0, 0.5), (2, 0.1), (5, 0.9)]:
        design = reach(design, s, t)
    before = reached(design, c)
    assert before.any()
    grown = _line(4000, seed=0)  # same first pairs? no: a different pool; re-derive on it
    moved = update_design(design, c, centre=0.3)
    assert moved.edges != design.edges
    assert set(design.breaks) <= set(moved.breaks)
    assert np.array_equal(reached(moved, c), before)
    assert update_design(design, c) is design  # nothing grew, no new centre
    assert update_design(moved, c, centre=0.301) is moved  # a small move changes nothing
    assert update_design(design, grown).derived_for == len(grown)
    assert ReviewDesign.from_dict(moved.to_dict()) == moved


def test_reached_is_every_pair_whose_priority_is_at_most_its_threshold() -> None:
    rng = np.random.default_rng(8)
    for size in (2, 50, 3000):
        # Rounded distances: many pairs sit exactly on a break.
        c = Candidates.build(
            size + 1,
            np.zeros(size, dtype=np.int64),
            np.arange(1, size + 1),
            np.round(rng.gamma(2.0, 0.2, size), 2),
        )
        design = new_design(c, seed=int(rng.integers(100)))
        for _ in range(6):
            stratum = int(rng.integers(design.strata))
            level = float(rng.choice([0.0, 1.0, rng.random(), c.priorities(design.seed)[0]]))
            design = reach(design, stratum, level)
            if rng.random() < 0.3:
                design = update_design(design, c, centre=float(rng.choice(c.distance)))
            t = np.asarray(design.thresholds)[np.searchsorted(design.breaks, c.distance, "right")]
            assert np.array_equal(reached(design, c), c.priorities(design.seed) <= t)


def test_inclusion_probability_is_the_threshold_by_simulation() -> None:
    """Over design seeds, a pair is reached with probability t(d), independently of d."""
    c = _line(400)
    design = new_design(c, seed=0)
    for s in range(design.strata):
        design = reach(design, s, 0.15 + 0.1 * (s % 4))
    t = np.asarray(design.thresholds)[np.searchsorted(design.breaks, c.distance, side="right")]
    hits = np.zeros(len(c))
    seeds = 400
    for seed in range(seeds):
        hits += reached(ReviewDesign.from_dict({**design.to_dict(), "seed": seed}), c)
    # Pool pairs by threshold: binomial test per level.
    for level in np.unique(t):
        mine = t == level
        k, trials = int(hits[mine].sum()), int(mine.sum()) * seeds
        assert binomtest(k, trials, float(level)).pvalue > 1e-3, level
    got = inclusion(design, c)
    g = post_strata(design, c)
    for group in np.unique(g):
        mine = g == group
        assert got[mine] == pytest.approx(reached(design, c)[mine].mean())


def test_the_queue_samples_a_stratum_by_simple_random_sampling() -> None:
    """Enumeration: after 3 reaches in a stratum of 6 pairs, all C(6,3) subsets are equally
    likely over design seeds (the labels do not steer which pairs are reached)."""
    c = Candidates.build(20, [0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 11], [0.1] * 6)
    truth = np.array([1, 0, 1, 0, 0, 1], dtype=np.int8)
    counts: Counter[tuple[int, ...]] = Counter()
    seeds = 1000
    for seed in range(seeds):
        design = new_design(c, seed, random_share=0.0, random_min=0, min_per_stratum=3)
        labels = np.full(6, UNKNOWN, dtype=np.int8)
        got: list[int] = []
        while len(got) < 3:
            handout, design = next_pair(c, design, judge_evidence(c, labels))
            assert handout is not None and handout.kind == "candidate"
            labels[handout.index] = truth[handout.index]
            got.append(handout.index)
        counts[tuple(sorted(got))] += 1
        assert np.flatnonzero(reached(design, c)).tolist() == sorted(got)
    observed = [counts[s] for s in itertools.combinations(range(6), 3)]
    assert sum(observed) == seeds
    assert chisquare(observed).pvalue > 1e-3


def test_the_queue_skips_what_the_closure_implies_and_explores_every_stratum() -> None:
    # A triangle 0-1-2 (all close) and far distinct pairs.
    c = Candidates.build(
        40,
        [0, 1, 0] + list(range(3, 33)),
        [1, 2, 2] + list(range(4, 34)),
        [0.01, 0.02, 0.03] + list(np.linspace(0.5, 1.0, 30)),
    )
    truth = np.array([1, 1, 1] + [0] * 30, dtype=np.int8)
    # Strata smaller than min_per_stratum are reached whole.
    design = new_design(c, 1, random_share=0.0, random_min=0, min_per_stratum=20)
    labels = np.full(len(c), UNKNOWN, dtype=np.int8)
    spent = 0
    while True:
        handouts, design = next_pairs(c, design, judge_evidence(c, labels), count=3)
        if not handouts:
            break
        for h in handouts:
            labels[h.index] = truth[h.index]
            spent += 1
    ev = judge_evidence(c, labels)
    assert ev.clustering.d == 3
    assert reached(design, c).all()
    # Whichever side of the triangle came last was implied by the other two: free.
    assert labels[:3].tolist().count(UNKNOWN) == 1
    assert spent == len(c) - 1


def test_pending_pairs_come_first_and_exclusions_hold() -> None:
    c = _line(200)
    design = new_design(c, 2, random_share=0.0, random_min=0)
    ev = judge_evidence(c, None)
    first, design = next_pairs(c, design, ev, count=4)
    # Not judged yet: the same pairs come back, except those leased to someone else.
    again, _ = next_pairs(c, design, ev, count=4, exclude_candidates={first[0].index})
    assert [h.index for h in again[:3]] == [h.index for h in first[1:]]
    assert first[0].index not in [h.index for h in again]


def test_random_pairs_get_their_share_of_labels() -> None:
    c = _line(300, n=400)
    picked = sample_noncandidate_pairs(400, np.stack([c.i, c.j], 1), 40, np.random.default_rng(1))
    rand = RandomPairs.build(400, picked[:, 0], picked[:, 1], np.ones(40))
    design = new_design(c, 3, random_share=0.05, random_min=10)
    handouts, _ = next_pairs(c, design, judge_evidence(c, None, rand), rand, count=60)
    kinds = [h.kind for h in handouts]
    assert kinds.count("random") == 10
    assert "random" not in kinds[:3] and kinds[3] == "random"  # every fourth label early on


def test_a_hole_in_the_random_order_goes_out_first() -> None:
    """The miner check counts a prefix of the random order: a pair before judged ones (its
    annotator left) is handed out before anything else random, and one leased to someone else
    counts as under way instead of sending more random pairs."""
    c = _line(300, n=400)
    picked = sample_noncandidate_pairs(400, np.stack([c.i, c.j], 1), 40, np.random.default_rng(1))
    rand = RandomPairs.build(400, picked[:, 0], picked[:, 1], np.ones(40))
    design = new_design(c, 3, random_share=0.05, random_min=10)
    order = np.argsort(pair_priority(design.seed, rand.i, rand.j), kind="stable")
    r_labels = np.full(40, -1, dtype=np.int8)
    r_labels[order[1:10]] = 0  # nine judged out of turn: the first one is a hole
    ev = judge_evidence(c, None, rand, r_labels)
    assert estimate_incomplete(c, design, ev, rand).random_to_go == 10
    handouts, _ = next_pairs(c, design, ev, rand, count=60)
    random = [h.index for h in handouts if h.kind == "random"]
    assert random == [order[0]]  # ten counted then, the quota: no other random pair is due
    leased, _ = next_pairs(c, design, ev, rand, count=60, exclude_random={int(order[0])})
    assert [h for h in leased if h.kind == "random"] == []


# --- the non-candidate sampler -------------------------------------------------------------------


def test_noncandidate_sampler_is_uniform_over_the_non_candidates() -> None:
    n = 9
    cand = [(0, 1), (2, 5), (3, 8), (7, 8), (1, 4)]
    population = [p for p in itertools.combinations(range(n), 2) if p not in cand]
    for m in (3, 8):  # rejection sampling and direct choice (population <= 4 m) paths
        counts: Counter[tuple[int, int]] = Counter()
        rng = np.random.default_rng(m)
        reps = 3000
        for _ in range(reps):
            got = sample_noncandidate_pairs(n, cand, m, rng)
            rows = [tuple(r) for r in got.tolist()]
            assert len(set(rows)) == m
            counts.update(rows)  # type: ignore[arg-type]
        assert set(counts) <= set(population)
        observed = [counts[p] for p in population]
        assert sum(observed) == m * reps
        assert chisquare(observed).pvalue > 1e-3


def test_noncandidate_sampler_generations_and_limits() -> None:
    rng = np.random.default_rng(0)
    got = sample_noncandidate_pairs(100, np.empty((0, 2), dtype=np.int64), 500, rng, new_from=60)
    assert (got[:, 1] >= 60).all() and (got[:, 0] < got[:, 1]).all()
    assert len({tuple(r) for r in got.tolist()}) == 500
    # Asking for more than exist returns them all.
    all_pairs = sample_noncandidate_pairs(5, [(0, 1)], 100, rng)
    assert len(all_pairs) == 9
    with pytest.raises(ValueError):
        sample_noncandidate_pairs(5, [], 1, rng, new_from=5)


def test_a_stratum_hands_out_its_unreached_pairs_in_priority_order() -> None:
    """Each candidate handout is the unreached pair of lowest priority in its stratum, also
    when the strata were re-derived and one stratum holds pieces reached to different depths."""
    c = _line(3000)
    design = new_design(c, seed=4, random_share=0.0, random_min=0)
    for s, t in [(0, 0.6), (3, 0.3), (6, 0.5), (9, 0.05)]:
        design = reach(design, s, t)
    design = update_design(design, c, centre=0.2)
    thresholds = np.asarray(design.thresholds)[np.searchsorted(design.breaks, c.distance, "right")]
    stratum = np.searchsorted(design.edges, c.distance, side="right")
    mixed = [s for s in np.unique(stratum) if np.unique(thresholds[stratum == s]).size > 1]
    assert mixed  # the case the queue must skip pairs for
    u = pair_priority(design.seed, c.i, c.j)
    truth = np.where(c.distance < 0.1, DUPLICATE, DISTINCT).astype(np.int8)
    labels = np.where(reached(design, c), truth, UNKNOWN).astype(np.int8)  # none pending
    checked = in_mixed = 0
    for _ in range(400):  # runs of singletons chained by likely duplicates go out as gaps
        if checked >= 100 and in_mixed >= 10:
            break
        before = reached(design, c)
        evidence = judge_evidence(c, labels)
        gaps = residual_frame(c, design, evidence).gaps  # likely merges go out first
        handout, design = next_pair(c, design, evidence)
        assert handout is not None and handout.kind == "candidate"
        k = handout.index
        labels[k] = truth[k]
        if k in gaps:
            continue
        # Pairs the closure settles are reached for free on the way; the rest go in order.
        open_ = np.flatnonzero(
            ~before & (stratum == stratum[k]) & (evidence.candidate_value == UNKNOWN)
        )
        assert k == open_[np.argmin(u[open_])]
        checked += 1
        in_mixed += int(stratum[k] in mixed)
    assert checked >= 100 and in_mixed >= 10
