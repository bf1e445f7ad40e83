"""The exact global closest pairs of a pool: the reference that miner recall is measured against."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from app.mining.chunks import as_chunk
from app.mining.distances import (
    default_device,
    full_fp32_matmul,
    pair_distances,
    squared_distances,
)
from app.mining.types import PairBatch


def exact_closest_pairs(
    vectors: NDArray[np.floating],
    m: int,
    block: int = 4096,
    device: str | torch.device | None = None,
) -> PairBatch:
    """The m closest pairs (i < j) of the whole pool, by exact float64 distance.

    Tiles of the upper triangle only are ranked by the centred matmul shortcut, keeping a
    shortlist of 2m pairs that is then re-ranked exactly; memory is O(n*d + block^2 + m).
    """
    if m < 1 or block < 1:
        raise ValueError("m and block must be at least 1")
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise ValueError(f"expected a (n, d) array, got shape {x.shape}")
    x = as_chunk(x, x.shape[1], x.shape[0])
    n = x.shape[0]
    total = n * (n - 1) // 2
    if total == 0:
        return PairBatch.empty()
    m = min(m, total)
    shortlist = min(2 * m, total)
    dev = torch.device(device) if device is not None else default_device()
    t = torch.from_numpy(x).to(dev)
    centre = t.double().mean(dim=0).float()
    sq = (t - centre).double().square().sum(dim=1).float()
    best_d = torch.empty(0, dtype=torch.float32, device=dev)
    best_i = torch.empty(0, dtype=torch.int64, device=dev)
    best_j = torch.empty(0, dtype=torch.int64, device=dev)
    with full_fp32_matmul():
        for r0 in range(0, n, block):
            r1 = min(r0 + block, n)
            rows = t[r0:r1] - centre
            for c0 in range(r0, n, block):
                c1 = min(c0 + block, n)
                d2 = squared_distances(rows, sq[r0:r1], t[c0:c1] - centre, sq[c0:c1])
                if c0 == r0:
                    ri = torch.arange(r0, r1, device=dev)[:, None]
                    ci = torch.arange(c0, c1, device=dev)[None, :]
                    d2.masked_fill_(ci <= ri, torch.inf)
                flat = d2.reshape(-1)
                if best_d.shape[0] == shortlist:
                    # Once the shortlist is full only entries beating its worst can enter: few.
                    pos = torch.nonzero(flat < best_d.max()).squeeze(1)
                    vals = flat[pos]
                else:
                    vals, pos = torch.topk(
                        flat, min(shortlist, flat.numel()), largest=False, sorted=False
                    )
                best_d = torch.cat([best_d, vals])
                best_i = torch.cat([best_i, pos // (c1 - c0) + r0])
                best_j = torch.cat([best_j, pos % (c1 - c0) + c0])
                if best_d.shape[0] > shortlist:
                    best_d, keep = torch.topk(best_d, shortlist, largest=False, sorted=False)
                    best_i, best_j = best_i[keep], best_j[keep]
    valid = best_j > best_i
    best_i, best_j = best_i[valid], best_j[valid]
    exact = pair_distances(t, best_i, best_j, max(1, block * block // 4))
    dist, keep = torch.topk(exact, min(m, exact.shape[0]), largest=False, sorted=False)
    return PairBatch.from_unordered(
        best_i[keep].cpu().numpy(), best_j[keep].cpu().numpy(), dist.cpu().numpy()
    )
