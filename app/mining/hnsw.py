"""Approximate k-NN mining with an incrementally built hnswlib graph: the large-pool path."""

from __future__ import annotations

from itertools import chain, islice

import hnswlib
import numpy as np
from numpy.typing import NDArray

from app.mining.chunks import as_chunk, check_k
from app.mining.duplicates import ByteDuplicates
from app.mining.types import PairBatch

# Pairs per step of the float64 distance recomputation, times the dimension: bounds its memory.
_DISTANCE_BUDGET = 1 << 22


class HnswMiner:
    """Finds each new row's approximate k nearest neighbours among all rows added so far.

    Only the first of a set of byte-identical rows enters the graph: identical vectors form a
    group that links only to itself and traps searches (hnswlib issues #263, #341). Its copies
    are remembered beside the graph, each paired with the first at distance 0, and stand in
    wherever the first is found as a neighbour, so the k-NN are still taken over all rows.
    DESIGN.md measured planted partners in the top 10 for 71% of pairs at ef=20 and 100% at
    ef=200, hence the defaults. Returned distances are recomputed in float64.
    """

    def __init__(
        self,
        capacity: int,
        dim: int,
        M: int = 16,
        ef_construction: int = 200,
        ef: int = 200,
        seed: int = 0,
        num_threads: int | None = None,
    ) -> None:
        if capacity < 0 or dim < 1 or M < 2 or ef_construction < 1 or ef < 1:
            raise ValueError("capacity must be >= 0, dim, ef, ef_construction >= 1, M >= 2")
        self.capacity = capacity
        self.dim = dim
        self.ef = ef
        self._threads = -1 if num_threads is None else num_threads
        self._index = hnswlib.Index(space="l2", dim=dim)
        self._index.init_index(
            max_elements=max(1, capacity), M=M, ef_construction=ef_construction, random_seed=seed
        )
        self._duplicates = ByteDuplicates()
        self._rep = np.empty(capacity, dtype=np.int64)  # the graph node that stands for each row
        self._has_copies = np.zeros(capacity, dtype=bool)
        self._copies: dict[int, list[int]] = {}  # graph node -> its later identical rows
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, vectors: NDArray[np.float32]) -> None:
        self._add(vectors)

    def add_and_query(self, vectors: NDArray[np.float32], k: int) -> PairBatch:
        check_k(k)
        start, chunk, first = self._add(vectors)
        if chunk.shape[0] == 0:
            return PairBatch.empty()
        ids = np.arange(start, self._n, dtype=np.int64)
        n_query = min(k + 1, self._index.get_current_count())
        self._index.set_ef(max(self.ef, n_query))
        labels, _ = self._index.knn_query(chunk, k=n_query, num_threads=self._threads)
        queries, neighbours = self._expand(ids, labels.astype(np.int64), k)
        copies = first != ids
        a = np.concatenate([queries, ids[copies]])
        b = np.concatenate([neighbours, first[copies]])
        return PairBatch.from_unordered(a, b, self._distances(a, b))

    def _add(
        self, vectors: NDArray[np.float32]
    ) -> tuple[int, NDArray[np.float32], NDArray[np.int64]]:
        chunk = as_chunk(vectors, self.dim, self.capacity - self._n)
        start = self._n
        first = self._duplicates.add(chunk, start)
        ids = np.arange(start, start + chunk.shape[0], dtype=np.int64)
        new = first == ids
        if new.any():
            self._index.add_items(chunk[new], ids[new], num_threads=self._threads)
        for row in np.flatnonzero(~new):
            self._copies.setdefault(int(first[row]), []).append(int(ids[row]))
        self._has_copies[first[~new]] = True
        self._rep[ids] = first
        self._n += chunk.shape[0]
        return start, chunk, first

    def _expand(
        self, ids: NDArray[np.int64], labels: NDArray[np.int64], k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Each row's first k neighbours other than itself, graph nodes expanded into their copies.

        hnswlib returns neighbours nearest first, and copies tie with their node, so expanding
        in order and cutting at k gives the k-NN over all rows.
        """
        grouped = self._has_copies[labels].any(axis=1)
        plain = labels[~grouped]
        other = plain != ids[~grouped, None]
        keep = other & (np.cumsum(other, axis=1) <= k)
        queries = [np.broadcast_to(ids[~grouped, None], plain.shape)[keep]]
        neighbours = [plain[keep]]
        for row in np.flatnonzero(grouped):
            members = chain.from_iterable(
                chain((node,), self._copies.get(node, ())) for node in labels[row].tolist()
            )
            # islice stops early: a collapsed generator can leave thousands of copies of a row.
            found = list(islice((m for m in members if m != ids[row]), k))
            queries.append(np.full(len(found), ids[row], dtype=np.int64))
            neighbours.append(np.asarray(found, dtype=np.int64))
        return np.concatenate(queries), np.concatenate(neighbours)

    def _distances(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float64]:
        """Exact float64 distances, from the graph's stored float32 copy of each row's node."""
        out = np.empty(a.shape[0], dtype=np.float64)
        if a.shape[0] == 0:
            return out
        step = max(1, _DISTANCE_BUDGET // self.dim)
        for s in range(0, a.shape[0], step):
            nodes, inverse = np.unique(
                self._rep[np.concatenate([a[s : s + step], b[s : s + step]])], return_inverse=True
            )
            stored = np.asarray(self._index.get_items(nodes), dtype=np.float64)
            half = inverse.shape[0] // 2
            diff = stored[inverse[:half]] - stored[inverse[half:]]
            out[s : s + step] = np.sqrt(np.square(diff).sum(axis=1))
        return out
