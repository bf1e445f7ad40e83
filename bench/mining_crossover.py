"""Times ExactMiner against HnswMiner on whole pools, to set app.mining.factory.EXACT_MAX_POOL.

Each pool is mined as the audit job mines it: chunks of 2,000 rows, add_and_query with k=10.
Data are embedding-like (clustered low-dimensional patches plus noise), since HNSW's cost and
recall depend on structure. Prints seconds per pool, the ratio exact / hnsw, and per dimension
the crossover: the smallest measured n where hnsw wins, or an extrapolation (exact ~ n^2,
hnsw ~ n log n) from the largest measured n when it never does.

    python bench/mining_crossover.py [--sizes 2000 5000 ...] [--dims 64 512] [--repeats 1]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from numpy.typing import NDArray

from app.mining.exact import ExactMiner
from app.mining.hnsw import HnswMiner
from app.mining.types import Miner

CHUNK, K = 2_000, 10


def pool(n: int, dim: int, seed: int = 0) -> NDArray[np.float32]:
    """n rows from 50 clusters, each a random 12-d linear patch, plus isotropic noise."""
    rng = np.random.default_rng(seed)
    clusters, latent = 50, 12
    centres = 3.0 * rng.standard_normal((clusters, dim))
    patches = rng.standard_normal((clusters, latent, dim)) / np.sqrt(latent)
    label = rng.integers(0, clusters, n)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, CHUNK):
        lab = label[s : s + CHUNK]
        z = rng.standard_normal((len(lab), latent))
        rows = centres[lab] + np.einsum("nl,nld->nd", z, patches[lab])
        out[s : s + CHUNK] = rows + 0.1 * rng.standard_normal((len(lab), dim))
    return out


def seconds(
    make: Callable[[int, int], Miner], x: NDArray[np.float32], repeats: int
) -> tuple[float, float]:
    """Best (wall, CPU) seconds over repeats of mining the whole pool.

    CPU seconds of this process decide the crossover: on a shared machine wall time swings
    with other jobs' load, while the work a miner does does not.
    """
    wall, cpu = math.inf, math.inf
    for _ in range(repeats):
        miner = make(len(x), x.shape[1])
        start, start_cpu = time.perf_counter(), time.process_time()
        for s in range(0, len(x), CHUNK):
            miner.add_and_query(x[s : s + CHUNK], K)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def crossover(sizes: list[int], exact: list[float], hnsw: list[float]) -> str:
    """The smallest measured n from which hnsw stays faster, else an extrapolation."""
    wins = [h < e for e, h in zip(exact, hnsw, strict=True)]
    for at in range(len(sizes)):
        if all(wins[at:]):
            return f"hnsw faster from n = {sizes[at]:,} on (measured)"
    n, e, h = sizes[-1], exact[-1], hnsw[-1]
    # Solve e * (m/n)^2 = h * (m log m) / (n log n) for m by bisection on a log scale.
    lo, hi = float(n), float(n) * 1e4
    for _ in range(100):
        m = math.sqrt(lo * hi)
        if e * (m / n) ** 2 < h * (m * math.log(m)) / (n * math.log(n)):
            lo = m
        else:
            hi = m
    return f"exact faster at the largest measured n; extrapolated crossover n ~ {lo:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[2_000, 5_000, 10_000, 20_000, 50_000]
    )
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch and hnswlib threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = args.threads

    def hnsw(capacity: int, dim: int) -> HnswMiner:
        return HnswMiner(capacity, dim, num_threads=threads)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, hnswlib threads "
        f"{threads or 'all'}, ExactMiner on {ExactMiner(0, 1).device}; chunks of {CHUNK:,}, "
        f"k={K}, best of {args.repeats}; crossover by CPU seconds"
    )
    seconds(ExactMiner, pool(CHUNK, 8), 1)  # warm up torch's thread pool and allocator
    for dim in args.dims:
        print(f"\nd = {dim}")
        print(
            f"{'n':>8} {'exact wall':>11} {'hnsw wall':>10} {'exact cpu':>10} {'hnsw cpu':>9}"
            f" {'cpu ratio exact/hnsw':>21}"
        )
        exact: list[float] = []
        graph: list[float] = []
        for n in args.sizes:
            x = pool(n, dim)
            exact_wall, exact_cpu = seconds(ExactMiner, x, args.repeats)
            hnsw_wall, hnsw_cpu = seconds(hnsw, x, args.repeats)
            exact.append(exact_cpu)
            graph.append(hnsw_cpu)
            print(
                f"{n:>8,} {exact_wall:>11.2f} {hnsw_wall:>10.2f} {exact_cpu:>10.2f} "
                f"{hnsw_cpu:>9.2f} {exact_cpu / hnsw_cpu:>21.2f}",
                flush=True,
            )
        print(f"crossover at d = {dim}: {crossover(args.sizes, exact, graph)}")


if __name__ == "__main__":
    main()
