"""Secondary figures shown beside N_eff, each for what it is.

* The paper's batch curve from the pool: the exact chance that s samples drawn without
  replacement from the labelled pool hold a duplicate, its s_50 and the paper's "support ~
  s_50^2" (about 1.39 N for a uniform N; Arora & Zhang 2017).
* The uniform-model maximum-likelihood N from batch indicators (did a batch of s hold a
  duplicate?), with a profile-likelihood interval: what the paper's protocol can say when each
  batch is drawn afresh from the generator.
* Chao1 (bias-corrected; Chao 1984, 1987): a lower bound on the number of distinct outputs
  (richness, the Hill number of order 0), from singletons and doubletons, with its log-normal
  interval. Unlike N_eff it is dominated by the never-repeated samples.
* The Vendi score (Friedman & Dieng 2023) of orders 1 and 2 with a cosine-similarity kernel:
  the label-free "effective number of distinct samples" of the embeddings, at most n.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq, minimize_scalar
from scipy.special import gammaln, logsumexp
from scipy.stats import chi2, norm

from app.estimate.batch import paper_support

__all__ = [
    "BatchMLE",
    "Chao1",
    "PoolBatchView",
    "VendiScores",
    "chao1",
    "chao1_from_pool",
    "pool_batch_curve",
    "pool_batch_view",
    "uniform_batch_mle",
    "vendi_scores",
]


def _check_pool(n: int, sizes: Sequence[int]) -> list[int]:
    if isinstance(n, bool) or int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    multi = [int(s) for s in sizes if s >= 2]
    if any(int(s) != s or s < 1 for s in sizes) or sum(int(s) for s in sizes) > n:
        raise ValueError("cluster sizes must be positive integers summing to at most n")
    return multi


def _log_comb(a: NDArray[np.float64] | float, b: NDArray[np.float64] | float) -> NDArray:
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = (b_arr >= 0) & (b_arr <= a_arr)
    safe_b = np.where(ok, b_arr, 0.0)
    value = gammaln(a_arr + 1) - gammaln(safe_b + 1) - gammaln(a_arr - safe_b + 1)
    return np.asarray(np.where(ok, value, -np.inf))


def _log_elementary(sizes: Sequence[int], k_max: int) -> NDArray[np.float64]:
    """log e_k(sizes) for k = 0..k_max, by the product prod (1 + size x) with rescaling."""
    coef = np.zeros(k_max + 1)
    coef[0], log_scale = 1.0, 0.0
    for size in sizes:
        coef[1:] = coef[1:] + size * coef[:-1]
        top = coef.max()
        coef /= top
        log_scale += math.log(top)
    with np.errstate(divide="ignore"):
        return np.log(coef) + log_scale


def _log_no_duplicate(n: int, multi: list[int], log_e: NDArray[np.float64], s: int) -> float:
    """log P(a batch of s from the pool takes at most one sample per cluster)."""
    singles = n - sum(multi)
    k = np.arange(min(len(multi), s) + 1)
    if s > singles:  # no batch avoids the clusters entirely: plain log-binomials suffice
        terms = log_e[k] + _log_comb(singles, (s - k).astype(np.float64)) - _log_comb(n, s)
        return float(logsumexp(terms))
    # P = C(n1, s)/C(n, s) * (1 + sum_k e_k C(n1, s-k)/C(n1, s)); the first factor is
    # prod_{i<s} (1 - m/(n - i)) by log1p, the ratios prod_{j<=k} (s-j+1)/(n1-s+j), so a
    # P close to 1 keeps its digits.
    base = float(np.sum(np.log1p(-(n - singles) / (n - np.arange(s, dtype=np.float64)))))
    j = np.arange(1, k[-1] + 1, dtype=np.float64)
    ratios = np.concatenate([[0.0], np.cumsum(np.log(s - j + 1) - np.log(singles - s + j))])
    rest = log_e[k[1:]] + ratios[1:]
    # log(1 + e^L) as logaddexp(0, L): e^L overflows once s nears the singletons (L > 709),
    # where P(no duplicate) is tiny but log1p(exp(L)) gave inf, i.e. P(duplicate) = 0.
    return base + (float(np.logaddexp(0.0, logsumexp(rest))) if rest.size else 0.0)


def pool_batch_curve(n: int, sizes: Sequence[int], s_values: ArrayLike) -> NDArray[np.float64]:
    """Exact P(a batch of s drawn without replacement from the pool holds a duplicate).

    A batch is duplicate-free when it takes at most one sample per cluster:
    P(none) = sum_k e_k(cluster sizes) C(n_1, s - k) / C(n, s), with e_k the elementary
    symmetric polynomials of the sizes of clusters with >= 2 members and n_1 the singletons,
    computed with running rescaling so that large pools neither overflow nor underflow.
    """
    multi = _check_pool(n, sizes)
    s_arr = np.asarray(s_values)
    if s_arr.size and (not np.issubdtype(s_arr.dtype, np.integer) or s_arr.min() < 0):
        raise ValueError("s_values must be integers >= 0")
    if s_arr.size and s_arr.max() > n:
        raise ValueError(f"s_values must be at most n={n}")
    log_e = _log_elementary(multi, min(len(multi), int(s_arr.max(initial=0))))
    out = np.empty(s_arr.shape, dtype=np.float64)
    for idx, s in np.ndenumerate(s_arr):
        out[idx] = -math.expm1(min(_log_no_duplicate(n, multi, log_e, int(s)), 0.0))
    return out


@dataclass(frozen=True)
class PoolBatchView:
    """The paper's figures from the pool: s_50 and its "support ~ s_50^2" (~1.39 N if uniform)."""

    s50: int | None  # smallest s with P(duplicate in a batch of s) >= 1/2; None: not in the pool
    paper_support: int | None  # s50^2


