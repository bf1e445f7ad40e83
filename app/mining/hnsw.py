"""Approximate k-NN mining with an incrementally built hnswlib graph: the large-pool path."""

from __future__ import annotations

from itertools import chain, islice

import hnswlib
import numpy as np
from numpy.typing import NDArray

from app.mining.chunks import as_chunk, check_k
from app.mining.duplicates import (
    ByteDuplicates,
    are_copies,
    centred_shortcut,
    first_near_copies,
)
from app.mining.reverse import NearestSoFar
from app.mining.types import PairBatch

# Pairs per step of the float64 distance recomputation, times the dimension: bounds its memory.
_DISTANCE_BUDGET = 1 << 22
# Rows searched in the graph before any of them enters it, then compared with each other
# exactly (copies, nearest earlier rows, reverse): O(b^2 d), ~10 ms per block of 512 at d=512 on
# 2 cores, against 70 ms and more to insert them.
_BLOCK = 512
# Links per node on upper layers (2M on the bottom one): hnswlib's default.
DEFAULT_M = 16


def hnsw_bytes_per_row(dim: int, k: int, M: int = DEFAULT_M) -> int:
    """Memory an HnswMiner holds per row: float32 values, bottom-layer links, bookkeeping, and
    its k nearest distances so far (reverse.py).

    The 320 bytes cover hnswlib's label, lock and level records and this miner's digest dict
    and arrays: the marginal RSS of adding rows measured 4*dim + 8*M + 318 at dim=32 (200k
    rows) and 4*dim + 8*M + 231 at dim=256 (30k rows).
    """
    return 4 * dim + 8 * M + 320 + NearestSoFar.bytes_per_row(k)


