"""P(duplicate | distance): a weighted decreasing isotonic regression of the labels on distance.

The estimator predicts unsettled candidate pairs with it (incomplete.py, crossfit.py), the
design centres its strata where it falls below 1/2, and the audit page plots it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["DuplicateRateFit", "duplicates_stop", "fit_duplicate_rate"]


@dataclass(frozen=True)
class DuplicateRateFit:
    """Decreasing isotonic P(duplicate | distance): the calibration curve.

    Linear between knots, constant beyond the ends (as sklearn's IsotonicRegression predicts).
    """

    x: NDArray[np.float64]  # knots, increasing distances
    y: NDArray[np.float64]  # fitted rate at the knots, non-increasing, in [0, 1]

    def __call__(self, distance: ArrayLike) -> NDArray[np.float64]:
        return np.asarray(np.interp(np.asarray(distance, dtype=np.float64), self.x, self.y))


def _pava_decreasing(
    y: NDArray[np.float64], w: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Pool-adjacent-violators for a non-increasing fit: (block start indices, block values)."""
    starts: list[int] = []
    sums: list[float] = []
    weights: list[float] = []
    for k, (yk, wk) in enumerate(zip(y.tolist(), w.tolist(), strict=True)):
        starts.append(k)
        sums.append(yk * wk)
        weights.append(wk)
        # A later block may not exceed an earlier one: merge while it does.
        while len(sums) >= 2 and sums[-1] * weights[-2] > sums[-2] * weights[-1]:
            last_sum, last_weight = sums.pop(), weights.pop()
            starts.pop()
            sums[-1] += last_sum
            weights[-1] += last_weight
    values = np.asarray(sums) / np.asarray(weights)
    return np.asarray(starts, dtype=np.int64), values


def duplicates_stop(fit: DuplicateRateFit) -> float | None:
    """The distance where the fitted duplicate rate first falls below 1/2: the centre the
    design's strata should be finest around. None while the fit never reaches 1/2."""
    above = fit.y >= 0.5
    if not above.any() or above.all():
        return None
    k = int(np.argmin(above))  # first knot below 1/2; the one before is at or above it
    x0, x1, y0, y1 = fit.x[k - 1], fit.x[k], fit.y[k - 1], fit.y[k]
    return float(x0 + (y0 - 0.5) / (y0 - y1) * (x1 - x0)) if y0 > y1 else float(x1)


def fit_duplicate_rate(
    distance: ArrayLike, duplicate: ArrayLike, weight: ArrayLike | None = None
) -> DuplicateRateFit:
    """Weighted decreasing isotonic regression of duplicate (0/1) on distance.

    Weights are inverse inclusion probabilities, so the fit estimates the rate among all
    candidates at a distance, not among the labelled ones. Ties in distance are pooled first;
    the fit is linear between the ends of adjacent blocks, as sklearn's IsotonicRegression
    predicts. With no data the rate is 1/2.
    """
    x = np.asarray(distance, dtype=np.float64)
    y = np.asarray(duplicate, dtype=np.float64)
    w = np.ones_like(x) if weight is None else np.asarray(weight, dtype=np.float64)
    if not (x.shape == y.shape == w.shape) or x.ndim != 1:
        raise ValueError("distance, duplicate and weight must be 1-d arrays of one shape")
    if x.size == 0:
        return DuplicateRateFit(np.zeros(1), np.full(1, 0.5))
    if np.any((y < 0) | (y > 1)) or np.any(w <= 0) or not np.all(np.isfinite(x)):
        raise ValueError("duplicate must lie in [0, 1], weights be positive, distances finite")
    ux, inverse = np.unique(x, return_inverse=True)
    uw = np.bincount(inverse, weights=w).astype(np.float64)
    uy = np.bincount(inverse, weights=w * y) / uw
    starts, values = _pava_decreasing(uy, uw)
    ends = np.append(starts[1:], ux.size) - 1
    knots_x = np.stack([ux[starts], ux[ends]], axis=1).ravel()
    knots_y = np.repeat(values, 2)
    keep = np.append(True, knots_x[1:] != knots_x[:-1])  # one-point blocks give one knot
    return DuplicateRateFit(knots_x[keep], np.clip(knots_y[keep], 0.0, 1.0))
