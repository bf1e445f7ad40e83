"""Byte-identical rows, found by hashing before any nearest-neighbour search.

ANN graphs degrade on exact duplicates (hnswlib issues #263, #341: a group of identical vectors
links only to itself), so identity is settled here, exactly and independently of the index.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import NDArray


class ByteDuplicates:
    """Maps each row to the first row added with the same float32 bytes.

    Keys are 128-bit BLAKE2b digests rather than the rows (2 KB each at d=512), so memory is
    O(rows); a digest collision (odds ~n^2 / 2^129) would pair two distinct rows, and the
    miners' exact distance recomputation would then show it at its true distance.
    """

    def __init__(self) -> None:
        self._first: dict[bytes, int] = {}

    def add(self, chunk: NDArray[np.float32], start: int) -> NDArray[np.int64]:
        """Register rows start .. start+b-1; return each row's first identical row (itself if new)."""
        # Adding +0.0 turns -0.0 into +0.0: equal values, different bytes.
        rows = np.ascontiguousarray(chunk + np.float32(0.0), dtype=np.float32)
        first = np.empty(rows.shape[0], dtype=np.int64)
        for r in range(rows.shape[0]):
            key = hashlib.blake2b(rows[r].tobytes(), digest_size=16).digest()
            first[r] = self._first.setdefault(key, start + r)
        return first
