"""Second looks: what a slipped judgement would cost, against hand-computed closures and HT
weights, and the ranking against brute force (flip every judgement, recompute)."""

from __future__ import annotations

import numpy as np
import pytest

from app.estimate import (
    DISTINCT,
    DUPLICATE,
    UNKNOWN,
    Candidates,
    RandomPairs,
    estimate_incomplete,
    judge_evidence,
    new_design,
    reach,
    residual_frame,
)
from app.estimate.design import ReviewDesign
from app.estimate.leverage import SLIP_RATE, Labels, judgement_flips, slip_probability


def _complete(c: Candidates) -> ReviewDesign:
    design = new_design(c, 0)
    for s in range(design.strata):
        design = reach(design, s, 1.0)
    return design


def _flips(
    c: Candidates,
    design: ReviewDesign,
    rand: RandomPairs,
    labels: Labels,
    limit: int = 10,
    worth: float = 0.0,
) -> list:  # type: ignore[type-arg]
    evidence = labels.evidence(c, rand)
    frame = residual_frame(c, design, evidence, rand)
    standing = estimate_incomplete(c, design, evidence, rand, frame=frame)
    return judgement_flips(
        c, design, rand, labels, standing, frame, evidence, limit=limit, worth=worth
    )


def _labels(candidate: list[int], random: list[int] | None = None) -> Labels:
    r = np.array(random or [], dtype=np.int8)
    return Labels(
        np.array(candidate, dtype=np.int8),
        r,
        np.zeros(len(candidate), dtype=bool),
        np.zeros(r.size, dtype=bool),
    )


def test_slip_probability_is_bayes() -> None:
    # A label whose other answer is as likely as not is wrong with the slip rate itself.
    assert slip_probability(np.array([0.5]))[0] == pytest.approx(SLIP_RATE)
    # "Duplicate" on a pair that is a duplicate one time in a thousand: 0.999 * 0.03 /
    # (0.999 * 0.03 + 0.001 * 0.97).
    want = 0.999 * 0.03 / (0.999 * 0.03 + 0.001 * 0.97)
    assert slip_probability(np.array([0.999]))[0] == pytest.approx(want)
    assert slip_probability(np.array([0.0]))[0] == 0.0


def test_closure_flips_by_hand() -> None:
    # Samples 0-1-2 held together by two bridges, a separate pair 3-4, and a "not duplicate"
    # between the two clusters (1, 3): every candidate is labelled, so D-hat is the closure's D.
    c = Candidates.build(8, [0, 1, 3, 1, 5], [1, 2, 4, 3, 6], [0.01, 0.02, 0.03, 0.4, 0.5])
    labels = _labels([DUPLICATE, DUPLICATE, DUPLICATE, DISTINCT, DISTINCT])
    rand = RandomPairs.empty(8)
    flips = {(f.origin, f.index): f for f in _flips(c, _complete(c), rand, labels)}
    standing = 3 + 1
    # (0, 1) and (1, 2) each split {0, 1, 2} into 1 + 2: D 3 -> 1. (3, 4) splits 1 + 1.
    assert flips["candidate", 0].shift == pytest.approx(-2)
    assert flips["candidate", 1].shift == pytest.approx(-2)
    assert flips["candidate", 2].shift == pytest.approx(-1)
    # "duplicate" on (1, 3) would merge {0, 1, 2} with {3, 4}: 3 * 2 more pairs.
    assert flips["candidate", 3].shift == pytest.approx(6)
    assert flips["candidate", 3].d_hat == pytest.approx(standing + 6)
    # (5, 6) joins two singletons: one more pair.
    assert flips["candidate", 4].shift == pytest.approx(1)
    for f in flips.values():
        assert f.n_eff == pytest.approx(28 / f.d_hat)  # C(8, 2) / D-hat


def test_a_duplicate_inside_a_cycle_still_splits_it() -> None:
    # A triangle: flipped, any one "duplicate" becomes a cannot-link between its two samples,
    # and the closure (closest merges first) blocks the last merge that would join them: D 3 -> 1.
    c = Candidates.build(5, [0, 1, 0], [1, 2, 2], [0.01, 0.02, 0.03])
    labels = _labels([DUPLICATE] * 3)
    flips = _flips(c, _complete(c), RandomPairs.empty(5), labels)
    assert sorted(f.index for f in flips) == [0, 1, 2]
    assert all(f.shift == pytest.approx(-2) for f in flips)


