"""Candidate-pair mining: each sample's nearest neighbours among those before it, and the later
samples that enter an earlier one's nearest (reverse.py), as pairs (i < j) ranked by distance.

`make_miner` picks the exact blocked-matmul miner for small pools and the hnswlib one above
`EXACT_MAX_POOL`; `exact_closest_pairs` is the reference that miner recall is measured against.
"""

from app.mining.closest import exact_closest_pairs
from app.mining.exact import ExactMiner
from app.mining.factory import EXACT_MAX_POOL, make_miner
from app.mining.hnsw import HnswMiner
from app.mining.types import Miner, PairBatch

__all__ = [
    "EXACT_MAX_POOL",
    "ExactMiner",
    "HnswMiner",
    "Miner",
    "PairBatch",
    "exact_closest_pairs",
    "make_miner",
]
