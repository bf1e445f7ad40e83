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
from app.mining.types import PairBatch


def exact_bytes_per_row(dim: int) -> int:
    """Memory an ExactMiner holds per row: float32 values and squared norm, and its digest.

    The digest dict (ByteDuplicates) measured ~150 bytes a row (marginal RSS, dim=32, 400k rows).
    """
    return 4 * dim + 4 + 160


class ExactMiner:
    """Finds each new row's exact k nearest neighbours among all rows added so far.

    Vectors live in one preallocated float32 (capacity, dim) tensor; a query compares the chunk
    with rows 0..end in (block x block) tiles, so memory stays O(capacity*dim + block^2). Tiles
    use the matmul shortcut on vectors centred on the first chunk's mean (fixed for the index's
    life) to shortlist 2k candidates per row; the shortlist is re-ranked by exact float64
    distances, which are also the distances returned.

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
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, vectors: NDArray[np.float32]) -> None:
        self._add(vectors)

    def add_and_query(self, vectors: NDArray[np.float32], k: int) -> PairBatch:
        check_k(k)
        start, first = self._add(vectors)
        end = self._n
        if end == start:
            return PairBatch.empty()
        queries, neighbours, distances = self._neighbours(start, end, k)
        new = np.arange(start, end, dtype=np.int64)
        copies = first != new
        dup_a = torch.from_numpy(new[copies]).to(self.device)
        dup_b = torch.from_numpy(first[copies]).to(self.device)
        # Computed, not assumed 0: a digest collision would then show its true distance.
        dup_d = pair_distances(self._vectors, dup_a, dup_b, self._budget)
        return PairBatch.from_unordered(
            np.concatenate([queries.cpu().numpy(), dup_a.cpu().numpy()]),
            np.concatenate([neighbours.cpu().numpy(), dup_b.cpu().numpy()]),
            np.concatenate([distances.cpu().numpy(), dup_d.cpu().numpy()]),
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

    def _neighbours(
        self, start: int, end: int, k: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat (query, neighbour, exact distance) for rows start..end-1 against rows 0..end-1."""
        # Twice k leaves room for rows the float32 shortcut misorders around the k-th.
        shortlist = min(2 * k, end - 1)
        keep = min(k, end - 1)
        found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        if keep == 0:
            empty = torch.empty(0, dtype=torch.int64, device=self.device)
            return empty, empty, torch.empty(0, dtype=torch.float64, device=self.device)
        for r0 in range(start, end, self.block):
            r1 = min(r0 + self.block, end)
            with full_fp32_matmul():
                candidates, earlier = self._shortlist(r0, r1, end, shortlist)
            queries = torch.arange(r0, r1, device=self.device).repeat_interleave(shortlist)
            exact = pair_distances(
                self._vectors, queries, candidates.reshape(-1), self._budget
            ).reshape(r1 - r0, shortlist)
            best, pos = torch.topk(exact, keep, dim=1, largest=False, sorted=False)
            found.append(
                (
                    queries.reshape(r1 - r0, shortlist)[:, :keep].reshape(-1),
                    torch.gather(candidates, 1, pos).reshape(-1),
                    best.reshape(-1),
                )
            )
            found.append(self._earlier_copies(torch.arange(r0, r1, device=self.device), earlier))
        return (
            torch.cat([f[0] for f in found]),
            torch.cat([f[1] for f in found]),
            torch.cat([f[2] for f in found]),
        )

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

    def _shortlist(self, r0: int, r1: int, end: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Ids (r1-r0, m) of each row's m nearest other rows among 0..end-1, by the shortcut,
        and the id of its nearest earlier row (-1 for row 0)."""
        assert self._centre is not None
        rows = self._vectors[r0:r1] - self._centre
        best_d = torch.empty((r1 - r0, 0), dtype=torch.float32, device=self.device)
        best_i = torch.empty((r1 - r0, 0), dtype=torch.int64, device=self.device)
        earlier_d = torch.full((r1 - r0,), torch.inf, device=self.device)
        earlier_i = torch.full((r1 - r0,), -1, dtype=torch.int64, device=self.device)
        for c0 in range(0, end, self.block):
            c1 = min(c0 + self.block, end)
            d2 = squared_distances(
                rows, self._sq[r0:r1], self._vectors[c0:c1] - self._centre, self._sq[c0:c1]
            )
            lo, hi = max(r0, c0), min(r1, c1)
            if lo < hi:
                own = torch.arange(lo, hi, device=self.device)
                d2[own - r0, own - c0] = torch.inf
            if c0 < r1:
                before = d2
                if c1 > r0:
                    ci = torch.arange(c0, c1, device=self.device)[None, :]
                    ri = torch.arange(r0, r1, device=self.device)[:, None]
                    before = d2.masked_fill(ci > ri, torch.inf)
                vals, idx = before.min(dim=1)
                closer = vals < earlier_d
                earlier_d = torch.where(closer, vals, earlier_d)
                earlier_i = torch.where(closer, idx + c0, earlier_i)
            vals, idx = torch.topk(d2, min(m, c1 - c0), dim=1, largest=False, sorted=False)
            best_d = torch.cat([best_d, vals], dim=1)
            best_i = torch.cat([best_i, idx + c0], dim=1)
            if best_d.shape[1] > m:
                best_d, pos = torch.topk(best_d, m, dim=1, largest=False, sorted=False)
                best_i = torch.gather(best_i, 1, pos)
        return best_i, earlier_i
