"""bench/coverage_sweep.py: the pool sizes it picks and the shares it reports.

The sweep is the evidence that coverage in the E[D] = 5 cells is a saw-tooth in E[D]; a wrong
size grid or a mislabelled share would misstate that evidence.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tests.bench_modules import load_bench

sweep = load_bench("coverage_sweep")


def _cell(kind: str, param: float, continuous: float, expected_d: int) -> Any:
    return sweep.Cell(kind, param, continuous, expected_d)


@pytest.mark.parametrize(
    "cell",
    [_cell("uniform", 1e4, 0.3, 5), _cell("uniform", 1e3, 0.0, 20), _cell("zipf", 1.1, 0.0, 5)],
    ids=lambda c: c.name,
)
def test_sizes_stay_within_the_spread_and_hold_the_cells_own_size(cell: Any) -> None:
    sizes = sweep.sizes_near(cell, 0.1, 7)
    assert cell.n in sizes
    assert sizes == sorted(set(sizes))
    assert len(sizes) <= 8  # 7 spread points plus the cell's own size
    for n in sizes:
        if n != cell.n:
            assert abs(sweep.Resized(cell, n).expected_d / cell.expected_d - 1) <= 0.1


def test_share_of_pools_without_a_collision_is_the_birthday_probability() -> None:
    # Uniform over N: P(D = 0) = prod_{i<n} (1 - i/N) exactly.
    cell = _cell("uniform", 1e3, 0.0, 5)
    pools = 20_000
    point = sweep.sweep_point(cell, 90, pools, np.random.default_rng(4))
    exact = math.prod(1 - i / 1000 for i in range(90))
    assert point.expected_d == pytest.approx(1e-3 * 90 * 89 / 2)
    assert abs(point.p_zero - exact) < 4 * math.sqrt(exact * (1 - exact) / pools)
    assert point.se == pytest.approx(math.sqrt(point.coverage * (1 - point.coverage) / pools))


def test_coverage_is_the_oracles_at_that_size() -> None:
    cell = _cell("zipf", 1.5, 0.3, 5)
    point = sweep.sweep_point(cell, 14, 3000, np.random.default_rng(8))
    resized = sweep.Resized(cell, 14)
    stats = sweep.draw_cluster_stats(resized, 3000, np.random.default_rng(8))
    hit = sweep.covered(14, stats, resized.expected_d, sweep.LEVEL)
    assert point.coverage == pytest.approx(float(hit.mean()))
    assert point.p_one == pytest.approx(float(np.mean(stats.d == 1)))
