"""Candidate pairs against chunking and threads: what the reverse half and one-thread inserts cost.

On one embedding-like pool (bench/mining_crossover.py's), k=10: the exact miner in chunks and
in one piece (the same pairs? the whole pool's k-NN graph in them?), the hnsw miner likewise
(its recall of the exact miner's pairs and of the k-NN graph), then the hnsw miner inserting on
one thread twice (the same pairs?) and on every core twice (how many pairs differ, how much
faster). Seconds are CPU seconds of this process, and wall seconds beside them.

    python bench/mining_order.py [--n 20000] [--dims 64 512] [--chunk 2000] [--k 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.mining.exact import ExactMiner  # noqa: E402
from app.mining.hnsw import HnswMiner  # noqa: E402
from app.mining.types import Miner  # noqa: E402
from bench.mining_crossover import pool  # noqa: E402

Pairs = set[tuple[int, int]]


def mine(
    make: Callable[[int, int], Miner], x: NDArray[np.float32], chunk: int, k: int
) -> tuple[Pairs, float, float]:
    """(pairs, CPU seconds, wall seconds) of mining the pool in chunks."""
    miner = make(x.shape[0], x.shape[1])
    pairs: Pairs = set()
    wall, cpu = time.perf_counter(), time.process_time()
    for s in range(0, len(x), chunk):
        batch = miner.add_and_query(x[s : s + chunk], k)
        pairs |= set(zip(batch.i.tolist(), batch.j.tolist(), strict=True))
    return pairs, time.process_time() - cpu, time.perf_counter() - wall


def whole_pool_knn(x: NDArray[np.float32], k: int, block: int = 2048) -> Pairs:
    """Pairs (i < j) where one is among the other's k nearest in the whole pool (float64)."""
    t = torch.from_numpy(x).double()
    t = t - t.mean(dim=0)
    sq = t.square().sum(dim=1)
    pairs: Pairs = set()
    for r0 in range(0, len(x), block):
        d2 = sq[r0 : r0 + block, None] + sq[None, :] - 2.0 * (t[r0 : r0 + block] @ t.T)
        rows = torch.arange(r0, min(r0 + block, len(x)))
        d2[rows - r0, rows] = torch.inf
        near = torch.topk(d2, k, dim=1, largest=False).indices
        for r, cols in zip(rows.tolist(), near.tolist(), strict=True):
            pairs |= {(min(r, c), max(r, c)) for c in cols}
    return pairs


def line(name: str, pairs: Pairs, cpu: float, wall: float, note: str = "") -> None:
    print(f"  {name:<28} {len(pairs):>8,} pairs  cpu {cpu:6.2f} s  wall {wall:6.2f} s  {note}")


def share(found: Pairs, of: Pairs) -> float:
    return len(found & of) / max(1, len(of))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[64])
    parser.add_argument("--chunk", type=int, default=2_000)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    n, k, chunk, cores = args.n, args.k, args.chunk, os.cpu_count() or 1
    print(
        f"n={n:,}, chunks of {chunk:,} or one, k={k}; torch {torch.get_num_threads()} threads, "
        f"hnsw searches on all {cores} cores"
    )
    for dim in args.dims:
        x = pool(n, dim)
        print(f"\nd = {dim}")
        knn = whole_pool_knn(x, k)
        exact, cpu, wall = mine(ExactMiner, x, chunk, k)
        line("exact, chunks", exact, cpu, wall, f"k-NN graph kept {share(exact, knn):.4f}")
        whole, cpu, wall = mine(ExactMiner, x, n, k)
        line("exact, one chunk", whole, cpu, wall, f"same pairs: {whole == exact}")
        runs = []
        for name, size in (("hnsw, chunks", chunk), ("hnsw, one chunk", n)):
            found, cpu, wall = mine(HnswMiner, x, size, k)
            runs.append(found)
            line(
                name,
                found,
                cpu,
                wall,
                f"recall of exact {share(found, exact):.4f}, k-NN graph {share(found, knn):.4f}",
            )
        again, cpu, wall = mine(HnswMiner, x, chunk, k)
        line("hnsw, chunks, again", again, cpu, wall, f"same pairs: {again == runs[0]}")
        for attempt in ("", ", again"):
            threaded, cpu, wall = mine(partial(HnswMiner, insert_threads=cores), x, chunk, k)
            line(
                f"hnsw, {cores} insert threads{attempt}",
                threaded,
                cpu,
                wall,
                f"pairs differing from one thread's: {len(threaded ^ runs[0]):,}",
            )


if __name__ == "__main__":
    main()
