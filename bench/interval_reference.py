"""Which reference distribution the N_eff interval needs: normal or Student's t with 2k df.

For every cell of bench/estimator.py (uniform N, Zipf over 1,000 prototypes, with or without 30%
never-repeating mass, pools with E[D] of about 5, 20 and 100) it draws pools and checks, for an
oracle that knows every identity in the pool (no labelling error at all), how often the log-scale
interval on E[D] with the U-statistic variance covers the truth when its quantile comes from

* the normal distribution (the textbook delta method), or
* Student's t with 2k degrees of freedom, k = duplicate clusters in the pool (what
  app.estimate.simpson uses).

Small clumped pools (Zipf, n = 8..93) are where they differ: Var(D) is estimated from a handful of
clusters, and the normal quantile under-covers.

    .venv/bin/python bench/interval_reference.py            # 2,000 pools per cell, ~2 min
    .venv/bin/python bench/interval_reference.py --pools 500
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import binomtest, norm
from scipy.stats import t as student_t

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.estimate import estimate_support  # noqa: E402
from bench.estimator import Cell, cells  # noqa: E402

LEVEL = 0.95


def draw_sizes(cell: Cell, rng: np.random.Generator) -> list[int]:
    """Cluster sizes (>= 2) of a pool drawn from the cell's distribution."""
    n, w = cell.n, cell.weights()
    base = rng.integers(0, int(cell.param), n) if w is None else rng.choice(w.size, n, p=w)
    ids = np.where(rng.random(n) < cell.continuous, 10**12 + np.arange(n), base)
    return [c for c in Counter(ids.tolist()).values() if c >= 2]


def covers(d: int, var_d: float, quantile: float, truth: float) -> bool:
    if d == 0:
        return truth <= -math.log1p(-LEVEL)  # the one-sided bound for D = 0
    half = quantile * math.sqrt(var_d) / d
    return d * math.exp(-half) <= truth <= d * math.exp(half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=2000, help="pools per cell")
    args = parser.parse_args()
    z = float(norm.ppf(0.5 + LEVEL / 2))
    started = time.time()
    print(f"{'cell':38s} {'n':>6s} {'normal':>7s} {'t(2k)':>7s} {'p(t)':>6s}")
    worst_normal, worst_t = (1.0, ""), (1.0, "")
    for cell in cells(quick=False):
        rng = np.random.default_rng(20261125)
        truth = cell.q * cell.n * (cell.n - 1) / 2
        hits = Counter()
        for _ in range(args.pools):
            sizes = draw_sizes(cell, rng)
            est = estimate_support(cell.n, sizes, LEVEL)
            t = float(student_t.ppf(0.5 + LEVEL / 2, max(2 * len(sizes), 1)))
            hits["normal"] += covers(est.d, est.var_d, z, truth)
            hits["t"] += covers(est.d, est.var_d, t, truth)
        normal, tee = hits["normal"] / args.pools, hits["t"] / args.pools
        p = binomtest(hits["t"], args.pools, LEVEL).pvalue
        worst_normal = min(worst_normal, (normal, cell.name))
        worst_t = min(worst_t, (tee, cell.name))
        print(f"{cell.name:38s} {cell.n:6d} {normal:7.3f} {tee:7.3f} {p:6.3f}", flush=True)
    print(f"# {args.pools} pools per cell, {time.time() - started:.0f} s")
    print(f"worst normal: {worst_normal[0]:.3f} in {worst_normal[1]}")
    print(f"worst t(2k): {worst_t[0]:.3f} in {worst_t[1]}")


if __name__ == "__main__":
    main()
