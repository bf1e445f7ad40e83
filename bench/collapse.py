"""The review on collapsed generators: duplicate clusters far larger than the miner's k slots.

bench/estimator.py's cells hold E[D] <= 100; a collapsed GAN audited with a pool of a few
hundred samples holds thousands of duplicate pairs, most in a few big clusters of which the
miner (k = 5 nearest earlier samples) proposes a sliver. Those pairs reach the estimate through
the closure of confirmed judgements or through the random non-candidate pairs. This bench runs
the same simulated pools and oracle review as bench/estimator.py (its draw_pool and review) on
Zipf cells with E[D] = 300 and 3,000 and prints, per cell: coverage, median relative error of
N_eff beside the oracle's (every identity known), labels, median relative half-width of the
interval and the median share of D_hat carried by the random pairs (`missed`).

    .venv/bin/python bench/collapse.py               # 6 cells x 100 seeds, ~3 min
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.estimate import estimate_support  # noqa: E402
from bench.estimator import LEVEL, Cell, draw_pool, review  # noqa: E402

CELLS = [
    Cell("zipf", 1.2, 0.0, 300),
    Cell("zipf", 1.5, 0.3, 300),
    Cell("zipf", 1.2, 0.0, 3000),
    Cell("zipf", 1.5, 0.3, 3000),
    # A generator collapsed onto 10 outputs: every candidate pair is a duplicate.
    Cell("uniform", 10, 0.0, 300),
    Cell("uniform", 10, 0.0, 3000),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    start = time.perf_counter()
    print(
        f"{'cell':32s} {'n':>4s} {'N_eff':>6s} {'cover':>6s} {'err':>6s} {'o.err':>6s} "
        f"{'labels':>6s} {'cands':>6s} {'width':>6s} {'w.max':>6s} {'missed':>6s}"
    )
    for cell in CELLS:
        truth = 1.0 / cell.q
        rows = []
        for seed in range(args.seeds):
            pool = draw_pool(cell, np.random.default_rng([seed, 7]))
            spent, est, _ = review(pool, seed)
            sizes = [v for v in Counter(pool.ids.tolist()).values() if v >= 2]
            oracle = estimate_support(pool.ids.size, sizes, LEVEL)
            high = est.n_eff_high if est.n_eff_high is not None else np.inf
            width = est.relative_half_width
            rows.append(
                (
                    est.n_eff_low <= truth <= high,
                    abs(est.n_eff - truth) / truth if est.n_eff else np.inf,
                    abs(oracle.n_eff - truth) / truth if oracle.n_eff else np.inf,
                    spent,
                    len(pool.candidates),
                    width if width is not None else np.inf,
                    est.parts.missed / max(est.d_hat, 1.0),
                )
            )
        a = np.array(rows, dtype=np.float64)
        print(
            f"{cell.name:32s} {cell.n:4d} {truth:6.1f} {a[:, 0].mean():6.2f} "
            f"{np.median(a[:, 1]):6.3f} {np.median(a[:, 2]):6.3f} {np.median(a[:, 3]):6.0f} "
            f"{np.median(a[:, 4]):6.0f} {np.median(a[:, 5]):6.2f} {a[:, 5].max():6.2f} "
            f"{np.median(a[:, 6]):6.2f}"
        )
    print(f"# {args.seeds} seeds per cell, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