def pool_batch_view(n: int, sizes: Sequence[int]) -> PoolBatchView:
    """s_50 by bisection on the exact pool curve (it increases with s)."""
    multi = _check_pool(n, sizes)
    if not multi or pool_batch_curve(n, multi, [n])[0] < 0.5:
        return PoolBatchView(None, None)
    lo, hi = 1, n  # P(lo) < 1/2 <= P(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pool_batch_curve(n, multi, [mid])[0] >= 0.5:
            hi = mid
        else:
            lo = mid
    return PoolBatchView(hi, paper_support(hi))


@dataclass(frozen=True)
class BatchMLE:
    """Uniform-model maximum-likelihood support size from batch indicators."""

    n_hat: float | None  # None: the likelihood has no interior maximum (all or no hits)
    low: float | None  # profile-likelihood bounds; None: unbounded on that side
    high: float | None
    log_likelihood: float  # at n_hat (or its supremum)
    level: float


def _log_none(s: NDArray[np.int64], big_n: float) -> NDArray[np.float64]:
    """log P(no duplicate among s uniform draws from big_n outputs), -inf when s - 1 >= big_n:
    sum_{i<s} log(1 - i/N), from one cumulative sum up to the largest s."""
    steps = np.arange(1, int(s.max()), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(steps < big_n, np.log1p(-steps / big_n), -np.inf)
    cum = np.concatenate([[0.0], np.cumsum(terms)])
    return np.asarray(cum[s - 1], dtype=np.float64)


def uniform_batch_mle(batch_sizes: ArrayLike, hits: ArrayLike, level: float = 0.95) -> BatchMLE:
    """MLE of N under a uniform distribution on N outputs, from independent batches.

    Batch b of s_b fresh samples holds a duplicate with probability
    1 - prod_{i<s_b} (1 - i/N). N is treated as continuous. The interval is
    {N : 2 (l(N_hat) - l(N)) <= chi2_1(level)}. Batches drawn from one finite pool are not
    independent; use this for the paper's protocol with fresh batches.
    """
    s = np.asarray(batch_sizes, dtype=np.int64)
    x = np.asarray(hits, dtype=np.int64)
    if s.shape != x.shape or s.ndim != 1 or s.size == 0:
        raise ValueError("batch_sizes and hits must be equal-length 1-d arrays, not empty")
    if s.min() < 2 or not np.all(np.isin(x, (0, 1))):
        raise ValueError("batch sizes must be >= 2 and hits 0 or 1")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    sizes, inverse = np.unique(s, return_inverse=True)
    hit = np.bincount(inverse, weights=x, minlength=sizes.size)
    miss = np.bincount(inverse, weights=1 - x, minlength=sizes.size)
    floor = float(sizes[miss > 0].max() - 1) if miss.any() else 0.0
    half_crit = float(chi2.ppf(level, 1)) / 2.0

    def loglik(big_n: float) -> float:
        ln = _log_none(sizes, big_n)
        with np.errstate(divide="ignore"):
            log_hit = np.log(-np.expm1(ln))
        total = np.sum(hit[hit > 0] * log_hit[hit > 0]) + np.sum(miss[miss > 0] * ln[miss > 0])
        return float(total)

    def cross(a: float, b: float, target: float) -> float:
        return float(
            math.exp(brentq(lambda t: loglik(math.exp(t)) - target, math.log(a), math.log(b)))
        )

    if not hit.any():  # l increases to 0 as N grows: only a lower bound
        low = cross(max(floor, 1.0) * (1 + 1e-9) + 1e-9, 1e18, -half_crit)
        return BatchMLE(None, low, None, 0.0, level)
    if not miss.any():  # l = 0 for every N below the smallest batch: only an upper bound
        top = float(sizes.min() - 1)
        high = cross(max(top, 1.0), 1e18, -half_crit) if top >= 1 else None
        return BatchMLE(None, None, high, 0.0, level)
    lo_t, hi_t = math.log(floor + 1e-9 * max(floor, 1.0) + 1e-12), math.log(1e18)
    grid = np.linspace(lo_t, hi_t, 600)[1:]
    values = np.array([loglik(math.exp(t)) for t in grid])
    best = int(np.argmax(values))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)]
    res = minimize_scalar(
        lambda t: -loglik(math.exp(t)), bounds=(a, b), method="bounded", options={"xatol": 1e-10}
    )
    t_hat = float(res.x) if -res.fun >= values[best] else float(grid[best])
    n_hat, l_hat = math.exp(t_hat), loglik(math.exp(t_hat))
    low = cross(math.exp(grid[0]), n_hat, l_hat - half_crit)
    high = cross(n_hat, 1e18, l_hat - half_crit)
    return BatchMLE(n_hat, low, high, l_hat, level)


