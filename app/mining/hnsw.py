"""Approximate k-NN mining with an incrementally built hnswlib graph: the large-pool path."""

from __future__ import annotations

from itertools import chain, islice

import hnswlib
import numpy as np
from numpy.typing import NDArray

from app.mining.chunks import as_chunk, check_k
from app.mining.duplicates import ByteDuplicates, are_copies, first_near_copies
from app.mining.types import PairBatch

# Pairs per step of the float64 distance recomputation, times the dimension: bounds its memory.
_DISTANCE_BUDGET = 1 << 22
# Rows compared with each other for copies before the graph sees them: the check is O(b^2 d),
# ~10 ms per block of 512 at d=512 on 2 cores, against 70 ms and more to insert them.
_COPY_BLOCK = 512
# Links per node on upper layers (2M on the bottom one): hnswlib's default.
DEFAULT_M = 16


def hnsw_bytes_per_row(dim: int, M: int = DEFAULT_M) -> int:
    """Memory an HnswMiner holds per row: float32 values, bottom-layer links, bookkeeping.

    The 320 bytes cover hnswlib's label, lock and level records and this miner's digest dict
    and arrays: the marginal RSS of adding rows measured 4*dim + 8*M + 318 at dim=32 (200k
    rows) and 4*dim + 8*M + 231 at dim=256 (30k rows).
    """
    return 4 * dim + 8 * M + 320


