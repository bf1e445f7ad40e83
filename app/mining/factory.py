"""Choosing a miner for a pool size."""

from __future__ import annotations

from typing import Literal

from app.mining.exact import ExactMiner
from app.mining.hnsw import HnswMiner
from app.mining.types import Miner

# Largest pool mined exactly by "auto". Measured with bench/mining_crossover.py (PLACEHOLDER).
EXACT_MAX_POOL: int = 20_000


def make_miner(kind: Literal["auto", "exact", "hnsw"], capacity: int, dim: int) -> Miner:
    """A miner for a pool of `capacity` rows; "auto" is exact up to EXACT_MAX_POOL, hnsw above."""
    if kind == "exact" or (kind == "auto" and capacity <= EXACT_MAX_POOL):
        return ExactMiner(capacity, dim)
    if kind in ("hnsw", "auto"):
        return HnswMiner(capacity, dim)
    raise ValueError(f"unknown miner kind {kind!r}")
