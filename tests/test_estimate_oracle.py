"""The oracle review: the loop the benches and coverage tests run, checked on its own."""

from __future__ import annotations

import numpy as np
import pytest

from app.estimate import (
    RandomPairs,
    estimate_incomplete,
    judge_evidence,
    new_design,
    sample_noncandidate_pairs,
    stopping_status,
)
from app.estimate.oracle import oracle_review
from tests.test_estimate_incomplete import population


def test_it_labels_what_the_queue_hands_out_until_the_stop() -> None:
    pop = population(3)
    c = pop.candidates
    rounds: list[int] = []
    review = oracle_review(
        c,
        pop.truth,
        new_design(c, 0, random_share=0.0, random_min=0),
        handout=5,
        watch=lambda est, evidence, frame: rounds.append(evidence.labelled),
    )
    assert review.stopped and stopping_status(review.estimate).stop
    given = review.labels >= 0
    assert given.sum() == review.labelled == rounds[-1]
    assert np.array_equal(review.labels[given], pop.truth[given])  # the truth, nothing else
    # One estimate a round, before each round's five labels (fewer where the queue had fewer).
    assert rounds[0] == 0 and all(0 < b - a <= 5 for a, b in zip(rounds, rounds[1:], strict=False))
    # The estimate returned is the one of the labels given, under the design they were given in.
    last = estimate_incomplete(c, review.design, judge_evidence(c, review.labels))
    assert (last.d_hat, last.n_eff_low) == (review.estimate.d_hat, review.estimate.n_eff_low)
    # The queue is seeded: the same review twice, label for label.
    again = oracle_review(c, pop.truth, new_design(c, 0, random_share=0.0, random_min=0), handout=5)
    assert np.array_equal(again.labels, review.labels)


def test_a_budget_ends_it_before_the_stop() -> None:
    pop = population(5)
    c = pop.candidates
    design = new_design(c, 1, random_share=0.0, random_min=0)
    review = oracle_review(c, pop.truth, design, handout=5, budget=12)
    assert review.labelled == 12 and not review.stopped
    assert int((review.labels >= 0).sum()) == 12
    evidence = judge_evidence(c, review.labels)
    assert evidence.labelled == review.labelled


def test_random_pairs_are_judged_from_their_own_truth() -> None:
    pop = population(8)
    c = pop.candidates
    rng = np.random.default_rng(0)
    picked = sample_noncandidate_pairs(c.n, np.stack([c.i, c.j], 1), 30, rng)
    rand = RandomPairs.build(c.n, picked[:, 0], picked[:, 1], np.ones(len(picked)))
    r_truth = (pop.ids[rand.i] == pop.ids[rand.j]).astype(np.int8)
    review = oracle_review(c, pop.truth, new_design(c, 0), rand, r_truth)
    judged = review.random_labels >= 0
    assert judged.any() and np.array_equal(review.random_labels[judged], r_truth[judged])
    with pytest.raises(ValueError, match="random pairs need their truth"):
        oracle_review(c, pop.truth, new_design(c, 0), rand)
