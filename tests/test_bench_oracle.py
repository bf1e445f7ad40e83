"""bench/oracle_coverage.py: its vectorised oracle must be app.estimate's interval, pool by pool.

The estimator bench leans on it for precise coverage figures, so a drift between the numpy copy
of the interval and estimate_support would silently misreport the app's calibration.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from app.estimate import estimate_support
from tests.bench_modules import load_bench

oracle = load_bench("oracle_coverage")


@dataclass(frozen=True)
class Cell:
    kind: str
    param: float
    continuous: float
    size: int

    @property
    def n(self) -> int:
        return self.size

    def weights(self) -> NDArray[np.float64] | None:
        if self.kind == "uniform":
            return None
        w = np.arange(1, 201, dtype=np.float64) ** -self.param
        return w / w.sum()

    @property
    def q(self) -> float:
        w = self.weights()
        base = 1.0 / self.param if w is None else float(np.sum(w**2))
        return (1.0 - self.continuous) ** 2 * base


CELLS = [
    Cell("uniform", 300, 0.0, 60),
    Cell("uniform", 2000, 0.3, 90),
    Cell("zipf", 1.1, 0.0, 25),
    Cell("zipf", 1.5, 0.3, 12),
    Cell("zipf", 4.0, 0.0, 12),  # a third of its pools are one cluster
]


def _sizes_of_pools(cell: Cell, pools: int, seed: int) -> list[list[int]]:
    """The same draws as draw_cluster_stats, counted the slow way."""
    rng = np.random.default_rng(seed)
    n, w = cell.n, cell.weights()
    ids = (
        rng.integers(0, int(cell.param), (pools, n))
        if w is None
        else rng.choice(w.size, (pools, n), p=w)
    )
    if cell.continuous:
        ids = np.where(rng.random((pools, n)) < cell.continuous, -1 - np.arange(n), ids)
    return [[c for c in Counter(row.tolist()).values() if c >= 2] for row in ids]


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"{c.kind}-{c.param}-{c.continuous}")
def test_cluster_stats_match_a_direct_count(cell: Cell) -> None:
    stats = oracle.draw_cluster_stats(cell, 300, np.random.default_rng(5))
    for pool, sizes in enumerate(_sizes_of_pools(cell, 300, 5)):
        assert stats.d[pool] == sum(math.comb(s, 2) for s in sizes)
        assert stats.s3[pool] == sum(s * (s - 1) * (s - 2) for s in sizes)
        assert stats.clusters[pool] == len(sizes)


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"{c.kind}-{c.param}-{c.continuous}")
def test_variance_and_coverage_match_estimate_support(cell: Cell) -> None:
    stats = oracle.draw_cluster_stats(cell, 400, np.random.default_rng(11))
    truth_d = cell.q * math.comb(cell.n, 2)
    var = oracle.variance_d(cell.n, stats)
    inside = oracle.covered(cell.n, stats, truth_d, 0.95)
    for pool, sizes in enumerate(_sizes_of_pools(cell, 400, 11)):
        est = estimate_support(cell.n, sizes, 0.95)
        assert var[pool] == pytest.approx(est.var_d, rel=1e-9, abs=1e-9)
        upper_ok = est.n_eff_high is None or 1 / cell.q <= est.n_eff_high * (1 + 1e-12)
        assert bool(inside[pool]) == (est.n_eff_low <= 1 / cell.q * (1 + 1e-12) and upper_ok)


def test_mean_d_is_the_expected_collision_count() -> None:
    # E[D] = C(n,2) q exactly; 20,000 pools pin the mean to ~1%.
    cell = Cell("zipf", 1.1, 0.3, 40)
    stats = oracle.draw_cluster_stats(cell, 20_000, np.random.default_rng(3))
    expected = math.comb(cell.n, 2) * cell.q
    se = float(np.std(stats.d)) / math.sqrt(stats.d.size)
    assert abs(float(np.mean(stats.d)) - expected) < 4 * se


def test_oracle_coverage_reports_its_standard_error() -> None:
    share, se = oracle.oracle_coverage(Cell("uniform", 1000, 0.0, 200), 2000, 0.95)
    assert 0.9 < share < 1.0
    assert se == pytest.approx(math.sqrt(share * (1 - share) / 2000))
