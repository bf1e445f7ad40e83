"""The reverse half of the candidate rule: a later row entering an earlier row's k nearest.

A miner pairs each row j with its k nearest among the rows before it, and each earlier row i
with j when j, on arrival, is closer to i than i's k-th nearest so far. That is the union of the
k-NN graphs of every prefix of the pool: a function of the rows and their order alone, so cutting
the pool into other chunks gives the same pairs. Without the reverse half a row whose duplicates
all come later, each with more than k closer copies of one another, was never paired (7 of 6,774
pairs lost in one synthetic pool), and whether it was depended on where the chunks were cut. The
union holds every pair of the whole pool's k-NN graph (its rows nearest to i among all rows are
nearest among any prefix holding them), so extending a pool loses nothing either.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


class NearestSoFar:
    """Each row's k smallest distances to the rows added so far, other than itself.

    Rows 0 .. known-1 are up to date; a miner sets a row when it arrives (its k nearest among
    the rows before it) and lets later rows `enter`. Kept in float32, 4k bytes a row (40 MB for
    10^6 rows at k=10): rows whose distances round to the same float32 tie, and a tie goes to
    the earlier row.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.k = 0
        self.known = 0
        self._top = np.empty((capacity, 0), dtype=np.float32)

    @staticmethod
    def bytes_per_row(k: int) -> int:
        return 4 * k

    def reset(self, k: int) -> None:
        """Forget every row's distances unless they are already kept for this k."""
        if k != self.k:
            self.k = k
            self.known = 0
            self._top = np.full((self.capacity, k), np.inf, dtype=np.float32)

    def set(self, rows: NDArray[np.int64], nearest: NDArray[np.float64]) -> None:
        """Rows' distances to their nearest rows, one row of `nearest` each, inf for none."""
        top = np.full((rows.size, self.k), np.inf, dtype=np.float32)
        width = min(self.k, nearest.shape[1])
        top[:, :width] = np.sort(nearest, axis=1)[:, :width]
        self._top[rows] = top

    def kth(self, rows: NDArray[np.int64] | slice) -> NDArray[np.float32]:
        """The rows' k-th smallest distance so far (inf while they have fewer than k)."""
        return self._top[rows, self.k - 1]

    def enter(
        self, i: NDArray[np.int64], j: NDArray[np.int64], distance: NDArray[np.float64]
    ) -> NDArray[np.bool_]:
        """Which later rows j enter earlier rows i's k nearest on arrival; update the distances.

        Pairs (i, j), i < j, must be distinct and include every new row j closer to i than i's
        k-th distance so far (more may come: they are checked here). Rows j are taken in order,
        so each meets i's k nearest among the rows before it; j must be strictly closer than
        the k-th, the tie rule of the forward half (an earlier row wins a tie).
        """
        entered = np.zeros(i.size, dtype=bool)
        distance = distance.astype(np.float32)
        near = np.flatnonzero(distance < self.kth(i))
        if near.size == 0:
            return entered
        near = near[np.lexsort((j[near], i[near]))]
        rows = i[near]
        # Each pair's place among its row's pairs: the t-th pairs of all rows update together.
        head = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        place = np.arange(rows.size) - np.repeat(head, np.diff(np.r_[head, rows.size]))
        by_place = near[np.argsort(place, kind="stable")]
        bounds = np.searchsorted(np.sort(place), np.arange(int(place.max()) + 2))
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            step = by_place[lo:hi]
            row, d = i[step], distance[step]
            top = self._top[row]
            entered[step] = d < top[:, -1]
            merged = np.concatenate([top, d[:, None]], axis=1)
            merged.sort(axis=1)
            self._top[row] = merged[:, : self.k]
        return entered
