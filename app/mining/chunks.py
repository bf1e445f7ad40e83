"""Validation of the chunks a miner is fed, so both miners refuse the same bad input."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def as_chunk(vectors: NDArray[np.floating], dim: int, free: int) -> NDArray[np.float32]:
    """Return the chunk as a C-contiguous float32 (b, dim) array, or raise ValueError.

    `free` is how many rows the index can still take; non-finite values are refused because
    they poison distances (NaN) and every ranking built on them.
    """
    chunk = np.ascontiguousarray(vectors, dtype=np.float32)
    if chunk.ndim != 2 or chunk.shape[1] != dim:
        raise ValueError(f"expected a (b, {dim}) array, got shape {chunk.shape}")
    if chunk.shape[0] > free:
        raise ValueError(f"chunk of {chunk.shape[0]} rows exceeds the {free} rows left")
    if not np.isfinite(chunk).all():
        raise ValueError("embeddings must be finite")
    return chunk


def check_k(k: int) -> None:
    """Raise ValueError unless k is a positive neighbour count."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
