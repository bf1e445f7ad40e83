"""The paper's view: the chance that a batch of s samples holds a duplicate (Arora & Zhang 2017).

The paper reports the batch size s_50 at which a duplicate appears half the time and calls
s_50^2 the support size. For a uniform distribution on N outputs s_50^2 ~ 2 ln 2 N ~ 1.39 N, so
the figure is kept for comparison with published numbers, beside N_eff = 1/q.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "batch_collision",
    "batch_curve",
    "batch_curve_empirical",
    "paper_support",
    "s50",
    "uniform_batch_collision",
]


def _check_s(s: int) -> int:
    if isinstance(s, bool) or int(s) != s or s < 0:
        raise ValueError(f"batch size s must be an integer >= 0, got {s!r}")
    return int(s)


def _check_q(q: float) -> float:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    return float(q)


def uniform_batch_collision(s: int, N: int) -> float:
    """Exact P(a batch of s has a duplicate) under a uniform distribution on N outputs.

    1 - prod_{i<s} (1 - i/N), with the product summed in log space so that it neither
    underflows for large s nor loses the small probabilities for small s.
    """
    s = _check_s(s)
    if isinstance(N, bool) or int(N) != N or N < 1:
        raise ValueError(f"support size N must be an integer >= 1, got {N!r}")
    if s > N:
        return 1.0
    log_none = float(np.sum(np.log1p(-np.arange(1, s, dtype=np.float64) / N)))
    return -math.expm1(log_none)


def batch_collision(s: int, q: float) -> float:
    """P(a batch of s has a duplicate) ~= 1 - exp(-C(s,2) q) for any distribution with collision
    probability q (Poisson approximation to the number of colliding pairs)."""
    s, q = _check_s(s), _check_q(q)
    return -math.expm1(-(s * (s - 1) / 2) * q)


def s50(q: float) -> int | None:
    """Smallest batch size s with batch_collision(s, q) >= 1/2; None when q == 0 (never)."""
    q = _check_q(q)
    if q == 0.0:
        return None
    # C(s,2) q >= ln 2 <=> s >= (1 + sqrt(1 + 8 ln2 / q)) / 2; then fix any rounding at the edge.
    s = max(2, math.ceil((1.0 + math.sqrt(1.0 + 8.0 * math.log(2.0) / q)) / 2.0))
    while s > 2 and batch_collision(s - 1, q) >= 0.5:
        s -= 1
    while batch_collision(s, q) < 0.5:
        s += 1
    return s


def paper_support(s50_value: int) -> int:
    """The paper's support-size figure, s_50^2."""
    return _check_s(s50_value) ** 2


def batch_curve(q: float, s_values: ArrayLike) -> NDArray[np.float64]:
    """batch_collision(s, q) at each s, for plotting."""
    q = _check_q(q)
    s = np.asarray(s_values)
    if s.size and (not np.issubdtype(s.dtype, np.integer) or s.min() < 0):
        raise ValueError("s_values must be integers >= 0")
    s = s.astype(np.float64)
    return np.asarray(-np.expm1(-(s * (s - 1) / 2) * q), dtype=np.float64)


def _pool_labels(n: int, clusters: Sequence[Sequence[int]]) -> NDArray[np.int64]:
    """Label per sample: its cluster's number (n + k for cluster k), else its own index."""
    members = [np.asarray(c, dtype=np.int64) for c in clusters]
    flat = np.concatenate(members) if members else np.empty(0, dtype=np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= n):
        raise ValueError(f"cluster member out of range for n={n}")
    if np.unique(flat).size != flat.size:
        raise ValueError("clusters must be disjoint")
    labels = np.arange(n, dtype=np.int64)
    labels[flat] = n + np.repeat(np.arange(len(members)), [c.size for c in members])
    return labels


def batch_curve_empirical(
    n: int,
    clusters: Sequence[Sequence[int]],
    s_values: ArrayLike,
    rng: np.random.Generator,
    m: int = 1000,
) -> NDArray[np.float64]:
    """P(a batch of s drawn from the pool without replacement holds a duplicate), from m batches.

    `clusters` are the members of the duplicate clusters (Clustering.clusters); other samples
    are singletons. Drawing without replacement matters: with replacement a sample drawn twice
    would count as a duplicate.
    """
    if isinstance(n, bool) or int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if isinstance(m, bool) or int(m) != m or m < 1:
        raise ValueError(f"m must be an integer >= 1, got {m!r}")
    labels = _pool_labels(n, clusters)
    s_arr = np.asarray(s_values)
    if s_arr.size and (
        not np.issubdtype(s_arr.dtype, np.integer) or s_arr.min() < 0 or s_arr.max() > n
    ):
        raise ValueError(f"s_values must be integers in [0, n={n}]")
    out = np.empty(s_arr.shape, dtype=np.float64)
    for k, s in np.ndenumerate(s_arr):
        hits = 0
        for _ in range(int(m)):
            batch = np.sort(labels[rng.choice(n, size=int(s), replace=False)])
            hits += bool(np.any(batch[1:] == batch[:-1]))
        out[k] = hits / m
    return out
