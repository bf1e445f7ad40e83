"""Choosing a miner for a pool size."""

from __future__ import annotations

from typing import Literal

from app.mining.exact import ExactMiner, exact_bytes_per_row
from app.mining.hnsw import HnswMiner, hnsw_bytes_per_row
from app.mining.types import Miner

# Largest pool mined exactly by "auto". Measured with bench/mining_crossover.py (whole pools in
# chunks of 2,000, k=10, embedding-like data) on the 2-core CPU box, exact on CPU, crossover by
# CPU seconds. One thread each: exact 1.5 s vs hnsw 2.8 s at n=20k and 12.4 vs 12.8 at 50k for
# d=64; 6.1 vs 11.1 at 20k and 25 vs 36 at 50k for d=512 (crossovers ~50k and ~70k). Two
# threads on the shared, loaded box: hnsw wins from 20k at d=64 (5.1 vs 3.0 s), and the two tie
# up to 50k at d=512. We take the lower end: past the crossover exact grows as n^2, below it
# hnsw costs at most a few seconds more, and exact mining has recall 1 by construction.
# Not measured on a GPU, where exact mining is far cheaper and this bound could be much higher.
EXACT_MAX_POOL: int = 20_000
# k of the k-NN search when a caller does not say (Settings.neighbours' default).
DEFAULT_NEIGHBOURS = 5


MinerKind = Literal["auto", "exact", "hnsw"]


def make_miner(kind: MinerKind, capacity: int, dim: int) -> Miner:
    """A miner for a pool of `capacity` rows; "auto" is exact up to EXACT_MAX_POOL, hnsw above."""
    if _resolve(kind, capacity) == "exact":
        return ExactMiner(capacity, dim)
    return HnswMiner(capacity, dim)


def miner_bytes(
    kind: MinerKind, capacity: int, dim: int, neighbours: int = DEFAULT_NEIGHBOURS
) -> int:
    """The memory the miner `make_miner` builds holds once full, mining `neighbours` per row:
    what a pool must fit in."""
    if _resolve(kind, capacity) == "exact":
        return capacity * exact_bytes_per_row(dim, neighbours)
    return capacity * hnsw_bytes_per_row(dim, neighbours)


def _resolve(kind: MinerKind, capacity: int) -> Literal["exact", "hnsw"]:
    if kind == "exact" or (kind == "auto" and capacity <= EXACT_MAX_POOL):
        return "exact"
    if kind in ("hnsw", "auto"):
        return "hnsw"
    raise ValueError(f"unknown miner kind {kind!r}")
