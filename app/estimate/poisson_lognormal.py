"""A log-linear model of N_eff over audits whose duplicate counts are Poisson: the
Poisson-lognormal mixed model, fitted by marginal likelihood.

Audit r counts k_r duplicate pairs at exposure t_r, E[k_r | N_r] = t_r / N_r (for a fully reviewed
pool near uniformity, k = D and t = C(n, 2)); its generator's log N_r = x_r b + u_r, with
u_r ~ N(0, tau^2) the luck of its training seed. Unlike a mean of log N_eff-hat, this takes a pool
with no duplicate for what it is (k = 0: N_r is large, P(k = 0) = exp(-t / N_r)), weighs each
audit at its fitted N_r rather than at its own noisy count, and needs no D > 0.

Each audit's integral over u_r is taken by adaptive Gauss-Hermite quadrature, centred on the
mode of its integrand (in closed form through the Wright omega function) and scaled by its
curvature: a Poisson likelihood with k ~ 50 is far narrower than tau, where fixed nodes fail.
tau^2 maximises the restricted likelihood (b integrated out by Laplace's method, as glmmTMB's
REML does): maximum likelihood shrinks tau^2 by about (m - p) / m, which with the few seeds a
sweep has gives intervals that cover too seldom. The intervals are Wald intervals at the fitted
tau^2, with Student's t on m - p degrees of freedom (bench/sweep_support.py measures coverage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize_scalar
from scipy.special import wrightomega
from scipy.stats import norm
from scipy.stats import t as student_t

__all__ = ["LogLinearFit", "poisson_lognormal_fit"]

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(20)
# log of weight * exp(x^2 / 2): the nodes integrate f(x) dx, not f(x) phi(x) dx
_LOG_WEIGHTS = np.log(_WEIGHTS) + _NODES**2 / 2
# log tau searched over [LOG_TAU_LOW, LOG_TAU_HIGH], and tau = 0 on its own: a seed spread
# below e^-7 of log N is no spread; above e (a factor of 15 per standard deviation) no sweep of
# one architecture lives.
LOG_TAU_LOW, LOG_TAU_HIGH = -7.0, 1.0
_GRID = np.linspace(LOG_TAU_LOW, LOG_TAU_HIGH, 12)
_AT_LIMIT = 0.01  # within this of LOG_TAU_HIGH (Brent's method stops short of its bound)
_NEWTON_STEPS = 100
_MAX_LOG_RATE = 300.0
_HALF_LOG_2PI = 0.5 * math.log(
    2 * math.pi
)  # exp() of more overflows; such nodes carry no weight anyway

Array = NDArray[np.float64]


@dataclass(frozen=True)
class LogLinearFit:
    """Coefficients of log N_eff = x b, with Wald intervals at the fitted tau^2."""

    coef: Array
    cov: Array  # inverse observed information of b at the fitted tau^2
    tau2: float  # between-run variance of log N_eff beyond sampling
    df: int  # residual degrees of freedom (m - p); 0: tau^2 unknown, normal quantiles
    quantile: float  # two-sided quantile used for the intervals at the requested level

    @property
    def tau_at_limit(self) -> bool:
        """tau reached the top of its search range: the runs disagree beyond any seed spread
        the model allows, and the intervals are only as wide as that limit makes them."""
        return self.tau2 >= math.exp(2 * (LOG_TAU_HIGH - _AT_LIMIT))

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


@dataclass(frozen=True)
class _Terms:
    nll: float  # minus the marginal log-likelihood (up to a constant)
    grad: Array  # its gradient in b
    hess: Array  # its Hessian in b


def _terms(beta: Array, tau: float, k: Array, log_t: Array, x: Array) -> _Terms:
    """The marginal likelihood at (b, tau) with its derivatives in b.

    d/d eta log int L(k | eta + u) phi_tau(u) du = E[lambda | k] - k over the posterior of u, and
    the second derivative is Var[lambda | k] - E[lambda | k]: any quadrature of the posterior
    gives both."""
    log_c = log_t - x @ beta  # log of the Poisson mean at u = 0
    if tau == 0.0:
        lam = np.exp(np.minimum(log_c, _MAX_LOG_RATE))
        nll = float(np.sum(lam - k * log_c))
        return _Terms(nll, -x.T @ (lam - k), x.T @ (lam[:, None] * x))
    tau2 = tau * tau
    # Mode of k (log_c - u) - c e^-u - u^2 / (2 tau^2): c e^-u = k + u / tau^2, solved by
    # v = k + u / tau^2 = W(tau^2 c e^(tau^2 k)) / tau^2 (W = Wright omega of the log).
    v = np.real(wrightomega(math.log(tau2) + log_c + tau2 * k)) / tau2
    mode = tau2 * (v - k)
    scale = 1.0 / np.sqrt(v + 1.0 / tau2)
    u = mode[:, None] + scale[:, None] * _NODES[None, :]
    log_rate = np.minimum(log_c[:, None] - u, _MAX_LOG_RATE)
    rate = np.exp(log_rate)
    terms = k[:, None] * log_rate - rate - u**2 / (2 * tau2) + _LOG_WEIGHTS[None, :]
    top = terms.max(axis=1, keepdims=True)
    weights = np.exp(terms - top)
    total = weights.sum(axis=1)
    log_sum = np.log(total) + top[:, 0]
    post = weights / total[:, None]
    mean = np.sum(post * rate, axis=1)
    var = np.maximum(np.sum(post * rate**2, axis=1) - mean**2, 0.0)
    # minus log of int exp(terms) du / (tau sqrt(2 pi)): the same constant as at tau = 0
    nll = -float(np.sum(log_sum + np.log(scale))) + k.size * (math.log(tau) + _HALF_LOG_2PI)
    return _Terms(nll, -x.T @ (mean - k), x.T @ ((mean - var)[:, None] * x))


def _newton(beta: Array, tau: float, k: Array, log_t: Array, x: Array) -> tuple[Array, _Terms]:
    """The b maximising the marginal likelihood at this tau (damped Newton; where the Hessian is
    not positive definite, far from the optimum, shifted until it is)."""
    at = _terms(beta, tau, k, log_t, x)
    for _ in range(_NEWTON_STEPS):
        lowest = float(np.linalg.eigvalsh(at.hess)[0])
        shift = 0.0 if lowest > 1e-12 else 1e-3 - lowest + 1e-3 * float(np.abs(at.hess).max())
        step = np.linalg.solve(at.hess + shift * np.eye(beta.size), at.grad)
        if float(at.grad @ step) < 1e-12:  # the Newton decrement: nothing left to gain
            break
        shrink = 1.0
        while shrink > 1e-6:
            trial = beta - shrink * step
            new = _terms(trial, tau, k, log_t, x)
            if new.nll <= at.nll:
                break
            shrink /= 2
        else:
            break
        beta, at = trial, new
    return beta, at


def _restricted_nll(at: _Terms) -> float:
    sign, log_det = np.linalg.slogdet(at.hess)
    return at.nll + 0.5 * log_det if sign > 0 else math.inf


def poisson_lognormal_fit(
    counts: Array, exposures: Array, design: Array, level: float = 0.95
) -> LogLinearFit:
    """log N_r = x_r b + u_r, counts k_r ~ Poisson(t_r / N_r), u_r ~ N(0, tau^2).

    Counts may be fractional (an audit's effective count, see across_runs.PoolCount). The runs
    with k > 0 must identify every coefficient: pools without a duplicate bound N from below
    only, and alone they let it run off to infinity."""
    if not 0 < level < 1:
        raise ValueError("level must lie strictly between 0 and 1")
    k = np.asarray(counts, dtype=float)
    t = np.asarray(exposures, dtype=float)
    x = np.asarray(design, dtype=float)
    m, p = x.shape
    if m != k.size or m != t.size or m < p:
        raise ValueError("needs at least as many runs as coefficients, a count and exposure each")
    if np.any(k < 0) or np.any(t <= 0) or not (np.all(np.isfinite(k)) and np.all(np.isfinite(t))):
        raise ValueError("counts must be >= 0 and exposures > 0, all finite")
    with_duplicates = x[k > 0]
    if with_duplicates.shape[0] == 0 or np.linalg.matrix_rank(with_duplicates) < p:
        raise ValueError("the runs with duplicates do not identify every coefficient")
    log_t = np.log(t)
    start = np.linalg.lstsq(x, log_t - np.log(k + 0.5), rcond=None)[0]
    df = m - p
    beta, at = _newton(start, 0.0, k, log_t, x)
    tau = 0.0
    if df > 0:
        tau, beta, at = _restricted_tau(beta, at, k, log_t, x)
    cov = np.linalg.inv(at.hess).astype(np.float64)
    quantile = float(student_t.ppf(0.5 + level / 2, df) if df > 0 else norm.ppf(0.5 + level / 2))
    return LogLinearFit(coef=beta, cov=cov, tau2=tau * tau, df=df, quantile=quantile)


def _restricted_tau(
    beta0: Array, at0: _Terms, k: Array, log_t: Array, x: Array
) -> tuple[float, Array, _Terms]:
    """tau maximising the restricted likelihood: tau = 0, or the best of a grid over log tau
    refined by Brent's method, whichever is higher."""
    fits: dict[float, tuple[Array, _Terms]] = {}
    warm = beta0

    def objective(log_tau: float) -> float:
        nonlocal warm
        beta, at = _newton(warm, math.exp(log_tau), k, log_t, x)
        fits[log_tau] = (beta, at)
        if math.isfinite(at.nll):
            warm = beta
        return _restricted_nll(at)

    values = [objective(float(g)) for g in _GRID]
    best = int(np.argmin(values))
    lo, hi = _GRID[max(0, best - 1)], _GRID[min(_GRID.size - 1, best + 1)]
    warm = fits[float(_GRID[best])][0]
    refined = minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3})
    log_tau = float(refined.x) if refined.fun <= values[best] else float(_GRID[best])
    beta, at = fits[log_tau]
    if _restricted_nll(at0) <= _restricted_nll(at):
        return 0.0, beta0, at0
    return math.exp(log_tau), beta, at