class HnswMiner:
    """Pairs each new row with its approximate k nearest among the rows before it, and each
    earlier row with the new rows that enter its k nearest (reverse.py).

    A block of new rows is searched in the graph of the rows before it, then compared with each
    other exactly, then inserted: each row's k nearest earlier rows are the best of both.
    Searching before inserting keeps a row's near copies in its own block from crowding earlier
    rows out of its results. The reverse half checks, for each new row, every earlier row its
    search returned (ef of them, which the search keeps anyway) against that row's k-th distance
    so far: an earlier row far down the new row's list (a row in a sparse region, whose k-th
    neighbour is far) can be missed, where the exact miner finds it. On 20,000 embedding-like
    rows at d=64, k=10, 99.96% of the exact miner's pairs were found, in chunks or not.

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

    Rows enter the graph on `insert_threads` threads: with one (the default) the graph, and so
    every pair, is a function of the rows alone; with more, hnswlib links rows in the order its
    threads reach them, and two runs differed in 41 of 97,750 pairs. Searches do not change the
    graph and run on `num_threads` (None: all cores) with the same results.
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
        if insert_threads < 1:
            raise ValueError("insert_threads must be at least 1")
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
        self._nearest = NearestSoFar(capacity)
        self._rep = np.empty(capacity, dtype=np.int64)  # the graph node that stands for each row
        self._has_copies = np.zeros(capacity, dtype=bool)
        self._copies: dict[int, list[int]] = {}  # graph node -> the later rows it stands for
        # Rows out of the graph whose values differ from their node's: their own values.
        self._own: dict[int, NDArray[np.float32]] = {}
        self._has_own = np.zeros(capacity, dtype=bool)
        # hnswlib's float32 L2 sums d squares: its relative error stays below (d + 8) epsilons.
        self._slack = 2 * (dim + 8) * float(np.finfo(np.float32).eps)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, vectors: NDArray[np.float32]) -> None:
        chunk = as_chunk(vectors, self.dim, self.capacity - self._n)
        start = self._n
        first = self._duplicates.add(chunk, start)
        for s in range(0, chunk.shape[0], _BLOCK):
            rows = chunk[s : s + _BLOCK]
            labels, _ = self._search(rows, 1)
            self._place(rows, start + s, first[s : s + _BLOCK], labels)

    def add_and_query(self, vectors: NDArray[np.float32], k: int) -> PairBatch:
        check_k(k)
        self._nearest.reset(k)
        chunk = as_chunk(vectors, self.dim, self.capacity - self._n)
        start = self._n
        if self._nearest.known < start:
            self._catch_up(k)
        first = self._duplicates.add(chunk, start)
        found = [
            self._mine(chunk[s : s + _BLOCK], start + s, first[s : s + _BLOCK], k)
            for s in range(0, chunk.shape[0], _BLOCK)
        ]
        self._nearest.known = self._n
        if not found:
            return PairBatch.empty()
        return PairBatch.from_unordered(
            np.concatenate([f[0] for f in found]),
            np.concatenate([f[1] for f in found]),
            np.concatenate([f[2] for f in found]),
        )

    def _search(
        self, rows: NDArray[np.float32], want: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Each row's `want` nearest graph nodes (fewer if the graph is smaller), nearest first,
        and their squared distances as hnswlib computes them."""
        want = min(want, self.ef, self._index.get_current_count())
        if want == 0 or rows.shape[0] == 0:
            return np.empty((rows.shape[0], 0), np.int64), np.empty((rows.shape[0], 0), np.float32)
        # ef bounds the search; asking up to ef neighbours leaves it unchanged, so the nearest
        # node is the same whatever `want` is.
        self._index.set_ef(self.ef)
        labels, d2 = self._index.knn_query(rows, k=want, num_threads=self._threads)
        return labels.astype(np.int64), d2

    def _mine(
        self, rows: NDArray[np.float32], start: int, first: NDArray[np.int64], k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
        """(row, other row, exact distance) of a block's pairs with the rows before them."""
        ids = np.arange(start, start + rows.shape[0], dtype=np.int64)
        labels, d2 = self._search(rows, self.ef)
        query, member, rank, node_d2 = self._members(labels, d2)
        query = ids[query]
        approx, slack = centred_shortcut(rows)
        self._place(rows, start, first, labels, (approx, slack))

        # Forward: each row's k nearest among the earlier rows its search found and the rows
        # before it in the block, ranked by the search's and the block's squared distances
        # (ties to the lower id), then measured exactly.
        found = rank < 2 * k
        inner_later, inner_earlier = self._inner(approx, start, 2 * k)
        a = np.concatenate([query[found], inner_later])
        b = np.concatenate([member[found], inner_earlier])
        rough = np.concatenate([node_d2[found], approx[inner_later - start, inner_earlier - start]])
        order = np.lexsort((b, rough, a))
        a, b = a[order], b[order]
        head = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
        place = np.arange(a.size) - np.repeat(head, np.diff(np.r_[head, a.size]))
        keep = place < k
        a, b, place = a[keep], b[keep], place[keep]

        # Reverse, earlier blocks: rows the new rows may enter, screened by the search's
        # distances (copies, placed beside their node, are always checked).
        kth = self._nearest.kth(member).astype(np.float64)
        bound = np.where(kth > 0, np.square(kth) * (1 + self._slack), -np.inf)
        check = (self._rep[member] != member) | (node_d2 <= bound)
        old_j, old_i = query[check], member[check]
        rep = self._rep[ids]
        copies, byte_copies = rep != ids, first != ids
        c_a = np.concatenate([ids[copies], ids[byte_copies]])
        c_b = np.concatenate([rep[copies], first[byte_copies]])
        # One exact pass over all pairs with rows of earlier blocks: each is fetched once.
        distance = self._distances(
            np.concatenate([a, old_j, c_a]), np.concatenate([b, old_i, c_b]), rows, start
        )
        forward_d, old_d, copy_d = np.split(distance, [a.size, a.size + old_j.size])
        nearest = np.full((ids.size, k), np.inf)
        nearest[a - start, place] = forward_d
        self._nearest.set(ids, nearest)

        # Reverse, within the block: the earlier row's k-th distance is its forward one now.
        kth_inner = self._nearest.kth(ids).astype(np.float64)
        bound_inner = np.where(kth_inner > 0, np.square(kth_inner) * (1 + 1e-12), -np.inf)
        later_r, earlier_c = np.nonzero(np.tril(approx - slack <= bound_inner[None, :], k=-1))
        inner_d = self._distances(ids[later_r], ids[earlier_c], rows, start)
        i = np.concatenate([old_i, ids[earlier_c]])
        j = np.concatenate([old_j, ids[later_r]])
        reach = np.concatenate([old_d, inner_d])
        entered = self._nearest.enter(i, j, reach)
        return (
            np.concatenate([a, j[entered], c_a]),
            np.concatenate([b, i[entered], c_b]),
            np.concatenate([forward_d, reach[entered], copy_d]),
        )

    @staticmethod
    def _inner(
        approx: NDArray[np.float64], start: int, m: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Within a block of rows from `start`, by their shortcut squared distances (b, b):
        each row's m nearest rows before it in the block, as (later id, earlier id)."""
        count = approx.shape[0]
        m = min(m, count - 1)
        if m <= 0:
            none = np.empty(0, dtype=np.int64)
            return none, none
        ranked = np.where(np.tri(count, k=-1, dtype=bool), approx, np.inf)
        near = np.argpartition(ranked, m - 1, axis=1)[:, :m]
        later = np.broadcast_to(np.arange(count)[:, None], near.shape)
        valid = near < later
        return later[valid] + start, near[valid] + start

    def _members(
        self, labels: NDArray[np.int64], d2: NDArray[np.float32]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """The rows that found graph nodes stand for, nearest first: (query position, row,
        rank, the node's squared distance). Each node comes with at most as many of its copies
        in all as there are nodes per query.

        hnswlib returns neighbours nearest first, and copies tie with their node (up to
        rounding), so expanding in order keeps the nearest.
        """
        count, width = labels.shape
        grouped = self._has_copies[labels].any(axis=1) if width else np.zeros(count, bool)
        plain = np.flatnonzero(~grouped)
        query = [np.repeat(plain, width)]
        member = [labels[plain].reshape(-1)]
        rank = [np.tile(np.arange(width), plain.size)]
        node_d2 = [d2[plain].reshape(-1)]
        for row in np.flatnonzero(grouped).tolist():
            budget = width  # a collapsed generator can leave thousands of copies of a row
            found: list[tuple[int, float]] = []
            for node, d in zip(labels[row].tolist(), d2[row].tolist(), strict=True):
                copies = list(islice(self._copies.get(node, ()), budget))
                budget -= len(copies)
                found.extend((m, d) for m in chain((node,), copies))
            query.append(np.full(len(found), row, dtype=np.int64))
            member.append(np.asarray([f[0] for f in found], dtype=np.int64))
            rank.append(np.arange(len(found)))
            node_d2.append(np.asarray([f[1] for f in found], dtype=np.float32))
        return (
            np.concatenate(query),
            np.concatenate(member),
            np.concatenate(rank),
            np.concatenate(node_d2),
        )

    def _catch_up(self, k: int) -> None:
        """Each row's k nearest among all rows so far, for rows added without a query (a
        resumed index) or queried with another k: every earlier row's distances may change."""
        end = self._n
        for s in range(0, end, 4 * _BLOCK):
            ids = np.arange(s, min(s + 4 * _BLOCK, end), dtype=np.int64)
            labels, d2 = self._search(self._values(ids), self.ef)
            query, member, rank, _ = self._members(labels, d2)
            other = (member != ids[query]) & (rank <= 2 * k)
            a, b = ids[query[other]], member[other]
            distance = self._distances(a, b)
            order = np.lexsort((distance, a))
            a, distance = a[order], distance[order]
            head = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
            place = np.arange(a.size) - np.repeat(head, np.diff(np.r_[head, a.size]))
            nearest = np.full((ids.size, k), np.inf)
            keep = place < k
            nearest[a[keep] - s, place[keep]] = distance[keep]
            self._nearest.set(ids, nearest)
        self._nearest.known = end

    def _place(
        self,
        rows: NDArray[np.float32],
        start: int,
        first: NDArray[np.int64],
        labels: NDArray[np.int64],
        shortcut: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
    ) -> None:
        """Give each row its graph node, adding those that copy no earlier row to the graph.

        `labels` are the rows' search results in the graph before them, nearest first. The
        graph holds no two copies, so a copied node is a row's nearest by a margin; a search at
        the miner's ef finds it as it finds planted pairs, and exact distances decide. At ef=64,
        1 of 5,000 copies on embedding-like 512-d rows was missed (0 at 200); a miss puts one
        more copy into the graph, which links it to its twin as it inserts it. `shortcut` is
        the rows' centred_shortcut, where the caller has it.
        """
        ids = np.arange(start, start + rows.shape[0], dtype=np.int64)
        rep = ids.copy()
        fresh = np.flatnonzero(first == ids)
        node = np.full(fresh.size, -1, dtype=np.int64)
        if labels.shape[1] and fresh.size:
            nearest = labels[fresh, 0]
            stored = np.asarray(self._index.get_items(nearest), dtype=np.float32)
            node = np.where(are_copies(rows[fresh], stored), nearest, node)
        matched = node >= 0
        rep[fresh[matched]] = node[matched]
        rest = fresh[~matched]
        if shortcut is not None:
            shortcut = (shortcut[0][np.ix_(rest, rest)], shortcut[1][np.ix_(rest, rest)])
        rep[rest] = ids[rest[first_near_copies(rows[rest], shortcut)]]
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
        self._n = start + rows.shape[0]

    def _distances(
        self,
        a: NDArray[np.int64],
        b: NDArray[np.int64],
        block: NDArray[np.float32] | None = None,
        start: int = 0,
    ) -> NDArray[np.float64]:
        """Exact float64 distances between the rows' own float32 values (rows start.. are
        `block`'s, when given: read from it, not from the graph).

        Pairs go in order of their `b` row, so a row many pairs share is fetched once.
        """
        out = np.empty(a.shape[0], dtype=np.float64)
        step = max(1, _DISTANCE_BUDGET // self.dim)
        order = np.argsort(b, kind="stable")
        for s in range(0, a.shape[0], step):
            pick = order[s : s + step]
            keys, inverse = np.unique(np.concatenate([a[pick], b[pick]]), return_inverse=True)
            values = self._values(keys, block, start)[inverse].astype(np.float64)
            half = pick.size
            out[pick] = np.sqrt(np.square(values[:half] - values[half:]).sum(axis=1))
        return out

    def _values(
        self, rows: NDArray[np.int64], block: NDArray[np.float32] | None = None, start: int = 0
    ) -> NDArray[np.float32]:
        """The rows' values: the graph's stored copy of their node, or their own if they differ.

        hnswlib's get_items builds a Python float per value (~3 us a row at d=64): rows from
        `block` (ids start..) are read from it instead, and each node is fetched once.
        """
        values = np.empty((rows.size, self.dim), dtype=np.float32)
        new = rows >= start if block is not None else np.zeros(rows.size, dtype=bool)
        if block is not None:
            values[new] = block[rows[new] - start]
        old = np.flatnonzero(~new)
        if old.size == 0:
            return values
        nodes, inverse = np.unique(self._rep[rows[old]], return_inverse=True)
        values[old] = np.asarray(self._index.get_items(nodes), dtype=np.float32)[inverse]
        for position in old[self._has_own[rows[old]]].tolist():
            values[position] = self._own[int(rows[position])]
        return values
