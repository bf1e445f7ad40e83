"""N_eff across training runs: a sweep's cells and its trend over discriminator width.

A cell's seeds are separate generators: their N_eff differ by training as well as by sampling,
so a cell's figure is a random-effects mean of log N_eff over its seeds, and the paper's
question (does a wider discriminator buy a larger support?) is the exponent b in
N_eff ~ width^b. Both are one Poisson-lognormal model (poisson_lognormal.py) over each audit's
duplicate count: log N_eff of a run = its cell's (or its line's) value + its seed's luck
u ~ N(0, tau^2), and its audit counts duplicates at a Poisson rate exposure / N_eff.

An audit reports an interval, not a count: its effective count is k = 1 / Var(log N_eff-hat),
read off the interval (for a fully reviewed near-uniform pool, k ~ D), at exposure k N_eff-hat.
A pool with no duplicate enters with k = 0 at the exposure its own one-sided bound implies
(C(n, 2) for a fully reviewed pool): it says N_eff is large, and leaving it out biased the
exponent low (bench/sweep_support.py, "sweep support" in bench/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from app.estimate.poisson_lognormal import LogLinearFit, poisson_lognormal_fit
from app.estimate.simpson import zero_collision_bound

__all__ = [
    "PoolCount",
    "cell_means",
    "log_scale_variance",
    "ratio_interval",
    "width_trend",
]


@dataclass(frozen=True)
class PoolCount:
    """One generator's audit as a Poisson count: E[count] = exposure / N_eff."""

    cell: Hashable
    width: float
    count: float  # effective duplicate pairs (0: the pool held none)
    exposure: float

    @classmethod
    def from_interval(
        cls, cell: Hashable, width: float, n_eff: float, low: float, high: float, level: float
    ) -> PoolCount:
        """An audit with duplicates: its N_eff and interval at `level`."""
        variance = log_scale_variance(low, high, level)
        if variance == 0:
            raise ValueError("an interval of no width has no count to weigh it by")
        return cls(cell, width, 1.0 / variance, n_eff / variance)

    @classmethod
    def from_empty_pool(
        cls, cell: Hashable, width: float, n_eff_low: float, level: float
    ) -> PoolCount:
        """An audit whose pool held no duplicate: its one-sided bound N_eff >= n_eff_low at
        `level` is P(no duplicate) = exp(-exposure / N_eff) = 1 - level."""
        if not n_eff_low > 0:
            raise ValueError("needs a positive lower bound")
        return cls(cell, width, 0.0, n_eff_low * zero_collision_bound(level))

    @property
    def has_duplicates(self) -> bool:
        return self.count > 0


def log_scale_variance(low: float, high: float, level: float = 0.95) -> float:
    """Sampling variance of log N_eff read off an interval [low, high] built at `level`."""
    if not (0 < low <= high) or not math.isfinite(high):
        raise ValueError("needs a finite interval with positive bounds")
    z = float(norm.ppf(0.5 + level / 2))
    return ((math.log(high) - math.log(low)) / (2 * z)) ** 2


def ratio_interval(
    numerator: tuple[float, float, float],
    denominator: tuple[float, float, float],
    level: float = 0.95,
) -> tuple[float, float, float]:
    """N_eff_a / N_eff_b with its interval, for two independent audits given as (N_eff, low,
    high) at `level`: on the log scale the variances add."""
    variance = log_scale_variance(*numerator[1:], level) + log_scale_variance(
        *denominator[1:], level
    )
    log_ratio = math.log(numerator[0]) - math.log(denominator[0])
    half = float(norm.ppf(0.5 + level / 2)) * math.sqrt(variance)
    return math.exp(log_ratio), math.exp(log_ratio - half), math.exp(log_ratio + half)


def _fit(runs: Sequence[PoolCount], design: np.ndarray, level: float) -> LogLinearFit:
    counts = np.array([r.count for r in runs])
    exposures = np.array([r.exposure for r in runs])
    return poisson_lognormal_fit(counts, exposures, design, level)


@dataclass(frozen=True)
class CellMean:
    cell: Hashable
    runs: int
    n_eff: float  # exp of the cell's mean log N_eff: a geometric mean over seeds
    n_eff_low: float
    n_eff_high: float


@dataclass(frozen=True)
class CellMeans:
    cells: list[CellMean]
    tau: float  # between-seed standard deviation of log N_eff, pooled over cells
    df: int  # 0: no cell has two seeds, tau unknown: intervals hold sampling noise only
    tau_at_limit: bool  # the runs disagree beyond the spread the model allows


def cell_means(runs: Sequence[PoolCount], level: float = 0.95) -> CellMeans:
    """Each cell's mean log N_eff over its seeds, tau^2 pooled over the cells. Every cell needs
    a run with duplicates (a cell of empty pools has a lower bound only)."""
    cells = list(dict.fromkeys(r.cell for r in runs))
    if not cells:
        raise ValueError("no run to summarise")
    empty = [c for c in cells if not any(r.has_duplicates for r in runs if r.cell == c)]
    if empty:
        raise ValueError(f"no pool of cell {empty[0]!r} holds a duplicate: it has no mean yet")
    design = np.array([[1.0 if r.cell == c else 0.0 for c in cells] for r in runs])
    fit = _fit(runs, design, level)
    out = []
    for k, cell in enumerate(cells):
        value, low, high = fit.interval(k)
        count = sum(r.cell == cell for r in runs)
        out.append(CellMean(cell, count, math.exp(value), math.exp(low), math.exp(high)))
    return CellMeans(cells=out, tau=math.sqrt(fit.tau2), df=fit.df, tau_at_limit=fit.tau_at_limit)


@dataclass(frozen=True)
class WidthTrend:
    exponent: float  # b in N_eff ~ width^b
    low: float
    high: float
    p_value: float  # two-sided, b = 0 (support does not change with width)
    n_eff_at_width_1: float  # the fitted line at width 1
    tau: float  # between-run standard deviation of log N_eff around the line
    df: int
    runs: int
    widths: int  # distinct widths
    empty_pools: int  # runs in the fit whose pool held no duplicate
    tau_at_limit: bool  # the runs disagree beyond the spread the model allows


def width_trend(runs: Sequence[PoolCount], level: float = 0.95) -> WidthTrend:
    """The exponent b of N_eff ~ width^b over runs of one loss and latent size. Runs with
    duplicates at two widths or more must pin the line; empty pools join them."""
    widths = sorted({r.width for r in runs})
    if len({r.width for r in runs if r.has_duplicates}) < 2 or len(runs) < 3:
        raise ValueError(
            "a trend needs runs with duplicates at two widths or more, and three runs or more"
        )
    if widths[0] <= 0:
        raise ValueError("widths must be positive")
    design = np.array([[1.0, math.log(r.width)] for r in runs])
    fit = _fit(runs, design, level)
    value, low, high = fit.interval(1)
    return WidthTrend(
        exponent=value,
        low=low,
        high=high,
        p_value=fit.p_value(1),
        n_eff_at_width_1=math.exp(float(fit.coef[0])),
        tau=math.sqrt(fit.tau2),
        df=fit.df,
        runs=len(runs),
        widths=len(widths),
        empty_pools=sum(not r.has_duplicates for r in runs),
        tau_at_limit=fit.tau_at_limit,
    )
