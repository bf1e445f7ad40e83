"""A stratum whose sample the closure settles whole says nothing of its unsettled pairs.

Ten outputs, about 30 copies each: every sample's k nearest earlier samples are copies of its own
output, except for the first few copies of each output, whose free slots a k-NN miner fills
with far samples of other outputs. The review joins the outputs through the near pairs; the
last distance band then holds a few hundred duplicates the closure implies and ~135 far pairs
across outputs. Five sampled pairs there, all implied duplicates, left the monotone fit at 1
beyond them: the far pairs were counted as duplicates with no variance, and the stop read
N_eff 9.50 [9.21, 9.79] for ten outputs (seed 12; the pool's own D says 9.78). And an output
nobody had judged yet stayed 26 singletons, its 210 pairs the miner did not propose left to a
random check that met none of them (seed 7: D_hat 4,287 against 4,501, a design sd of 52).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from numpy.typing import NDArray

from app.estimate import (
    Candidates,
    Evidence,
    IncompleteEstimate,
    RandomPairs,
    new_design,
    sample_noncandidate_pairs,
)
from app.estimate.oracle import oracle_review

OUTPUTS, COPIES, K = 10, 30, 5
FAR = 8.7  # every pair across outputs lies beyond this; every copy within 0.7


def ten_outputs(rng: np.random.Generator) -> tuple[NDArray[np.int64], Candidates]:
    """Identities and the candidates of a miner proposing each sample's k nearest earlier ones."""
    n = OUTPUTS * COPIES
    ids = rng.integers(0, OUTPUTS, n)
    lo: list[int] = []
    hi: list[int] = []
    dist: list[float] = []
    for t in range(1, n):
        same = np.flatnonzero(ids[:t] == ids[t])
        other = np.flatnonzero(ids[:t] != ids[t])
        near = rng.choice(same, min(K, same.size), replace=False)
        far = rng.choice(other, min(K - near.size, other.size), replace=False)
        lo += near.tolist() + far.tolist()
        hi += [t] * (near.size + far.size)
        dist += (0.01 + np.abs(rng.normal(0.0, 0.15, near.size))).tolist()
        dist += (FAR + rng.gamma(2.0, 0.3, far.size)).tolist()
    return ids, Candidates.build(n, np.array(lo), np.array(hi), np.array(dist))


@pytest.mark.parametrize("seed", [2, 7, 12])
def test_far_pairs_behind_a_settled_sample_are_labelled_not_assumed(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids, c = ten_outputs(rng)
    truth = (ids[c.i] == ids[c.j]).astype(np.int8)
    n = ids.size
    picked = sample_noncandidate_pairs(n, np.stack([c.i, c.j], 1), 50, rng)
    rand = RandomPairs.build(n, picked[:, 0], picked[:, 1], np.ones(len(picked)))
    r_truth = (ids[rand.i] == ids[rand.j]).astype(np.int8)
    pool_d = sum(math.comb(k, 2) for k in Counter(ids.tolist()).values())
    far = truth == 0
    assert far.sum() > 100  # the situation this test is about

    def watch(est: IncompleteEstimate, evidence: Evidence, *_: object) -> None:
        high = est.n_eff_high if est.n_eff_high is not None else math.inf
        # Every interval shown along the way holds the ten outputs.
        assert est.n_eff_low <= OUTPUTS <= high, (evidence.labelled, est.n_eff_low, high)

    review = oracle_review(c, truth, new_design(c, seed), rand, r_truth, handout=1, watch=watch)
    assert review.stopped, "the queue ran dry before the stopping rule was met"
    est, labels = review.estimate, review.labels
    assert (labels[far] >= 0).any()  # the review looked at a far pair
    assert est.parts.confirmed == pool_d  # every output whole
    # What the labels leave to estimate is off by no more than the design claims it may be.
    assert abs(est.d_hat - pool_d) <= 3.0 * math.sqrt(est.var_design) + 1.0, (
        est.d_hat,
        pool_d,
        est.parts,
        est.var_design,
    )
