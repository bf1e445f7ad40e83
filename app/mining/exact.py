"""Exact k-NN mining by blocked matmul: the small-pool path and the reference for recall."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from app.mining.chunks import as_chunk, check_k
from app.mining.distances import (
    default_device,
    full_fp32_matmul,
    pair_distances,
    squared_distances,
)
from app.mining.duplicates import ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE, ByteDuplicates
from app.mining.reverse import NearestSoFar
from app.mining.types import PairBatch


def exact_bytes_per_row(dim: int, k: int) -> int:
    """Memory an ExactMiner holds per row: float32 values and squared norm, its digest, and its
    k nearest distances so far (reverse.py).

    The digest dict (ByteDuplicates) measured ~150 bytes a row (marginal RSS, dim=32, 400k rows).
    """
    return 4 * dim + 4 + 160 + NearestSoFar.bytes_per_row(k)


class ExactMiner:
    """Pairs each new row with its exact k nearest among the rows before it, and each earlier
    row with the new rows that enter its k nearest (reverse.py): the same pairs however the pool
    is cut into chunks.

    Vectors live in one preallocated float32 (capacity, dim) tensor; a query compares the chunk
    with rows 0..end in (block x block) tiles, so memory stays O(capacity*(dim + k) + block^2).
    Tiles use the matmul shortcut on vectors centred on the first chunk's mean (fixed for the
    index's life) to shortlist 2k candidates per row; the shortlist is re-ranked by exact float64
    distances, which are also the distances returned. The same tiles, in the other direction,
    screen the earlier rows a new row may enter: with the shortcut's rounding bound as slack, so
    no row that enters is missed, then exact distances decide.

    The shortcut cannot rank rows equal up to rounding (duplicates.py), so among a group larger
    than 2k of them the shortlist is arbitrary, and the k-NN of chunked queries split such groups
    (10 groups of 1,000 rows 1 ulp apart among 20,000: 155,751 planted pairs lost). Each row is
    therefore also paired with the shortcut-nearest earlier row when that row is its copy.
    """

    def __init__(
        self,
        capacity: int,
        dim: int,
        block: int = 4096,
        device: str | torch.device | None = None,
    ) -> None:
        if capacity < 0 or dim < 1 or block < 1:
            raise ValueError("capacity must be >= 0, dim and block >= 1")
        self.capacity = capacity
        self.dim = dim
        self.block = block
        self.device = torch.device(device) if device is not None else default_device()
        self._vectors = torch.empty((capacity, dim), dtype=torch.float32, device=self.device)
        self._sq = torch.empty(capacity, dtype=torch.float32, device=self.device)
        self._centre: torch.Tensor | None = None
        self._duplicates = ByteDuplicates()
        self._nearest = NearestSoFar(capacity)
        # The float32 shortcut's error bound, relative to |a|^2 + |b|^2 + the bound compared
        # with: dot products (Higham's gamma_dim), the centring and the sums, taken twice over.
        self._slack = (dim + 16) * float(np.finfo(np.float32).eps)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, vectors: NDArray[np.float32]) -> None:
        self._add(vectors)

    def add_and_query(self, vectors: NDArray[np.float32], k: int) -> PairBatch:
        check_k(k)
        self._nearest.reset(k)
        start, first = self._add(vectors)
        end = self._n
        if end == start:
            return PairBatch.empty()
        if self._nearest.known < start:
            self._catch_up(start, k)
        found = [
            self._mine(r0, min(r0 + self.block, end), k) for r0 in range(start, end, self.block)
        ]
        self._nearest.known = end
        new = np.arange(start, end, dtype=np.int64)
        copies = first != new
        dup_a = torch.from_numpy(new[copies]).to(self.device)
        dup_b = torch.from_numpy(first[copies]).to(self.device)
        # Computed, not assumed 0: a digest collision would then show its true distance.
        dup_d = pair_distances(self._vectors, dup_a, dup_b, self._budget)
        found.append((dup_a.cpu().numpy(), dup_b.cpu().numpy(), dup_d.cpu().numpy()))
        return PairBatch.from_unordered(
            np.concatenate([f[0] for f in found]),
            np.concatenate([f[1] for f in found]),
            np.concatenate([f[2] for f in found]),
        )

    @property
    def _budget(self) -> int:
        return max(1, self.block * self.block // 4)

    def _add(self, vectors: NDArray[np.float32]) -> tuple[int, NDArray[np.int64]]:
        chunk = as_chunk(vectors, self.dim, self.capacity - self._n)
        start = self._n
        first = self._duplicates.add(chunk, start)
        if chunk.shape[0] == 0:
            return start, first
        rows = torch.from_numpy(chunk).to(self.device)
        if self._centre is None:
            self._centre = rows.double().mean(dim=0).float()
        end = start + chunk.shape[0]
        self._vectors[start:end] = rows
        self._sq[start:end] = (rows - self._centre).double().square().sum(dim=1).float()
        self._n = end
        return start, first

    def _catch_up(self, end: int, k: int) -> None:
        """Each row's k nearest among rows 0..end-1, for rows added without a query (a resumed
        index) or queried with another k: every earlier row's distances may have changed."""
        for r0 in range(0, end, self.block):
            r1 = min(r0 + self.block, end)
            candidates, _, _ = self._scan(r0, r1, 0, end, min(2 * k, end - 1), prefix=False)
            rows = torch.arange(r0, r1, device=self.device)
            _, distance = self._rerank(rows, candidates, k)
            self._nearest.set(rows.cpu().numpy(), distance.cpu().numpy())
        self._nearest.known = end

    def _mine(
        self, r0: int, r1: int, k: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
        """(row, other row, exact distance) of rows r0..r1-1's pairs with the rows before them."""
        rows = torch.arange(r0, r1, device=self.device)
        candidates, shortcut, hits = self._scan(
            r0, r1, 0, r1, min(2 * k, r1 - 1), prefix=True, limit=self._limit(0, r0)
        )
        neighbours, distance = self._rerank(rows, candidates, k)
        self._nearest.set(rows.cpu().numpy(), distance.cpu().numpy())
        known = torch.isfinite(distance)
        forward = (
            rows[:, None].expand_as(neighbours)[known],
            neighbours[known],
            distance[known],
        )
        _, _, inner = self._scan(r0, r1, r0, r1, 0, prefix=True, limit=self._limit(r0, r1))
        later = torch.cat([hits[0], inner[0]])
        earlier = torch.cat([hits[1], inner[1]])
        reach = pair_distances(self._vectors, earlier, later, self._budget).cpu().numpy()
        earlier_np, later_np = earlier.cpu().numpy(), later.cpu().numpy()
        entered = self._nearest.enter(earlier_np, later_np, reach)
        # The nearest earlier row by the shortcut, for copies that the shortcut cannot rank.
        nearest = torch.full_like(rows, -1)
        if shortcut.shape[1]:
            closest = shortcut.argmin(dim=1, keepdim=True)
            nearest = torch.gather(candidates, 1, closest).squeeze(1)
        copies = self._earlier_copies(rows, nearest)
        a, b, d = (torch.cat([f, c]).cpu().numpy() for f, c in zip(forward, copies, strict=True))
        return (
            np.concatenate([a, later_np[entered]]),
            np.concatenate([b, earlier_np[entered]]),
            np.concatenate([d, reach[entered]]),
        )

    def _rerank(
        self, rows: torch.Tensor, candidates: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's k nearest candidates by exact distance, ties to the lower id: ids and
        distances (b, k), inf where a row has fewer (candidates that are not before the row
        under the prefix rule come marked by the scan and are dropped here)."""
        keep = min(k, candidates.shape[1])
        candidates, _ = torch.sort(candidates, dim=1)
        queries = rows.repeat_interleave(candidates.shape[1])
        exact = pair_distances(
            self._vectors, queries, candidates.clamp(min=0).reshape(-1), self._budget
        ).reshape(candidates.shape)
        exact = exact.masked_fill(candidates < 0, torch.inf)
        exact, order = torch.sort(exact, dim=1, stable=True)
        return torch.gather(candidates, 1, order[:, :keep]), exact[:, :keep]

    def _limit(self, c0: int, c1: int) -> torch.Tensor:
        """Squared-distance bounds of rows c0..c1-1 for the screen: a later row whose shortcut
        distance to row c is above it is farther than c's k-th nearest so far, so cannot enter."""
        kth = self._nearest.kth(slice(c0, c1)).astype(np.float64)
        # Nothing is strictly closer than 0: a row with k copies takes no one in.
        bound = np.where(kth > 0, np.square(kth) * (1 + self._slack), -np.inf)
        sq = self._sq[c0:c1].double().cpu().numpy()
        return torch.from_numpy(bound + self._slack * sq).float().to(self.device)

    def _earlier_copies(
        self, rows: torch.Tensor, earlier: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(row, earlier row, exact distance) where the earlier row is the row's copy."""
        rows, earlier = rows[earlier >= 0], earlier[earlier >= 0]
        distance = pair_distances(self._vectors, rows, earlier, self._budget)
        norms = torch.maximum(
            self._vectors[rows].double().norm(dim=1), self._vectors[earlier].double().norm(dim=1)
        )
        copies = distance <= torch.clamp(RELATIVE_TOLERANCE * norms, min=ABSOLUTE_TOLERANCE)
        return rows[copies], earlier[copies], distance[copies]

    def _scan(
        self,
        r0: int,
        r1: int,
        c0: int,
        c1: int,
        m: int,
        prefix: bool,
        limit: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One shortcut pass of rows r0..r1-1 over columns c0..c1-1, tile by tile.

        Returns each row's m nearest other columns (before the row under `prefix`) as ids and
        shortcut distances (r1-r0, m), id -1 and distance inf where there are fewer, and the
        (row, column) pairs of columns c0..c0+len(limit)-1 before the row within `limit`.
        """
        assert self._centre is not None
        rows = self._vectors[r0:r1] - self._centre
        rows_sq = self._sq[r0:r1]
        row_ids = torch.arange(r0, r1, device=self.device)[:, None]
        best_d = torch.empty((r1 - r0, 0), dtype=torch.float32, device=self.device)
        best_i = torch.empty((r1 - r0, 0), dtype=torch.int64, device=self.device)
        hit_rows, hit_cols = [], []
        screened = c0 + (0 if limit is None else limit.shape[0])
        if limit is not None and r1 > r0:
            # One bound per column: the rows' part of the slack taken at its largest.
            limit = limit + self._slack * rows_sq.max()
        with full_fp32_matmul():
            for t0 in range(c0, c1, self.block):
                t1 = min(t0 + self.block, c1)
                d2 = squared_distances(
                    rows, rows_sq, self._vectors[t0:t1] - self._centre, self._sq[t0:t1]
                )
                # Only tiles reaching the rows' own ids hold columns not before a row.
                before = None
                if t1 > r0:
                    before = torch.arange(t0, t1, device=self.device)[None, :] < row_ids
                if limit is not None and t0 < screened:
                    s1 = min(t1, screened)
                    within = d2[:, : s1 - t0] <= limit[None, t0 - c0 : s1 - c0]
                    if before is not None:
                        within &= before[:, : s1 - t0]
                    r, c = _nonzero(within)
                    hit_rows.append(r + r0)
                    hit_cols.append(c + t0)
                if m == 0:
                    continue
                if before is not None and prefix:
                    d2.masked_fill_(~before, torch.inf)
                elif not prefix and t0 < r1 and t1 > r0:
                    own = torch.arange(max(r0, t0), min(r1, t1), device=self.device)
                    d2[own - r0, own - t0] = torch.inf
                vals, idx = torch.topk(d2, min(m, t1 - t0), dim=1, largest=False, sorted=False)
                best_d = torch.cat([best_d, vals], dim=1)
                best_i = torch.cat([best_i, idx + t0], dim=1)
                if best_d.shape[1] > m:
                    best_d, pos = torch.topk(best_d, m, dim=1, largest=False, sorted=False)
                    best_i = torch.gather(best_i, 1, pos)
        best_i = best_i.masked_fill(torch.isinf(best_d), -1)
        empty = torch.empty(0, dtype=torch.int64, device=self.device)
        hits = (
            torch.cat(hit_rows) if hit_rows else empty,
            torch.cat(hit_cols) if hit_cols else empty,
        )
        return best_i, best_d, hits


def _nonzero(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of a 2-d mask's true entries; on CPU by numpy, ~10x torch.nonzero there."""
    if mask.device.type != "cpu":
        rows, cols = torch.nonzero(mask, as_tuple=True)
        return rows, cols
    flat = torch.from_numpy(np.flatnonzero(mask.contiguous().numpy()))
    return flat // mask.shape[1], flat % mask.shape[1]
