"""How the oracle's coverage moves when a cell's E[D] moves a little: the band against discreteness.

bench/estimator.py sizes each pool so that E[D] is "about" 5, 20 or 100 (n rounded). With E[D]
near 5, D is a small count and an interval covers a set of counts, so coverage is a saw-tooth in
E[D]: one more or one fewer count inside the interval moves it by a few points. This script
redraws each cell at up to `--points` pool sizes whose E[D] lies within `--spread` of the cell's
target and prints the oracle's coverage (every identity known; the interval of
app.estimate.simpson via bench/oracle_coverage.py) at each, with the share of pools at D = 0
and D = 1, the counts on which the E[D] = 5 cells pull the interval in opposite directions.

    .venv/bin/python bench/coverage_sweep.py                      # E[D] = 5 cells, ~3 min
    .venv/bin/python bench/coverage_sweep.py --expected-d 20 --pools 10000
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.estimator import BAND, LEVEL, Cell, cells  # noqa: E402
from bench.oracle_coverage import covered, draw_cluster_stats  # noqa: E402


@dataclass(frozen=True)
class Resized:
    """A bench cell's distribution with another pool size."""

    cell: Cell
    size: int

    @property
    def n(self) -> int:
        return self.size

    @property
    def q(self) -> float:
        return self.cell.q

    @property
    def kind(self) -> str:
        return self.cell.kind

    @property
    def param(self) -> float:
        return self.cell.param

    @property
    def continuous(self) -> float:
        return self.cell.continuous

    def weights(self) -> NDArray[np.float64] | None:
        return self.cell.weights()

    @property
    def expected_d(self) -> float:
        return self.q * self.size * (self.size - 1) / 2


@dataclass(frozen=True)
class Point:
    """The oracle at one pool size."""

    n: int
    expected_d: float
    coverage: float
    se: float
    p_zero: float  # share of pools with D = 0
    p_one: float  # share with D = 1
    one_covered: float  # share of the D = 1 pools whose interval holds E[D] (nan: none)


def sizes_near(cell: Cell, spread: float, points: int) -> list[int]:
    """Up to `points` pool sizes, evenly spread, whose E[D] is within `spread` of the target,
    always including the cell's own n."""
    lo = Resized(cell, 2)
    grid = np.arange(2, 4 * cell.n + 4)
    expected = lo.q * grid * (grid - 1) / 2
    inside = grid[np.abs(expected / cell.expected_d - 1) <= spread]
    if inside.size == 0:
        return [cell.n]
    picks = np.unique(np.linspace(inside[0], inside[-1], points).round().astype(int))
    return sorted({int(n) for n in picks} | {cell.n})


def sweep_point(cell: Cell, n: int, pools: int, rng: np.random.Generator) -> Point:
    """The oracle's coverage, and the shares of D = 0 and D = 1, at pool size n."""
    resized = Resized(cell, n)
    stats = draw_cluster_stats(resized, pools, rng)
    truth = resized.expected_d
    hit = covered(n, stats, truth, LEVEL)
    one = stats.d == 1
    share = float(hit.mean())
    return Point(
        n=n,
        expected_d=truth,
        coverage=share,
        se=float(np.sqrt(share * (1 - share) / pools)),
        p_zero=float(np.mean(stats.d == 0)),
        p_one=float(one.mean()),
        one_covered=float(hit[one].mean()) if one.any() else float("nan"),
    )


def in_band(share: float) -> bool:
    return BAND[0] <= share <= BAND[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expected-d", type=int, default=5, choices=(5, 20, 100))
    parser.add_argument("--pools", type=int, default=20_000, help="pools per pool size")
    parser.add_argument("--points", type=int, default=9, help="pool sizes per cell")
    parser.add_argument("--spread", type=float, default=0.1, help="relative range of E[D]")
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args()
    if args.pools < 1 or args.points < 1 or not 0 <= args.spread < 1:
        parser.error("--pools and --points must be >= 1, --spread in [0, 1)")

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    chosen = [c for c in cells(quick=False) if c.expected_d == args.expected_d]
    print(
        f"{'cell':38s} {'n':>6s} {'E[D]':>7s} {'cover':>6s} {'se':>6s} {'P(D=0)':>7s} "
        f"{'P(D=1)':>7s} {'D=1 in':>6s}"
    )
    leaving = 0
    for cell in chosen:
        points = [
            sweep_point(cell, n, args.pools, rng)
            for n in sizes_near(cell, args.spread, args.points)
        ]
        for p in points:
            mark = "*" if p.n == cell.n else " "
            flag = "" if in_band(p.coverage) else "  outside"
            print(
                f"{cell.name:38s}{mark}{p.n:6d} {p.expected_d:7.3f} {p.coverage:6.3f} {p.se:6.4f} "
                f"{p.p_zero:7.3f} {p.p_one:7.3f} {p.one_covered:6.2f}{flag}"
            )
        shares = [p.coverage for p in points]
        outside = sum(not in_band(s) for s in shares)
        leaving += outside > 0
        print(
            f"# {cell.name}: {min(shares):.3f}-{max(shares):.3f} over E[D] "
            f"{points[0].expected_d:.2f}-{points[-1].expected_d:.2f}, "
            f"{outside} of {len(points)} sizes outside {list(BAND)}"
        )
    print(f"# {args.pools} pools per size, {time.perf_counter() - start:.0f} s")
    print(
        f"cells leaving the band within +-{args.spread:.0%} of E[D] = {args.expected_d}: "
        f"{leaving} of {len(chosen)}"
    )


if __name__ == "__main__":
    main()
