"""The cross-fitted duplicate rate of every candidate pair, without evaluating every pair.

Each candidate is predicted by the isotonic fit that left its fold out (incomplete.py). The
estimator needs those predictions summed per distance piece over all unreached pairs (5 * 10^6 at
10^6 samples, after every label), but one by one only for the few pairs that were sampled,
reached or are about to be handed out. The fit is a staircase with linear ramps between its
steps: on a step every pair has the same prediction, so its share of a piece's sum is a count
times a value, found by binary search in the fold's sorted distances. Only pairs on a ramp are
evaluated; most pairs lie on the last step (0 beyond the last duplicate, or 1 until a
non-duplicate has been seen). The values are those of `DuplicateRateFit.__call__`, pair for pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.estimate.duplicate_rate import DuplicateRateFit
from app.estimate.ranges import run_positions

__all__ = ["CrossFit", "PieceTotals", "fold_piece_totals"]


@dataclass(frozen=True)
class PieceTotals:
    """Per piece: sums over pairs of the prediction f and of its Bernoulli spread f (1 - f)."""

    predicted: NDArray[np.float64]
    spread: NDArray[np.float64]

    def __add__(self, other: PieceTotals) -> PieceTotals:
        return PieceTotals(self.predicted + other.predicted, self.spread + other.spread)


@dataclass(frozen=True)
class CrossFit:
    """Fold k's pairs are predicted by fits[k]; `fold` and `distance` cover every candidate."""

    fits: tuple[DuplicateRateFit, ...]
    fold: NDArray[np.int64]
    distance: NDArray[np.float64]

    def predict(self, index: NDArray[np.int64]) -> NDArray[np.float64]:
        """Cross-fitted P(duplicate | distance) of the candidates at `index`."""
        out = np.empty(index.size, dtype=np.float64)
        fold = self.fold[index]
        for k, fit in enumerate(self.fits):
            mine = fold == k
            if mine.any():
                out[mine] = fit(self.distance[index[mine]])
        return out

    def reach(self, level: float) -> float:
        """The largest distance at which some fold's fit is at least `level` (-inf if none):
        every pair beyond it is predicted below `level`."""
        out = -math.inf
        for fit in self.fits:
            above = np.flatnonzero(fit.y >= level)
            if above.size == 0:
                continue
            k = int(above[-1])  # the fit is non-increasing: it falls below after knot k
            out = max(out, math.inf if k == fit.y.size - 1 else float(fit.x[k + 1]))
        return out

    def totals(
        self, index: NDArray[np.int64], piece: NDArray[np.int64], pieces: int
    ) -> PieceTotals:
        """Sums per piece over the candidates at `index` (`piece` of each)."""
        f = self.predict(index)
        return PieceTotals(
            np.bincount(piece, weights=f, minlength=pieces).astype(np.float64),
            np.bincount(piece, weights=f * (1.0 - f), minlength=pieces).astype(np.float64),
        )


def _segments(
    fit: DuplicateRateFit, d: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.bool_], NDArray[np.float64]]:
    """Runs of sorted distances by the fit's knots: start position, ramp or step, step value.

    np.interp gives y[0] up to x[0], y[-1] from x[-1] on, and x[i - 1] < d <= x[i] lies on
    the line from y[i - 1] to y[i], which is exactly y[i] when the two are equal.
    """
    x, y = fit.x, fit.y
    starts = np.concatenate([[0], np.searchsorted(d, x, side="right")]).astype(np.int64)
    before = np.concatenate([[y[0]], y])  # value at each run's left end
    after = np.concatenate([[y[0]], y[1:], [y[-1]]])  # ... and right end
    ramp = before != after
    return starts, ramp, after


def fold_piece_totals(
    fit: DuplicateRateFit, d: NDArray[np.float64], breaks: Sequence[float], pieces: int
) -> PieceTotals:
    """Sums per piece of fit(d) and fit(d) (1 - fit(d)) over distances `d` (sorted), where
    piece p holds breaks[p - 1] <= d < breaks[p] (design.piece_of)."""
    seg_start, ramp, value = _segments(fit, d)
    piece_start = np.concatenate(
        [[0], np.searchsorted(d, np.asarray(breaks, dtype=np.float64), side="left")]
    ).astype(np.int64)
    cuts = np.unique(np.concatenate([seg_start, piece_start, [d.size]]))
    lo, hi = cuts[:-1], cuts[1:]
    seg = np.searchsorted(seg_start, lo, side="right") - 1
    piece = np.searchsorted(piece_start, lo, side="right") - 1
    count = (hi - lo).astype(np.float64)
    on_step = ~ramp[seg]
    v = value[seg[on_step]]
    predicted = np.bincount(piece[on_step], weights=count[on_step] * v, minlength=pieces)
    spread = np.bincount(piece[on_step], weights=count[on_step] * v * (1.0 - v), minlength=pieces)
    r_lo, r_len, r_piece = lo[~on_step], (hi - lo)[~on_step], piece[~on_step]
    if r_len.sum() > 0:
        f = fit(d[run_positions(r_lo, r_len)])
        owner = np.repeat(r_piece, r_len)
        predicted = predicted + np.bincount(owner, weights=f, minlength=pieces)
        spread = spread + np.bincount(owner, weights=f * (1.0 - f), minlength=pieces)
    return PieceTotals(predicted.astype(np.float64), spread.astype(np.float64))