def test_a_random_duplicate_stands_for_its_generation() -> None:
    # n = 30: C(30, 2) = 435 pairs, 2 proposed, 433 left; 4 random pairs judged, one duplicate.
    c = Candidates.build(30, [0, 2], [1, 3], [0.01, 0.3])
    rand = RandomPairs.build(30, [4, 6, 8, 10], [5, 7, 9, 11], [0.5, 0.6, 0.7, 0.8])
    labels = _labels([DUPLICATE, DISTINCT], [DUPLICATE, DISTINCT, DISTINCT, DISTINCT])
    flips = _flips(c, _complete(c), rand, labels)
    top = flips[0]
    # Flipping the random duplicate removes its HT weight 433 / 4 from the missed part.
    assert (top.origin, top.index, top.label) == ("random", 0, DUPLICATE)
    assert top.shift == pytest.approx(-433 / 4)
    # A random "not duplicate" flipped would add as much, but it is far less likely a slip.
    distinct = [f for f in flips if f.origin == "random" and f.label == DISTINCT]
    assert distinct and all(f.shift == pytest.approx(433 / 4) for f in distinct)
    assert all(f.slip < top.slip for f in distinct)


def test_ranking_agrees_with_flipping_every_judgement() -> None:
    rng = np.random.default_rng(5)
    for _ in range(6):
        n = 40
        ids = rng.integers(0, 10, n)
        pairs = [(i, j) for i in range(n) for j in range(i + 1, min(n, i + 4))]
        i = np.array([p[0] for p in pairs])
        j = np.array([p[1] for p in pairs])
        truth = (ids[i] == ids[j]).astype(np.int8)
        d = np.where(truth == 1, rng.uniform(0, 0.2, i.size), rng.uniform(0.1, 1, i.size))
        c = Candidates.build(n, i, j, d)
        label = np.where(rng.random(i.size) < 0.7, truth, UNKNOWN).astype(np.int8)
        design = _complete(c)
        labels = _labels(label.tolist())
        evidence = labels.evidence(c, RandomPairs.empty(n))
        frame = residual_frame(c, design, evidence, RandomPairs.empty(n))
        standing = estimate_incomplete(c, design, evidence, frame=frame)
        got = judgement_flips(
            c, design, RandomPairs.empty(n), labels, standing, frame, evidence, limit=5, worth=0.0
        )
        # Brute force: every judgement flipped, the whole estimate recomputed.
        brute = []
        for k in np.flatnonzero(label != UNKNOWN).tolist():
            e = estimate_incomplete(
                c, design, judge_evidence(c, labels.flipped("candidate", k).candidate)
            )
            brute.append((k, e.d_hat - standing.d_hat))
        by_index = dict(brute)
        for f in got:
            assert f.shift == pytest.approx(by_index[f.index])
        # The top flip by exact expected shift is the one listed first, unless the closure
        # bound missed a flip that moves D-hat only through the fit (never by more than it).
        # The prior before the label: the cross-fitted curve, which leaves the pair out.
        p = frame.crossfit.predict(np.arange(len(c), dtype=np.int64))
        other = np.clip(np.where(label == DUPLICATE, 1.0 - p, p), 0.01, 0.99)
        slip = slip_probability(other)
        best = max(abs(s) * slip[k] for k, s in brute)
        closure = [abs(by_index[f.index]) * slip[f.index] for f in got]
        if got:
            assert closure[0] == pytest.approx(max(closure))
            assert closure[0] >= 0.5 * best


def test_only_flips_worth_a_look_are_listed() -> None:
    # The random duplicate (HT weight 778/16, likely a slip: none of the other 15 random pairs
    # is a duplicate) is worth a look; a random "not duplicate" flipped would move D-hat as
    # much, but is almost surely right; the candidate "duplicate" moves it by one pair.
    c = Candidates.build(40, [0, 2], [1, 3], [0.01, 0.3])
    k = np.arange(4, 20)
    rand = RandomPairs.build(40, k, 39 - k, np.linspace(0.5, 0.9, k.size))
    labels = _labels([DUPLICATE, DISTINCT], [DUPLICATE] + [DISTINCT] * (k.size - 1))
    design = _complete(c)
    everything = _flips(c, design, rand, labels)
    worth = _flips(c, design, rand, labels, worth=0.1)
    evidence = labels.evidence(c, rand)
    standing = estimate_incomplete(c, design, evidence, rand)
    floor = 0.1 * (standing.d_high - standing.d_low) / 2
    assert worth == [f for f in everything if f.expected_shift >= floor]
    assert [(f.origin, f.index) for f in worth] == [("random", 0)]
    assert worth[0].shift == pytest.approx(-778 / 16)
    assert {("candidate", 0), ("random", 1)} <= {(f.origin, f.index) for f in everything}