@dataclass(frozen=True)
class Chao1:
    """Bias-corrected Chao1: a lower bound on richness (distinct outputs), with a log-normal
    interval."""

    estimate: float
    se: float
    low: float
    high: float
    observed: int  # S_obs: distinct outputs seen (clusters, singletons included)
    f1: int  # outputs seen once
    f2: int  # outputs seen twice
    level: float


def chao1(counts: Sequence[int], level: float = 0.95) -> Chao1:
    """Chao1-bc from the number of samples per distinct output (all >= 1).

    S = S_obs + (n-1)/n f1 (f1 - 1) / (2 (f2 + 1)); variance and the log-normal interval
    S_obs + T/K .. S_obs + T K, T = S - S_obs, K = exp(z sqrt(log(1 + var / T^2))) as in Chao
    (1987) and Anne Chao's SpadeR; when T = 0 the interval of SpadeR's f1 = 0 case.
    """
    c = [int(x) for x in counts]
    if not c or any(x < 1 for x in c):
        raise ValueError("counts must be a non-empty list of positive integers")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    z = float(norm.ppf(0.5 + level / 2.0))
    n, s_obs = sum(c), len(c)
    freq = Counter(c)
    f1, f2 = freq.get(1, 0), freq.get(2, 0)
    a = (n - 1) / n
    est = s_obs + a * f1 * (f1 - 1) / (2 * (f2 + 1))
    if f2 > 0:
        var = (
            a * f1 * (f1 - 1) / (2 * (f2 + 1))
            + a**2 * f1 * (2 * f1 - 1) ** 2 / (4 * (f2 + 1) ** 2)
            + a**2 * f1**2 * f2 * (f1 - 1) ** 2 / (4 * (f2 + 1) ** 4)
        )
    else:
        var = a * f1 * (f1 - 1) / 2 + a**2 * f1 * (2 * f1 - 1) ** 2 / 4 - a**2 * f1**4 / (4 * est)
    var = max(var, 0.0)
    t = est - s_obs
    if t > 0:
        k = math.exp(z * math.sqrt(math.log(1 + var / t**2)))
        low, high = s_obs + t / k, s_obs + t * k
    else:
        var = sum(m * (math.exp(-i) - math.exp(-2 * i)) for i, m in freq.items())
        var -= sum(i * math.exp(-i) * m for i, m in freq.items()) ** 2 / n
        var = max(var, 0.0)
        p = sum(m * math.exp(-i) for i, m in freq.items()) / s_obs
        low = max(s_obs, s_obs / (1 - p) - z * math.sqrt(var) / (1 - p))
        high = s_obs / (1 - p) + z * math.sqrt(var) / (1 - p)
    return Chao1(est, math.sqrt(var), low, high, s_obs, f1, f2, level)


def chao1_from_pool(n: int, sizes: Sequence[int], level: float = 0.95) -> Chao1:
    """Chao1 of a pool of n samples whose duplicate clusters have these sizes."""
    multi = _check_pool(n, sizes)
    return chao1(multi + [1] * (n - sum(multi)), level)


@dataclass(frozen=True)
class VendiScores:
    """Vendi scores of a set of embeddings: effective numbers of distinct samples, <= n."""

    order1: float  # exp(Shannon entropy of the eigenvalues of K/n)
    order2: float  # 1 / sum(eigenvalues^2) = n^2 / sum_ij K_ij^2
    n: int


def vendi_scores(embeddings: ArrayLike, chunk: int = 65_536) -> VendiScores:
    """Vendi scores of orders 1 and 2 with the cosine kernel K_ij = <x_i, x_j> / |x_i||x_j|.

    K/n has the same non-zero eigenvalues as X^T X / n for the normalised rows X, a d x d
    matrix accumulated in chunks, so a million embeddings need no n x n kernel. Identical
    embeddings score 1; n orthogonal ones score n.
    """
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError("embeddings must be an (n, d) array with n >= 1")
    n, d = x.shape
    gram = np.zeros((d, d)) if d <= n else None
    rows: list[NDArray[np.float64]] = []
    for start in range(0, n, chunk):
        part = np.asarray(x[start : start + chunk], dtype=np.float64)
        norms = np.linalg.norm(part, axis=1)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise ValueError("embeddings must be finite and non-zero")
        part = part / norms[:, None]
        if gram is not None:
            gram += part.T @ part
        else:
            rows.append(part)
    if gram is None:
        unit = np.concatenate(rows)
        gram = unit @ unit.T
    lam = np.clip(np.linalg.eigvalsh(gram / n), 0.0, None)
    lam = lam / lam.sum()
    positive = lam[lam > 0]
    order1 = float(np.exp(-np.sum(positive * np.log(positive))))
    order2 = float(1.0 / np.sum(lam**2))
    return VendiScores(min(order1, float(n)), min(order2, float(n)), n)
