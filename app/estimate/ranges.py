"""Positions of several runs of an array as one flat index array."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["run_positions"]


def run_positions(start: NDArray[np.int64], length: NDArray[np.int64]) -> NDArray[np.int64]:
    """start[k], start[k] + 1, ..., start[k] + length[k] - 1 for every run k, in order."""
    total = int(length.sum())
    return np.arange(total, dtype=np.int64) + np.repeat(
        start - (np.cumsum(length) - length), length
    )