class HnswMiner:
    """Finds each new row's approximate k nearest neighbours among all rows added so far.

    Only the first of a set of rows that are the same embedding (byte-identical, or equal up to
    float rounding: duplicates.py) enters the graph: identical vectors form a group that links
    only to itself and traps searches (hnswlib issues #263, #341), and large groups of rows
    ~1e-7 apart get pruned into separate components (3 groups of 800 in 3,000 rows lost up to
    186k of their 959k pairs to the closure). Its copies are remembered beside the graph, each
    paired with it (and a byte copy with the first row of its bytes), and stand in wherever it is
    found as a neighbour, so the k-NN are still taken over all rows. A copy keeps its own values,
    so every distance returned is the true one, recomputed in float64. DESIGN.md measured
    planted partners in the top 10 for 71% of pairs at ef=20 and 100% at ef=200, hence the
    defaults.
    """

    def __init__(
        self,
        capacity: int,
        dim: int,
        M: int = DEFAULT_M,
        ef_construction: int = 200,
        ef: int = 200,
        seed: int = 0,
        num_threads: int | None = None,
        insert_threads: int = 1,
    ) -> None:
        if capacity < 0 or dim < 1 or M < 2 or ef_construction < 1 or ef < 1:
            raise ValueError("capacity must be >= 0, dim, ef, ef_construction >= 1, M >= 2")
        self.capacity = capacity
        self.dim = dim
        self.ef = ef
        self._threads = -1 if num_threads is None else num_threads
        # hnswlib links rows in the order its threads reach them: two runs inserting on several
        # threads differed in 41 of 97,750 far pairs. One thread makes an audit repeat, at no
        # measurable cost on 2 cores; searches do not change the graph and stay on all cores.
        self._insert_threads = insert_threads
        self._index = hnswlib.Index(space="l2", dim=dim)
        self._index.init_index(
            max_elements=max(1, capacity), M=M, ef_construction=ef_construction, random_seed=seed
        )
        self._duplicates = ByteDuplicates()
        self._rep = np.empty(capacity, dtype=np.int64)  # the graph node that stands for each row
        self._has_copies = np.zeros(capacity, dtype=bool)
        self._copies: dict[int, list[int]] = {}  # graph node -> the later rows it stands for
        # Rows out of the graph whose values differ from their node's: their own values.
        self._own: dict[int, NDArray[np.float32]] = {}
        self._has_own = np.zeros(capacity, dtype=bool)
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
        rep = self._rep[ids]
        copies, byte_copies = rep != ids, first != ids
        a = np.concatenate([queries, ids[copies], ids[byte_copies]])
        b = np.concatenate([neighbours, rep[copies], first[byte_copies]])
        return PairBatch.from_unordered(a, b, self._distances(a, b))

    def _add(
        self, vectors: NDArray[np.float32]
    ) -> tuple[int, NDArray[np.float32], NDArray[np.int64]]:
        """Add a chunk; return its first id, the chunk as float32, and each row's byte-first row."""
        chunk = as_chunk(vectors, self.dim, self.capacity - self._n)
        start = self._n
        first = self._duplicates.add(chunk, start)
        for s in range(0, chunk.shape[0], _COPY_BLOCK):
            block = slice(s, s + _COPY_BLOCK)
            self._add_block(chunk[block], start + s, first[block])
        self._n += chunk.shape[0]
        return start, chunk, first

    def _add_block(self, rows: NDArray[np.float32], start: int, first: NDArray[np.int64]) -> None:
        """Give each row its graph node, adding those that copy no earlier row to the graph."""
        ids = np.arange(start, start + rows.shape[0], dtype=np.int64)
        rep = ids.copy()
        fresh = np.flatnonzero(first == ids)
        node = self._nearest_copied_node(rows[fresh])
        matched = node >= 0
        rep[fresh[matched]] = node[matched]
        rest = fresh[~matched]
        rep[rest] = ids[rest[first_near_copies(rows[rest])]]
        new = rest[rep[rest] == ids[rest]]
        if new.size:
            self._index.add_items(rows[new], ids[new], num_threads=self._insert_threads)
        self._rep[ids[fresh]] = rep[fresh]
        # A byte copy stands where its first row does; that row is earlier, so already placed.
        byte_copies = np.flatnonzero(first != ids)
        rep[byte_copies] = self._rep[first[byte_copies]]
        self._rep[ids[byte_copies]] = rep[byte_copies]
        for r in np.flatnonzero(rep != ids).tolist():
            row, origin = int(ids[r]), int(first[r])
            if origin == row:
                self._own[row] = rows[r].copy()
            elif self._has_own[origin]:
                self._own[row] = self._own[origin]  # the same array: byte copies share it
            self._has_own[row] = row in self._own
            self._copies.setdefault(int(rep[r]), []).append(row)
        self._has_copies[rep[rep != ids]] = True

    def _nearest_copied_node(self, rows: NDArray[np.float32]) -> NDArray[np.int64]:
        """Each row's graph node within copy tolerance of it, or -1.

        The graph holds no two copies, so a copied node is a row's nearest by a margin; a search
        at the miner's ef finds it as it finds planted pairs, and exact distances decide. It is
        one more search per new row: +20-70% CPU on structureless 512-d rows, where each is new.
        At ef=64, 1 of 5,000 copies on embedding-like 512-d rows was missed (0 at 200); a miss
        puts one more copy into the graph, which links it to its twin as it inserts it.
        """
        missing = np.full(rows.shape[0], -1, dtype=np.int64)
        if rows.shape[0] == 0 or self._index.get_current_count() == 0:
            return missing
        self._index.set_ef(self.ef)
        labels, _ = self._index.knn_query(rows, k=1, num_threads=self._threads)
        nodes = labels[:, 0].astype(np.int64)
        stored = np.asarray(self._index.get_items(nodes), dtype=np.float32)
        return np.where(are_copies(rows, stored), nodes, missing)

    def _expand(
        self, ids: NDArray[np.int64], labels: NDArray[np.int64], k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Each row's first k neighbours other than itself, graph nodes expanded into their copies.

        hnswlib returns neighbours nearest first, and copies tie with their node (up to rounding),
        so expanding in order and cutting at k gives the k-NN over all rows.
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
        """Exact float64 distances between the rows' own float32 values."""
        out = np.empty(a.shape[0], dtype=np.float64)
        step = max(1, _DISTANCE_BUDGET // self.dim)
        for s in range(0, a.shape[0], step):
            values = self._values(np.concatenate([a[s : s + step], b[s : s + step]]))
            half = values.shape[0] // 2
            out[s : s + step] = np.sqrt(np.square(values[:half] - values[half:]).sum(axis=1))
        return out

    def _values(self, rows: NDArray[np.int64]) -> NDArray[np.float64]:
        """The rows' values: the graph's stored copy of their node, or their own if they differ."""
        nodes, inverse = np.unique(self._rep[rows], return_inverse=True)
        values = np.asarray(self._index.get_items(nodes), dtype=np.float64)[inverse]
        for position in np.flatnonzero(self._has_own[rows]).tolist():
            values[position] = self._own[int(rows[position])]
        return values
