"""Which judgements would move the estimate most if they were slips: the ones worth a second look.

One wrong key does not weigh the same everywhere (bench/README.md, "live review"): a random pair
judged "duplicate" stands for every unproposed pair of its generation (its Horvitz-Thompson
weight); a "duplicate" that is the only link between two halves of a cluster holds a * b pairs;
a "not duplicate" between two clusters keeps a * b apart. What a slip would cost is the change of
D-hat with the label flipped; how likely the label is a slip follows from how surprising it is
(the cross-fitted P(duplicate | distance) of a candidate, the duplicate rate of the other
random pairs of its generation) and a reviewer's slip rate. Their product ranks the
judgements: first by a cheap bound (the closure's a * b, the HT weight of a random pair, the
design weight of a sampled candidate), then the shortlist exactly, the whole estimate
recomputed with one label flipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from app.estimate.bridges import bridge_cuts
from app.estimate.design import ReviewDesign
from app.estimate.incomplete import (
    IncompleteEstimate,
    ResidualFrame,
    estimate_incomplete,
    random_weights,
    residual_frame,
)
from app.estimate.pairs import (
    DISTINCT,
    DUPLICATE,
    UNKNOWN,
    Candidates,
    Evidence,
    RandomPairs,
    judge_evidence,
)

__all__ = ["SLIP_RATE", "Flip", "Labels", "judgement_flips", "slip_probability"]

# A careful reviewer's share of wrong keys: the prior of a slip. bench/live_review.py --slips
# measures what 3% does to the estimate; the ranking hardly depends on the exact value.
SLIP_RATE = 0.03
SHORTLIST = 3  # exact recomputes per flip asked for, from the cheap ranking
# A judgement is worth a second look when its expected shift of D-hat reaches this share of the
# interval's half-width: below it, the slip it might be is lost in the pool's own noise.
# bench/README.md, "live review": 0.25 left most slips in, 0.1 half of them, 0.05 nearly all,
# for 0-14 second looks per audit.
WORTH_SHARE = 0.05
# A cross-fitted curve or a few dozen random pairs read 0 or 1 on little evidence: no prior
# is surer than this.
PRIOR_FLOOR = 0.01


@dataclass(frozen=True)
class Labels:
    """The resolved labels the estimate was computed from (1 duplicate, 0 distinct, -1 none)."""

    candidate: NDArray[np.int8]
    random: NDArray[np.int8]
    candidate_unsure: NDArray[np.bool_]
    random_unsure: NDArray[np.bool_]

    def evidence(self, candidates: Candidates, random_pairs: RandomPairs) -> Evidence:
        return judge_evidence(
            candidates,
            self.candidate,
            random_pairs,
            self.random,
            self.random_unsure,
            self.candidate_unsure,
        )

    def flipped(self, origin: Literal["candidate", "random"], index: int) -> Labels:
        """The same labels with one judgement the other way round."""
        if origin == "candidate":
            out = self.candidate.copy()
            out[index] = DUPLICATE + DISTINCT - out[index]
            return Labels(out, self.random, self.candidate_unsure, self.random_unsure)
        out = self.random.copy()
        out[index] = DUPLICATE + DISTINCT - out[index]
        return Labels(self.candidate, out, self.candidate_unsure, self.random_unsure)


@dataclass(frozen=True)
class Flip:
    """One standing judgement and what the estimate would be with it the other way round."""

    origin: Literal["candidate", "random"]
    index: int  # among the candidates or the random pairs
    label: int  # the standing label: DUPLICATE or DISTINCT
    # P(the other answer) before this label: the cross-fitted calibration curve at its distance
    # (a candidate) or its generation's rate (a random pair), kept in [0.01, 0.99]
    other: float
    slip: float  # P(the label is a slip), at SLIP_RATE
    d_hat: float  # D-hat with the label flipped
    shift: float  # d_hat - the standing D-hat
    n_eff: float | None
    n_eff_low: float
    n_eff_high: float | None

    @property
    def expected_shift(self) -> float:
        """|shift| weighed by the chance the label is wrong: the ranking key."""
        return abs(self.shift) * self.slip


def slip_probability(
    other: NDArray[np.float64], slip_rate: float = SLIP_RATE
) -> NDArray[np.float64]:
    """P(label wrong | label), when the other answer has prior probability `other` and a
    reviewer presses the wrong key with probability `slip_rate` (Bayes)."""
    wrong = other * slip_rate
    return np.asarray(wrong / (wrong + (1.0 - other) * (1.0 - slip_rate)), dtype=np.float64)


def _closure_shifts(candidates: Candidates, evidence: Evidence) -> NDArray[np.float64]:
    """|Change of the confirmed D| a flip of each candidate judgement makes through the closure
    alone: a * b for a "not duplicate" between clusters of a and b samples (the merge it
    blocks) and for a "duplicate" that is a bridge (the split). A "duplicate" inside a cycle
    becomes a cannot-link that splits its cluster somewhere: at most s^2 / 4 pairs."""
    cl = evidence.clustering.labels
    sizes = np.bincount(cl)
    label, i, j = evidence.candidate_label, candidates.i, candidates.j
    out = np.zeros(len(candidates), dtype=np.float64)
    apart = np.flatnonzero((label == DISTINCT) & (cl[i] != cl[j]))
    out[apart] = sizes[cl[i[apart]]] * sizes[cl[j[apart]]]
    linked = np.flatnonzero((label == DUPLICATE) & (cl[i] == cl[j]))
    cut = bridge_cuts(i[linked], j[linked])
    whole = sizes[cl[i[linked]]]
    out[linked] = np.where(cut > 0, cut * (whole - cut), (whole // 2) * (whole - whole // 2))
    return out


def _design_shifts(frame: ResidualFrame, size: int) -> NDArray[np.float64]:
    """|Change of the unreviewed part| a flip of each sampled candidate makes, roughly: its
    residual stands for the N_g / r_g pairs of its post-stratum (0 for pairs outside the
    design's sample: judged out of turn, the estimate does not lean on them)."""
    sizes = frame.per_post(frame.pieces.size)
    sampled = frame.per_post(frame.pieces.sampled)
    out = np.zeros(size, dtype=np.float64)
    post = frame.piece_post[frame.piece[frame.sample]]
    out[frame.sample] = sizes[post] / np.maximum(sampled[post], 1.0)
    return out


def _random_shifts(
    candidates: Candidates, random_pairs: RandomPairs, evidence: Evidence, frame: ResidualFrame
) -> NDArray[np.float64]:
    """|Change of the missed part| a flip of each random judgement makes: its HT weight, where the
    closure does not already settle the pair."""
    cl = evidence.clustering.labels
    outside = cl[random_pairs.i] != cl[random_pairs.j]
    judged = evidence.random_label != UNKNOWN
    weights = random_weights(candidates, random_pairs, frame)
    return np.where(judged & outside, weights, 0.0)


def _random_rates(random_pairs: RandomPairs, evidence: Evidence) -> NDArray[np.float64]:
    """P(duplicate) of each random pair before its own label: the Jeffreys rate of the other
    judged random pairs of its generation (a uniform sample of the same unproposed pairs; the
    distance curve, fitted on the candidates, knows nothing out there)."""
    label = evidence.random_label
    judged = label != UNKNOWN
    own = (label == DUPLICATE).astype(np.float64)
    out = np.full(len(random_pairs), 0.5, dtype=np.float64)
    for g in np.unique(random_pairs.generation):
        mine = random_pairs.generation == g
        m = int(np.sum(judged & mine))
        x = float(np.sum(own[mine]))
        others = np.where(judged[mine], m - 1, m)
        out[mine] = (x - own[mine] + 0.5) / (others + 1.0)
    return out


def _others(label: NDArray[np.int8], p_duplicate: NDArray[np.float64]) -> NDArray[np.float64]:
    """The prior probability of the answer not given, kept off 0 and 1."""
    other = np.where(label == DUPLICATE, 1.0 - p_duplicate, p_duplicate)
    return np.asarray(np.clip(other, PRIOR_FLOOR, 1.0 - PRIOR_FLOOR), dtype=np.float64)


def judgement_flips(
    candidates: Candidates,
    design: ReviewDesign,
    random_pairs: RandomPairs,
    labels: Labels,
    standing: IncompleteEstimate,
    frame: ResidualFrame,
    evidence: Evidence,
    *,
    limit: int = 10,
    slip_rate: float = SLIP_RATE,
    worth: float | None = None,
) -> list[Flip]:
    """Up to `limit` judgements whose slip would cost the estimate most, most first.

    `standing`, `frame` and `evidence` are the estimate from `labels` as it stands (the caller
    has them). Listed are the judgements worth a look: expected shift (|change of D-hat| times
    P(slip)) at least `worth` (default WORTH_SHARE) times the half-width of the interval on
    E[D]. An "unsure", or a judgement whose flip changes nothing, is never listed.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit!r}")
    share = WORTH_SHARE if worth is None else worth
    floor = share * (standing.d_high - standing.d_low) / 2
    everyone = np.arange(len(candidates), dtype=np.int64)
    c_other = _others(evidence.candidate_label, frame.crossfit.predict(everyone))
    r_other = _others(evidence.random_label, _random_rates(random_pairs, evidence))
    cheap = np.concatenate(
        [
            (_closure_shifts(candidates, evidence) + _design_shifts(frame, len(candidates)))
            * slip_probability(c_other, slip_rate),
            _random_shifts(candidates, random_pairs, evidence, frame)
            * slip_probability(r_other, slip_rate),
        ]
    )
    judged = np.concatenate([evidence.candidate_label, evidence.random_label]) != UNKNOWN
    cheap = np.where(judged, cheap, 0.0)  # a pair settled by the closure has no label to flip
    order = np.argsort(-cheap, kind="stable")[: SHORTLIST * limit]
    # The exact shift adds the fit's share to the closure's or the HT weight's: a little more
    # or less, so the shortlist reaches below the floor.
    order = order[(cheap[order] > 0) & (cheap[order] >= floor / 2)]
    flips = []
    for k in order.tolist():
        origin: Literal["candidate", "random"] = "candidate" if k < len(candidates) else "random"
        index = k if origin == "candidate" else k - len(candidates)
        other = float(c_other[index] if origin == "candidate" else r_other[index])
        label = int(
            evidence.candidate_label[index]
            if origin == "candidate"
            else evidence.random_label[index]
        )
        moved = labels.flipped(origin, index)
        e = _estimate(candidates, design, random_pairs, moved, standing.level)
        flips.append(
            Flip(
                origin=origin,
                index=index,
                label=label,
                other=other,
                slip=float(slip_probability(np.array([other]), slip_rate)[0]),
                d_hat=e.d_hat,
                shift=e.d_hat - standing.d_hat,
                n_eff=e.n_eff,
                n_eff_low=e.n_eff_low,
                n_eff_high=e.n_eff_high,
            )
        )
    flips.sort(key=lambda f: (-f.expected_shift, f.origin, f.index))
    return [f for f in flips if f.shift != 0 and f.expected_shift >= floor][:limit]


def _estimate(
    candidates: Candidates,
    design: ReviewDesign,
    random_pairs: RandomPairs,
    labels: Labels,
    level: float,
) -> IncompleteEstimate:
    evidence = labels.evidence(candidates, random_pairs)
    frame = residual_frame(candidates, design, evidence, random_pairs)
    return estimate_incomplete(candidates, design, evidence, random_pairs, level, frame=frame)
