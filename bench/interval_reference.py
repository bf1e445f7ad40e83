"""Which reference distribution the N_eff interval needs: normal or Student's t with 2k df.

For every cell of bench/estimator.py (uniform N, Zipf over 1,000 prototypes, with or without 30%
never-repeating mass, pools with E[D] of about 5, 20 and 100) it draws pools and checks, for an
oracle that knows every identity in the pool (no labelling error at all), how often the log-scale
interval on E[D] with the U-statistic variance covers the truth when its quantile comes from

* the normal distribution (the textbook delta method), or
* Student's t with 2k degrees of freedom, k = duplicate clusters in the pool (what
  app.estimate.simpson uses).

Small clumped pools (Zipf, n = 8..93) are where they differ: Var(D) is estimated from a handful of
clusters, and the normal quantile under-covers. For t(2k) it also prints on which side the misses
fall: `low` (the interval lies below the true E[D], D came out small: N_eff overstated, D = 0
included) and `high` (above it: N_eff understated). A two-sided 95% interval should miss about
0.025 on each side; the uniform E[D] = 5 cells miss < 0.01 low and the Zipf cells 0.02-0.055
low, from the same counts of D = 0 and 1: the tension that keeps one cell above 0.97. Pools are drawn in batches by
bench/oracle_coverage.py (tests/test_bench_oracle.py ties it to estimate_support).

    .venv/bin/python bench/interval_reference.py                 # 20,000 pools per cell, ~2 min
    .venv/bin/python bench/interval_reference.py --pools 100000  # ~10 min
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import binomtest, norm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.estimator import cells  # noqa: E402
from bench.oracle_coverage import covered, draw_cluster_stats, variance_d  # noqa: E402

LEVEL = 0.95


def normal_covered(n: int, d: np.ndarray, var_d: np.ndarray, truth_d: float) -> np.ndarray:
    """The same log-scale interval with the normal quantile."""
    z = float(norm.ppf(0.5 + LEVEL / 2))
    safe = np.where(d > 0, d, 1.0)
    half = z * np.sqrt(var_d) / safe
    inside = (safe * np.exp(-half) <= truth_d) & (truth_d <= safe * np.exp(half))
    return np.where(d > 0, inside, truth_d <= -np.log1p(-LEVEL))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=20_000, help="pools per cell")
    args = parser.parse_args()
    started = time.time()
    print(
        f"{'cell':38s} {'n':>6s} {'normal':>7s} {'t(2k)':>7s} {'p(t)':>6s} {'low':>6s} {'high':>6s}"
    )
    worst_normal, worst_t = (1.0, ""), (1.0, "")
    for cell in cells(quick=False):
        stats = draw_cluster_stats(cell, args.pools, np.random.default_rng(20261125))
        truth = cell.q * cell.n * (cell.n - 1) / 2
        normal_hits = normal_covered(cell.n, stats.d, variance_d(cell.n, stats), truth)
        t_hits = covered(cell.n, stats, truth, LEVEL)
        # The interval misses low exactly when D is below the truth (it holds D itself).
        low = float(np.mean(~t_hits & (stats.d < truth)))
        high = float(np.mean(~t_hits & (stats.d > truth)))
        normal, tee = float(normal_hits.mean()), float(t_hits.mean())
        p = binomtest(int(t_hits.sum()), args.pools, LEVEL).pvalue
        worst_normal = min(worst_normal, (normal, cell.name))
        worst_t = min(worst_t, (tee, cell.name))
        print(
            f"{cell.name:38s} {cell.n:6d} {normal:7.3f} {tee:7.3f} {p:6.3f} {low:6.3f} {high:6.3f}",
            flush=True,
        )
    print(f"# {args.pools} pools per cell, {time.time() - started:.0f} s")
    print(f"worst normal: {worst_normal[0]:.3f} in {worst_normal[1]}")
    print(f"worst t(2k): {worst_t[0]:.3f} in {worst_t[1]}")


if __name__ == "__main__":
    main()
