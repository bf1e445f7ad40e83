"""N_eff across training runs: a sweep's cells and its trend over discriminator width.

A cell's seeds are separate generators: their N_eff differ by training as well as by sampling,
so a cell's figure is a random-effects mean of log N_eff over its seeds, and the paper's
question (does a wider discriminator buy a larger support?) is the exponent b in
N_eff ~ width^b, a random-effects meta-regression of log N_eff on log width. Each audit brings
its own sampling variance (read off its interval); the between-seed variance tau^2 is
estimated (DerSimonian-Laird), and the intervals use the Knapp-Hartung variance, truncated below
at the model's own (never narrower than it), with Student's t on m - p degrees of freedom: with
the few seeds a sweep has, the normal interval covers far less than it claims. Each run's
sampling variance is taken at its fitted N_eff rather than at its own (see _fit_runs).

A generator whose pool holds no duplicate has only a lower bound on N_eff; it cannot enter a
mean of logs, and dropping it would bias the figure down, so callers keep such runs out and say
so (its pool needs extending).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from scipy.stats import t as student_t

__all__ = [
    "LogEstimate",
    "RandomEffectsFit",
    "cell_means",
    "log_scale_variance",
    "random_effects_fit",
    "ratio_interval",
    "width_trend",
]


MODEL_VARIANCE_ROUNDS = 4  # refits with variances at the fitted N_eff (they settle in 2-3)


@dataclass(frozen=True)
class LogEstimate:
    """One generator's audit: log N_eff and its sampling variance, in a cell at a width."""

    cell: Hashable
    width: float
    log_n_eff: float
    variance: float


@dataclass(frozen=True)
class RandomEffectsFit:
    coef: np.ndarray  # fitted coefficients
    cov: np.ndarray  # their covariance (Knapp-Hartung, truncated at the model's own)
    tau2: float  # between-run variance of log N_eff beyond sampling
    df: int  # residual degrees of freedom (m - p); 0: tau^2 unknown, normal quantiles
    quantile: float  # two-sided quantile used for the intervals at the requested level

    def interval(self, k: int) -> tuple[float, float, float]:
        """Coefficient k with its interval."""
        half = self.quantile * math.sqrt(float(self.cov[k, k]))
        value = float(self.coef[k])
        return value, value - half, value + half

    def p_value(self, k: int) -> float:
        """Two-sided test of coefficient k = 0."""
        stat = abs(float(self.coef[k])) / math.sqrt(float(self.cov[k, k]))
        if self.df == 0:
            return float(2 * norm.sf(stat))
        return float(2 * student_t.sf(stat, self.df))


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


def random_effects_fit(
    y: Sequence[float] | np.ndarray,
    variances: Sequence[float] | np.ndarray,
    design: np.ndarray,
    level: float = 0.95,
) -> RandomEffectsFit:
    """Meta-regression y = X b + u + e, u ~ (0, tau^2), e ~ (0, v_i known)."""
    if not 0 < level < 1:
        raise ValueError("level must lie strictly between 0 and 1")
    yv = np.asarray(y, dtype=float)
    v = np.asarray(variances, dtype=float)
    x = np.asarray(design, dtype=float)
    m, p = x.shape
    if m != yv.size or m != v.size or m < p:
        raise ValueError("needs at least as many runs as coefficients, one variance each")
    if np.any(v <= 0) or not np.all(np.isfinite(v)) or not np.all(np.isfinite(yv)):
        raise ValueError("variances must be positive and every value finite")
    if np.linalg.matrix_rank(x) < p:
        raise ValueError("the design does not identify every coefficient")
    df = m - p
    tau2 = _dersimonian_laird(yv, v, x) if df > 0 else 0.0
    w = 1.0 / (v + tau2)
    xtwx_inv = np.linalg.inv(x.T @ (w[:, None] * x))
    coef = xtwx_inv @ (x.T @ (w * yv))
    if df > 0:
        residuals = yv - x @ coef
        scale = max(1.0, float(np.sum(w * residuals**2)) / df)
        quantile = float(student_t.ppf(0.5 + level / 2, df))
    else:
        scale, quantile = 1.0, float(norm.ppf(0.5 + level / 2))
    return RandomEffectsFit(coef=coef, cov=scale * xtwx_inv, tau2=tau2, df=df, quantile=quantile)


def _fit_runs(runs: Sequence[LogEstimate], design: np.ndarray, level: float) -> RandomEffectsFit:
    """The fit with each run's sampling variance taken at its fitted N_eff, not its own.

    The variance of log N_eff-hat is about 1 / E[D], and E[D] ~ C(n, 2) / N_eff: a run whose pool
    happened to hold more duplicates reads a smaller N_eff *and* a smaller variance, so weighting
    by the observed variances pulls the fit toward low N_eff, most where duplicates are fewest
    (the widest discriminators when one n serves the whole sweep). Rescaling each variance by
    D_observed / D_fitted = exp(fitted - observed log N_eff), and refitting, removes that pull
    (bench/sweep_support.py, "sweep support" in bench/README.md)."""
    y = np.array([r.log_n_eff for r in runs])
    observed = np.array([r.variance for r in runs])
    fit = random_effects_fit(y, observed, design, level)
    for _ in range(MODEL_VARIANCE_ROUNDS):
        fitted = design @ fit.coef
        variances = observed * np.exp(np.clip(fitted - y, -3.0, 3.0))
        fit = random_effects_fit(y, variances, design, level)
    return fit


def _dersimonian_laird(y: np.ndarray, v: np.ndarray, x: np.ndarray) -> float:
    """Method-of-moments tau^2 from the fixed-effect residual heterogeneity Q_E."""
    w = 1.0 / v
    xtwx_inv = np.linalg.inv(x.T @ (w[:, None] * x))
    residuals = y - x @ (xtwx_inv @ (x.T @ (w * y)))
    q_e = float(np.sum(w * residuals**2))
    trace = float(np.sum(w) - np.trace(xtwx_inv @ (x.T @ ((w**2)[:, None] * x))))
    m, p = x.shape
    return max(0.0, (q_e - (m - p)) / trace) if trace > 0 else 0.0


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


def cell_means(runs: Sequence[LogEstimate], level: float = 0.95) -> CellMeans:
    """Each cell's mean log N_eff over its seeds, tau^2 pooled over the cells."""
    cells = list(dict.fromkeys(r.cell for r in runs))
    if not cells:
        raise ValueError("no run to summarise")
    design = np.array([[1.0 if r.cell == c else 0.0 for c in cells] for r in runs])
    fit = _fit_runs(runs, design, level)
    out = []
    for k, cell in enumerate(cells):
        value, low, high = fit.interval(k)
        count = sum(r.cell == cell for r in runs)
        out.append(CellMean(cell, count, math.exp(value), math.exp(low), math.exp(high)))
    return CellMeans(cells=out, tau=math.sqrt(fit.tau2), df=fit.df)


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


def width_trend(runs: Sequence[LogEstimate], level: float = 0.95) -> WidthTrend:
    """The exponent b of N_eff ~ width^b over runs of one loss and latent size."""
    widths = sorted({r.width for r in runs})
    if len(widths) < 2 or len(runs) < 3:
        raise ValueError("a trend needs runs at two widths or more, and three runs or more")
    if widths[0] <= 0:
        raise ValueError("widths must be positive")
    design = np.array([[1.0, math.log(r.width)] for r in runs])
    fit = _fit_runs(runs, design, level)
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
    )
