"""Sums of the cross-fitted predictions per piece equal those over every pair evaluated."""

from __future__ import annotations

import numpy as np
import pytest

from app.estimate.crossfit import CrossFit, fold_piece_totals
from app.estimate.design import new_design, piece_of, reach, reached
from app.estimate.duplicate_rate import DuplicateRateFit, fit_duplicate_rate
from app.estimate.incomplete import FOLDS, residual_frame
from app.estimate.pairs import UNKNOWN, Candidates, judge_evidence


def _direct(
    fit: DuplicateRateFit, d: np.ndarray, breaks: list[float], pieces: int
) -> tuple[np.ndarray, np.ndarray]:
    f = fit(d)
    piece = np.searchsorted(np.asarray(breaks), d, side="right")
    return (
        np.bincount(piece, weights=f, minlength=pieces),
        np.bincount(piece, weights=f * (1 - f), minlength=pieces),
    )


def _random_fit(rng: np.random.Generator) -> DuplicateRateFit:
    size = int(rng.integers(0, 40))
    x = rng.integers(0, 50, size).astype(np.float64) / 10  # ties, and knots on the grid below
    y = (rng.random(size) < 1 / (1 + np.exp(6 * (x - 2.0)))).astype(np.float64)
    return fit_duplicate_rate(x, y, rng.uniform(0.5, 5.0, size))


def test_piece_totals_equal_the_sums_of_every_pair_evaluated() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        fit = _random_fit(rng)
        # Distances on a grid: many fall exactly on knots and on breaks.
        d = np.sort(rng.integers(-5, 60, int(rng.integers(0, 400))).astype(np.float64) / 10)
        breaks = sorted(set((rng.integers(0, 55, int(rng.integers(0, 8))) / 10).tolist()))
        pieces = len(breaks) + 1
        got = fold_piece_totals(fit, d, breaks, pieces)
        predicted, spread = _direct(fit, d, breaks, pieces)
        assert got.predicted == pytest.approx(predicted, rel=1e-12, abs=1e-12)
        assert got.spread == pytest.approx(spread, rel=1e-12, abs=1e-12)


def test_steps_are_counted_and_only_ramps_evaluated() -> None:
    fit = DuplicateRateFit(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 1.0, 0.4, 0.0]))
    d = np.array([0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 9.0])
    got = fold_piece_totals(fit, d, [2.5], 2)
    # Piece 0 (d < 2.5): 1, 1, 1, 1; piece 1: 0.7, 0.4, 0.2, 0, 0.
    assert got.predicted.tolist() == pytest.approx([4.0, 1.3])
    assert got.spread.tolist() == pytest.approx([0.0, 0.21 + 0.24 + 0.16])


def test_predict_uses_the_fit_that_left_each_pair_out() -> None:
    fits = (
        DuplicateRateFit(np.array([1.0]), np.array([0.25])),
        DuplicateRateFit(np.array([0.0, 2.0]), np.array([1.0, 0.0])),
    )
    cross = CrossFit(fits, np.array([0, 1, 1, 0]), np.array([0.5, 0.5, 1.5, 3.0]))
    assert cross.predict(np.array([3, 1, 2, 0])).tolist() == [0.25, 0.75, 0.25, 0.25]
    assert cross.predict(np.zeros(0, dtype=np.int64)).size == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_frame_sums_over_unreached_unknown_pairs_as_if_each_were_predicted(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    j = np.repeat(np.arange(1, n), 3)
    i = np.floor(rng.random(j.size) * j).astype(np.int64)
    keys = np.unique(i * n + j)
    c = Candidates.build(n, keys // n, keys % n, np.round(rng.gamma(3.0, 0.1, keys.size), 2))
    truth = (c.distance < 0.12).astype(np.int8)
    design = new_design(c, seed)
    for stratum in range(design.strata):
        design = reach(design, stratum, float(rng.uniform(0.05, 0.6)))
    hit = reached(design, c)
    labels = np.where(hit & (rng.random(len(c)) < 0.9), truth, -1).astype(np.int8)
    labels[~hit & (rng.random(len(c)) < 0.02)] = 0  # a few browsed by hand
    evidence = judge_evidence(c, labels)
    frame = residual_frame(c, design, evidence)
    every = frame.crossfit.predict(np.arange(len(c)))
    open_ = (evidence.candidate_value == UNKNOWN) & ~hit
    f = np.where(open_, every, 0.0)
    piece, pieces = piece_of(design, c), len(design.breaks) + 1
    assert frame.crossfit.fold.max() == FOLDS - 1
    assert (
        frame.pieces.unreached_unknown.tolist()
        == np.bincount(piece[open_], minlength=pieces).tolist()
    )
    assert frame.pieces.unreached_predicted == pytest.approx(
        np.bincount(piece, weights=f, minlength=pieces), rel=1e-12, abs=1e-12
    )
    assert frame.pieces.unreached_spread == pytest.approx(
        np.bincount(piece, weights=f * (1 - f), minlength=pieces), rel=1e-12, abs=1e-12
    )
    assert np.all(frame.pieces.unreached_predicted[frame.pieces.unreached_unknown == 0] == 0.0)


def test_reach_bounds_where_some_fold_predicts_at_least_a_level() -> None:
    """Beyond CrossFit.reach(level) every fold's fit is below level; every distance where some
    fold's fit reaches the level lies at or before it (closure_gaps predicts only there)."""
    rng = np.random.default_rng(1)
    grid = np.linspace(-1.0, 7.0, 8001)
    for _ in range(300):
        fits = tuple(_random_fit(rng) for _ in range(3))
        cf = CrossFit(fits, np.zeros(1, dtype=np.int64), np.zeros(1))
        level = float(rng.choice([0.5, 0.9, 1.0]))
        top = cf.reach(level)
        at_level = np.zeros(grid.size, dtype=bool)
        for fit in fits:
            at_level |= fit(grid) >= level
        assert not at_level[grid > top].any()
        if at_level.any():
            assert np.isfinite(top) or at_level[-1]
            assert top >= grid[at_level].max()
        else:
            assert top == -np.inf
