"""The miner contract: what a chunk of embeddings turns into, and the interface both miners keep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class PairBatch:
    """Candidate pairs (i < j), sorted by exact distance ascending, then by (i, j).

    `distance` is the Euclidean distance recomputed in float64 on the original float32 vectors,
    so near-duplicates keep their true, non-zero distances.
    """

    i: NDArray[np.int64]
    j: NDArray[np.int64]
    distance: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.i.shape[0])

    @staticmethod
    def empty() -> PairBatch:
        return PairBatch(
            np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        )

    @staticmethod
    def from_unordered(
        a: NDArray[np.int64], b: NDArray[np.int64], distance: NDArray[np.float64]
    ) -> PairBatch:
        """Orient each pair as (min, max), drop repeats and self-pairs, and sort by distance.

        A pair found from both ends carries the same exact distance, so keeping either copy is right.
        """
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        distance = np.asarray(distance, dtype=np.float64)
        keep = a != b
        i = np.minimum(a, b)[keep]
        j = np.maximum(a, b)[keep]
        d = distance[keep]
        if i.size == 0:
            return PairBatch.empty()
        order = np.lexsort((j, i))
        i, j, d = i[order], j[order], d[order]
        first = np.ones(i.size, dtype=bool)
        first[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
        i, j, d = i[first], j[first], d[first]
        order = np.lexsort((j, i, d))
        return PairBatch(i[order], j[order], d[order])


class Miner(Protocol):
    """An index that grows chunk by chunk and reports the pairs each new row makes."""

    def add_and_query(self, vectors: NDArray[np.float32], k: int) -> PairBatch:
        """Add the rows (ids len(self) .. len(self)+b-1) and return the pairs they close.

        A new row j pairs with its k nearest among the rows before it (ties to the earlier row),
        and each earlier row i with j when j, on arrival, is closer to i than i's k-th nearest
        so far (reverse.py): the union of every prefix's k-NN graph, so how the pool is cut into
        chunks changes nothing, and the whole pool's k-NN graph is in it. A row byte-identical
        to an earlier one is also paired with the first such row, and a miner may also pair a
        row with an earlier one equal to it up to rounding (duplicates.py's tolerance). Every
        pair returned has a new row at its later end, so no pair repeats across calls.
        """
        ...

    def add(self, vectors: NDArray[np.float32]) -> None:
        """Add the rows without querying (rebuilding an index on resume)."""
        ...

    def __len__(self) -> int: ...
