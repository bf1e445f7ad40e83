"""When to stop labelling, and how many more labels or samples the target needs.

Two limits shape an audit's precision. The pool's own randomness (Var(D), the U-statistic
variance) shrinks only with more samples: relative se ~ 1/sqrt(E[D]), E[D] = C(n,2)/N_eff, so
n ~ sqrt(2 k N_eff) samples give about k duplicate pairs. The labels' sampling variance shrinks
with more labels. Labelling stops when either

* the target is met (`reached`): the N_eff interval's relative half-width is at most the
  target, and the one-sided upper bound on the unreviewed share of D is small; or
* labels can no longer help much (`labels_done`): the design variance of the unreviewed part is
  at most `design_share` of Var(D) (0.1: an interval ~5% wider than with every pair labelled)
  and the unreviewed share is bounded; `samples_to_go` then says how far to extend the pool.

`limited_by` names what holds the interval back: labels, samples, or the miner. The last is
the random check's own noise: once it has found duplicates the miner missed, the missed part's
relative error is about 1/sqrt(duplicates found), whatever the pool size (an extension draws a
new random sample of the same size for its new pairs), so no number of samples reaches a
target below that floor; only a miner that proposes those pairs (more neighbours per sample, a
better embedder) does. Drawing more random pairs only when the check found some would bias the
missed part down (its continuation depends on the outcome), so the check's size stays fixed.

Both need every allocation stratum explored (design.min_per_stratum pairs sampled, one of
them with a value the other observations leave open where pairs are left unsettled), the
miner check done (design.random_min random non-candidate pairs judged) and no closure gap left
(closure_gaps.py: a likely duplicate that would merge two clusters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy.stats import norm

from app.estimate.incomplete import IncompleteEstimate

__all__ = [
    "Limit",
    "StopStatus",
    "labels_for_variance",
    "miner_half_width",
    "samples_for_width",
    "stopping_status",
]

DEFAULT_TARGET = 0.2  # relative half-width of the N_eff interval
DEFAULT_MAX_UNREVIEWED_SHARE = 0.1
DEFAULT_DESIGN_SHARE = 0.1

Limit = Literal["labels", "samples", "miner"]


@dataclass(frozen=True)
class StopStatus:
    reached: bool  # the user's target is met: stop
    labels_done: bool  # more labels would barely narrow the interval: stop labelling
    labels_to_go: int  # projected labels until labels_done (0 when done)
    samples_to_go: int | None  # more samples the pool needs for the target; None: unreachable
    relative_half_width: float | None  # (n_eff_high - n_eff_low) / (2 n_eff)
    unreviewed_share_ucb: float  # one-sided upper bound on unreviewed / D_hat
    target: float
    limited_by: Limit | None = None  # what keeps the target out of reach now; None: reached
    miner_half_width: float = 0.0  # the relative half-width the miner check alone leaves

    @property
    def stop(self) -> bool:
        """No more labels are needed (the review queue answers 204)."""
        return self.reached or self.labels_done


def _relative_half_width(n: int, q: float, p3: float, z: float, inflate: float) -> float:
    pairs = n * (n - 1) / 2.0
    var = pairs * (q - q * q) + n * (n - 1) * (n - 2) * max(p3 - q * q, 0.0)
    half = z * math.sqrt(var * inflate) / (pairs * q)
    return math.sinh(half) if half < 700.0 else math.inf


def _half(width: float) -> float:
    """Log-scale half-width h of a relative N_eff half-width sinh(h)."""
    return math.asinh(width)


def miner_half_width(estimate: IncompleteEstimate) -> float:
    """Relative half-width of the N_eff interval from the missed part's variance alone.

    The random check's noise: it stays about the same as the pool grows (see the module
    docstring), so it is a floor under the width that more samples cannot lower.
    """
    if estimate.d_hat <= 0.0 or estimate.var_missed <= 0.0:
        return 0.0
    z = float(norm.ppf(0.5 + estimate.level / 2.0))
    half = z * math.sqrt(estimate.var_missed) / estimate.d_hat
    return math.sinh(half) if half < 700.0 else math.inf


def samples_for_width(
    q: float,
    p3: float,
    target: float,
    level: float = 0.95,
    design_share: float = DEFAULT_DESIGN_SHARE,
) -> int:
    """Smallest pool size whose expected N_eff interval has relative half-width <= target.

    Uses Var(D) = C(n,2)(q - q^2) + n(n-1)(n-2)(p3 - q^2) at the estimated q and p3, inflated
    by (1 + design_share) for the labels, on the log scale of the interval (half-width
    sinh(z se(D) / E[D])). Near uniformity this is n ~ sqrt(2 k / q), k = (z / target)^2.
    At q = 1 (every sample alike) Var(D) is 0 and the interval is simpson.one_cluster_d_low's.
    """
    if not 0.0 < q <= 1.0 or p3 < 0.0 or target <= 0.0:
        raise ValueError("need 0 < q <= 1, p3 >= 0 and target > 0")
    if q >= 1.0:  # one cluster holds the pool: the exact bound's width, [1, a^(-2/n)]
        one_side = (1.0 - level) / 2.0
        return max(2, math.ceil(-2.0 * math.log(one_side) / math.log1p(2.0 * target)))
    z = float(norm.ppf(0.5 + level / 2.0))
    inflate = 1.0 + design_share
    lo, hi = 2, 4
    while _relative_half_width(hi, q, p3, z, inflate) > target:
        lo, hi = hi, hi * 2
        if hi > 10**15:
            raise ValueError("target not reachable at any pool size")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _relative_half_width(mid, q, p3, z, inflate) > target:
            lo = mid
        else:
            hi = mid
    return hi


def labels_for_variance(
    estimate: IncompleteEstimate,
    var_target: float,
    unreviewed_limit: float = math.inf,
    z: float = 0.0,
) -> int:
    """Labels Neyman allocation would need until the unreviewed part's variance is at most
    var_target and its upper bound (unreviewed + z sd) at most unreviewed_limit.

    With each stratum's current s^2, and c_g the share of its unreached pairs still needing a
    label: minimise sum c_g (r_g' - r_g) subject to those limits, r_g <= r_g' <= N_g, by
    r_g' = clip(lambda N_g s_g / sqrt(c_g)) with lambda found by bisection. A stratum's
    estimated unreviewed duplicates shrink with its unreached pairs, (N_g - r_g') / (N_g - r_g),
    since every pair reached is settled.
    """
    rows = []
    for st in estimate.strata:
        if st.sampled == 0 or st.sampled >= st.pairs:
            continue
        s2 = st.variance * st.sampled / (st.pairs**2 * (1.0 - st.sampled / st.pairs))
        unreached = st.pairs - st.sampled
        cost = max(st.unsettled / unreached, 1e-3)
        rows.append((st.pairs, st.sampled, s2, cost, max(st.unreviewed, 0.0)))
    fixed_var = estimate.var_unreviewed - sum(
        n_g**2 * (1.0 / r - 1.0 / n_g) * s2 for n_g, r, s2, _, _ in rows
    )
    fixed_unreviewed = estimate.parts.unreviewed - sum(row[4] for row in rows)

    def plan(lam: float) -> tuple[bool, float]:
        var, unreviewed, labels = fixed_var, fixed_unreviewed, 0.0
        for n_g, r, s2, cost, part in rows:
            want = lam * n_g * math.sqrt(max(s2, 1e-12) / cost) if part > 0 or s2 > 0 else r
            r_new = min(max(want, r), n_g)
            var += n_g**2 * (1.0 / r_new - 1.0 / n_g) * s2
            unreviewed += part * (n_g - r_new) / (n_g - r)
            labels += cost * (r_new - r)
        met = var <= var_target * (1 + 1e-9) and unreviewed + z * math.sqrt(
            max(var, 0.0)
        ) <= unreviewed_limit * (1 + 1e-9)
        return met, labels

    if plan(0.0)[0]:
        return 0
    hi = 1.0
    while not plan(hi)[0] and hi < 1e12:
        hi *= 2.0
    lo = 0.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        if plan(mid)[0]:
            hi = mid
        else:
            lo = mid
    return math.ceil(plan(hi)[1])


def stopping_status(
    estimate: IncompleteEstimate,
    *,
    target: float = DEFAULT_TARGET,
    max_unreviewed_share: float = DEFAULT_MAX_UNREVIEWED_SHARE,
    design_share: float = DEFAULT_DESIGN_SHARE,
) -> StopStatus:
    """Where the audit stands against the target (see the module docstring)."""
    if target <= 0.0 or not 0.0 < max_unreviewed_share <= 1.0 or design_share < 0.0:
        raise ValueError("need target > 0, 0 < max_unreviewed_share <= 1, design_share >= 0")
    z1 = float(norm.ppf(estimate.level))
    scale = max(estimate.d_hat, 1.0)
    share_ucb = estimate.unreviewed_ucb / scale
    explored = estimate.explored
    width = estimate.relative_half_width
    share_ok = share_ucb <= max_unreviewed_share
    precise = estimate.var_unreviewed <= design_share * estimate.var_u
    labels_done = explored and share_ok and precise
    to_go = 0
    if not labels_done:
        limit = max_unreviewed_share * scale
        to_go = labels_for_variance(estimate, design_share * estimate.var_u, limit, z1)
    if not explored:
        to_go = max(to_go, estimate.random_to_go + estimate.closure_gaps, 1)
    reached = explored and share_ok and width is not None and width <= target
    floor = miner_half_width(estimate)
    samples = _samples_to_go(estimate, target, floor, design_share)
    limited_by: Limit | None = None
    if not reached:
        # no pool size reaches the target: the miner's floor, or a target (level) beyond 10^15
        by_miner = samples is None and floor >= target
        limited_by = "miner" if by_miner else "samples" if labels_done else "labels"
    return StopStatus(
        reached=reached,
        labels_done=labels_done,
        labels_to_go=to_go,
        samples_to_go=samples,
        relative_half_width=width,
        unreviewed_share_ucb=min(share_ucb, 1.0),  # a share: a bound past all of it says all
        target=target,
        limited_by=limited_by,
        miner_half_width=floor,
    )


def _samples_to_go(
    estimate: IncompleteEstimate, target: float, floor: float, design_share: float
) -> int | None:
    """More samples for the target, the miner check's floor taken off it on the log scale
    (half-widths add in quadrature there); None when no pool size reaches it: the floor alone
    exceeds the target, or the target is too narrow for any pool at this level (a level of
    1 - 1e-16, a target of 1e-320)."""
    room = _half(target) ** 2 - _half(floor) ** 2
    if room <= 0.0:
        return None
    q = min(estimate.q_hat if estimate.d_hat > 0 else 1.0 / estimate.n_eff_low, 1.0)
    p3 = estimate.p3_hat if estimate.d_hat > 0 else 0.0
    pool_target = math.sinh(math.sqrt(room))
    try:
        pool = samples_for_width(q, p3, pool_target, estimate.level, design_share)
    except ValueError:  # beyond 10^15 samples
        return None
    return max(0, pool - estimate.n)
