"""Coverage and bias of a sweep's support figure (app/estimate/across_runs.py) on simulated
sweeps of known support.

Each generator of a sweep draws uniformly from N = N1 * width^b * exp(sd * Z) outputs (Z normal:
one training seed's luck), its pool of n samples is labelled by an oracle, and its N_eff and
interval come from the estimator's own Simpson interval (app/estimate/simpson.py), as a fully
reviewed audit's would. The figure then fits, as the sweep page does, each cell's mean of log
N_eff over seeds and the exponent b of N_eff ~ width^b, one Poisson-lognormal model of the
audits' duplicate counts. Printed per scenario: how often the 95% interval of b covers the true
b, how often the cells' intervals cover N1 * width^b (the cell's median N), the mean fitted b,
the median width of b's interval, how many pools held no duplicate (they enter as counts of 0,
as the service takes them), and how many cells had no mean (every pool of the cell empty).

Two ways to size the pools: "scaled" gives every width the same expected duplicate count E[D]
(n ~ sqrt(2 E[D] N)); "fixed" gives every width the pool of width 1, as a user auditing a sweep
with one n does, so wider (larger-support) generators get fewer duplicates and more empty pools.

    python bench/sweep_support.py --quick    # 200 sweeps per scenario, ~25 s
    python bench/sweep_support.py            # 2,000 sweeps per scenario, ~4 minutes
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.estimate.across_runs import PoolCount, cell_means, width_trend
from app.estimate.simpson import SupportEstimate, estimate_support

N_AT_WIDTH_1 = 2000.0


@dataclass(frozen=True)
class Scenario:
    widths: tuple[float, ...]
    seeds: int
    exponent: float
    seed_sd: float
    expected_d: float  # E[D] at width 1
    pools: str  # "scaled" or "fixed"

    def label(self) -> str:
        return (
            f"{len(self.widths)} widths x {self.seeds} seeds, b = {self.exponent:g}, "
            f"seed sd {self.seed_sd:g}, E[D] {self.expected_d:g} at width 1, {self.pools} n"
        )


SCENARIOS = (
    Scenario((0.5, 1.0, 2.0), 3, 0.8, 0.3, 20, "scaled"),
    Scenario((0.5, 1.0, 2.0, 4.0), 2, 1.0, 0.5, 20, "scaled"),
    Scenario((0.5, 1.0, 2.0), 3, 1.0, 0.0, 20, "scaled"),
    Scenario((0.5, 1.0, 2.0), 2, 0.5, 0.3, 5, "scaled"),
    Scenario((0.5, 1.0, 2.0), 3, 0.8, 0.3, 20, "fixed"),
    Scenario((0.5, 1.0, 2.0, 4.0), 3, 1.0, 0.3, 20, "fixed"),
    Scenario((0.5, 1.0, 2.0, 4.0), 3, 1.0, 0.3, 10, "fixed"),
    Scenario((0.5, 1.0, 2.0, 4.0), 2, 1.0, 0.3, 8, "fixed"),
    Scenario((0.5, 1.0, 2.0, 4.0), 3, 1.0, 0.3, 6, "fixed"),
    Scenario((0.5, 1.0, 2.0, 4.0), 3, 1.0, 0.3, 4, "fixed"),
)


@dataclass
class Tally:
    trend_hits: int = 0
    fits: int = 0
    cell_hits: int = 0
    cells: int = 0
    empty_pools: int = 0
    pools: int = 0
    no_fit: int = 0
    cells_without_mean: int = 0


def pool_count(width: float, e: SupportEstimate) -> PoolCount:
    """A fully reviewed pool as the service reads its audit: the interval, or the one-sided
    bound of a pool with no duplicate."""
    if e.n_eff is None or e.n_eff_high is None:
        return PoolCount.from_empty_pool(width, width, e.n_eff_low, e.level)
    return PoolCount.from_interval(width, width, e.n_eff, e.n_eff_low, e.n_eff_high, e.level)


def simulate(scenario: Scenario, reps: int, seed: int) -> tuple[Tally, list[float], list[float]]:
    rng = np.random.default_rng(seed)
    tally = Tally()
    exponents: list[float] = []
    widths: list[float] = []
    for _ in range(reps):
        runs = []
        for width in scenario.widths:
            centre = N_AT_WIDTH_1 * width**scenario.exponent
            sized = centre if scenario.pools == "scaled" else N_AT_WIDTH_1
            n = int(math.sqrt(2 * scenario.expected_d * sized)) + 1
            for _ in range(scenario.seeds):
                support = max(2, round(centre * math.exp(scenario.seed_sd * rng.standard_normal())))
                counts = np.bincount(rng.integers(0, support, n))
                e = estimate_support(n, counts[counts > 1].tolist())
                tally.pools += 1
                runs.append(pool_count(width, e))
                tally.empty_pools += not runs[-1].has_duplicates
        if len({r.width for r in runs if r.has_duplicates}) < 2:
            tally.no_fit += 1
            continue
        trend = width_trend(runs)
        tally.fits += 1
        tally.trend_hits += trend.low <= scenario.exponent <= trend.high
        exponents.append(trend.exponent)
        widths.append(trend.high - trend.low)
        # A cell of empty pools has no mean (the service says so); the rest share one fit.
        with_duplicates = {r.cell for r in runs if r.has_duplicates}
        tally.cells_without_mean += len({r.cell for r in runs}) - len(with_duplicates)
        for cell in cell_means([r for r in runs if r.cell in with_duplicates]).cells:
            truth = N_AT_WIDTH_1 * float(cell.cell) ** scenario.exponent  # type: ignore[arg-type]
            tally.cell_hits += cell.n_eff_low <= truth <= cell.n_eff_high
            tally.cells += 1
    return tally, exponents, widths


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[k])) for r in [header, *rows]) for k in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="200 sweeps per scenario")
    parser.add_argument("--reps", type=int, help="sweeps per scenario (default 2,000)")
    args = parser.parse_args(argv)
    reps = args.reps or (200 if args.quick else 2000)
    start = time.perf_counter()
    rows = []
    for k, scenario in enumerate(SCENARIOS):
        tally, exponents, spans = simulate(scenario, reps, seed=1000 + k)
        rows.append(
            [
                scenario.label(),
                f"{tally.trend_hits / max(1, tally.fits):.3f}",
                f"{tally.cell_hits / max(1, tally.cells):.3f}",
                f"{statistics.fmean(exponents):.2f}" if exponents else "-",
                f"{statistics.median(spans):.2f}" if spans else "-",
                f"{tally.empty_pools / tally.pools:.1%}",
                str(tally.cells_without_mean),
                str(tally.no_fit),
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    header = [
        "scenario",
        "b covered",
        "cells covered",
        "mean b",
        "median width of b's interval",
        "pools with no duplicate",
        "cells with no mean",
        "sweeps with no fit",
    ]
    print()
    print(table(rows, header))
    print(f"\n{reps} sweeps per scenario, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
