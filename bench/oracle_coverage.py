"""The oracle's interval coverage in a bench cell, over tens of thousands of pools at once.

The review simulation in bench/estimator.py costs ~70 ms a seed, so its coverage over 1,000
seeds carries a Monte Carlo standard error of ~0.007: a cell whose true coverage is 0.94 reads
below 0.93 one time in ten, and a run of 36 cells lands a few outside the band by chance alone.
The oracle (every identity in the pool known) needs only each pool's cluster sizes, which numpy
draws for a whole batch of pools in one go, so its coverage is cheap to pin down to ~0.0015. Our
estimator agrees with the oracle on nearly every seed, so

    coverage = oracle coverage over many pools + mean(ours - oracle) over the review seeds

is unbiased with a far smaller error (a paired control variate): bench/estimator.py prints it
beside the raw figure.

The interval is the one app.estimate.simpson.estimate_support builds: the floored unbiased
U-statistic Var(D), log D +- t(2k) sqrt(Var D) / D, and the one-sided bound for D = 0.
tests/test_bench_oracle.py checks the two agree pool by pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from app.estimate.simpson import interval_quantile, one_cluster_d_low, zero_collision_bound

BATCH_SAMPLES = 4_000_000  # samples drawn per batch of pools: bounds the memory (~100 MB)


class CellLike(Protocol):
    """What a bench cell must offer: pool size, identity law and the true collision chance."""

    @property
    def n(self) -> int: ...

    @property
    def q(self) -> float: ...

    kind: str
    param: float
    continuous: float

    def weights(self) -> NDArray[np.float64] | None: ...


@dataclass(frozen=True)
class ClusterStats:
    """Per pool: the sums of cluster-size terms that D and its variance estimate need."""

    d: NDArray[np.float64]  # sum_c C(n_c, 2)
    s3: NDArray[np.float64]  # sum_c n_c (n_c-1) (n_c-2)
    s22: NDArray[np.float64]  # sum_c (n_c (n_c-1))^2
    s4: NDArray[np.float64]  # sum_c n_c (n_c-1) (n_c-2) (n_c-3)
    clusters: NDArray[np.int64]  # clusters of two or more


def draw_cluster_stats(cell: CellLike, pools: int, rng: np.random.Generator) -> ClusterStats:
    """Cluster statistics of `pools` independent pools drawn from the cell's distribution."""
    n, weights = cell.n, cell.weights()
    batch = max(1, min(pools, BATCH_SAMPLES // n))
    parts: list[NDArray[np.float64]] = []
    for start in range(0, pools, batch):
        b = min(batch, pools - start)
        if weights is None:
            ids = rng.integers(0, int(cell.param), (b, n))
        else:
            ids = rng.choice(weights.size, (b, n), p=weights)
        if cell.continuous:
            never_repeats = rng.random((b, n)) < cell.continuous
            ids = np.where(never_repeats, -1 - np.arange(n)[None, :], ids)
        # One key space for the whole batch: pool index in the high part of each identity.
        span = int(ids.max()) - int(ids.min()) + 1
        keys = (ids - ids.min()).astype(np.int64) + np.arange(b, dtype=np.int64)[:, None] * span
        _, first, counts = np.unique(keys.ravel(), return_index=True, return_counts=True)
        pool = first // n
        c = counts.astype(np.float64)
        f2 = c * (c - 1)
        f3 = f2 * (c - 2)
        columns = (f2 / 2, f3, f2**2, f3 * (c - 3), (c >= 2).astype(np.float64))
        parts.append(np.stack([np.bincount(pool, weights=v, minlength=b) for v in columns], 1))
    table = np.concatenate(parts)
    return ClusterStats(
        d=table[:, 0],
        s3=table[:, 1],
        s22=table[:, 2],
        s4=table[:, 3],
        clusters=table[:, 4].round().astype(np.int64),
    )


def variance_d(n: int, stats: ClusterStats) -> NDArray[np.float64]:
    """The floored unbiased Var(D) of app.estimate.simpson, in floats (n >= 4)."""
    pairs = n * (n - 1) / 2
    n2, n3 = float(n * (n - 1)), float(n * (n - 1) * (n - 2))
    n4 = n3 * (n - 3)
    ordered = 2 * stats.d
    q = ordered / n2
    p3 = stats.s3 / n3
    q2 = (ordered**2 - stats.s22 + stats.s4) / n4
    unbiased = pairs * (q - q2) + n3 * (p3 - q2)
    floor = stats.d * (1 - stats.d / pairs) / 2
    return np.maximum(unbiased, floor)


def covered(n: int, stats: ClusterStats, truth_d: float, level: float) -> NDArray[np.bool_]:
    """Per pool: does the interval on E[D] hold the true E[D] = C(n,2) q?"""
    quantile = np.zeros(stats.d.size)
    for k in np.unique(stats.clusters):
        quantile[stats.clusters == k] = interval_quantile(level, float(k))
    positive = stats.d > 0
    d = np.where(positive, stats.d, 1.0)
    half = quantile * np.sqrt(variance_d(n, stats)) / d
    low = d * np.exp(-half)
    pairs = n * (n - 1) / 2
    low = np.where(d == pairs, np.minimum(low, one_cluster_d_low(n, level)), low)
    inside = (low <= truth_d) & (truth_d <= d * np.exp(half))
    return np.where(positive, inside, truth_d <= zero_collision_bound(level))


def oracle_coverage(
    cell: CellLike, pools: int, level: float, seed: int = 20261125
) -> tuple[float, float]:
    """The oracle's coverage in a cell over `pools` pools, and its binomial standard error."""
    rng = np.random.default_rng(seed)
    stats = draw_cluster_stats(cell, pools, rng)
    truth_d = cell.q * cell.n * (cell.n - 1) / 2
    share = float(np.mean(covered(cell.n, stats, truth_d, level)))
    return share, float(np.sqrt(share * (1 - share) / pools))
