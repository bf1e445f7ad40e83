"""An annotator who knows the truth, answering the review queue through the estimator's own code
path: how the benches and tests check a review (each interval shown on the way, and the stop)
against pools whose answer is known, without a store or a server in between."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.estimate.design import ReviewDesign, update_design
from app.estimate.duplicate_rate import duplicates_stop
from app.estimate.incomplete import (
    IncompleteEstimate,
    ResidualFrame,
    estimate_incomplete,
    residual_frame,
)
from app.estimate.pairs import Candidates, Evidence, RandomPairs, judge_evidence
from app.estimate.queue import next_pairs
from app.estimate.stopping import stopping_status

# What a caller sees of each round, before the stopping rule reads the estimate.
Watch = Callable[[IncompleteEstimate, Evidence, ResidualFrame], None]
MAX_ROUNDS = 10_000


@dataclass(frozen=True)
class OracleReview:
    estimate: IncompleteEstimate  # the last one: the stop's, unless the budget or queue ended it
    labelled: int  # labels spent
    stopped: bool  # the stopping rule ended it (not the budget, nor a queue run dry)
    labels: NDArray[np.int8]  # per candidate pair: its truth where handed out, -1 elsewhere
    random_labels: NDArray[np.int8]  # the same for the random pairs
    design: ReviewDesign  # the design after the last handout


def oracle_review(
    candidates: Candidates,
    truth: NDArray[np.int8],
    design: ReviewDesign,
    random_pairs: RandomPairs | None = None,
    random_truth: NDArray[np.int8] | None = None,
    *,
    level: float = 0.95,
    handout: int = 5,
    budget: int | None = None,
    recentre: bool = False,
    watch: Watch | None = None,
) -> OracleReview:
    """Judge what the queue hands out, `handout` pairs a round (as a page asks for them), until
    the stopping rule says stop or `budget` labels are spent. With `recentre`, the strata are
    re-derived around where duplicates stop once every stratum is explored (update_design)."""
    if random_pairs is not None and random_truth is None:
        raise ValueError("random pairs need their truth")
    labels = np.full(len(candidates), -1, dtype=np.int8)
    random_labels = np.full(0 if random_pairs is None else len(random_pairs), -1, dtype=np.int8)
    for _ in range(MAX_ROUNDS):
        given = None if random_pairs is None else random_labels
        evidence = judge_evidence(candidates, labels, random_pairs, given)
        frame = residual_frame(candidates, design, evidence, random_pairs)
        estimate = estimate_incomplete(
            candidates, design, evidence, random_pairs, level, frame=frame
        )
        if watch is not None:
            watch(estimate, evidence, frame)
        stopped = stopping_status(estimate).stop
        room = handout if budget is None else min(handout, budget - evidence.labelled)
        if stopped or room <= 0:
            break
        if recentre and estimate.unexplored_strata == 0:
            moved = update_design(design, candidates, duplicates_stop(estimate.fit))
            if moved is not design:
                design = moved
                continue
        handouts, design = next_pairs(
            candidates, design, evidence, random_pairs, count=room, frame=frame
        )
        if not handouts:
            break
        for h in handouts:
            if h.kind == "candidate":
                labels[h.index] = truth[h.index]
            else:
                assert random_truth is not None  # handed out only with random pairs
                random_labels[h.index] = random_truth[h.index]
    return OracleReview(estimate, evidence.labelled, stopped, labels, random_labels, design)
