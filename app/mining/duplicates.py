"""Rows that are the same embedding: byte-identical, or equal up to float rounding.

ANN graphs degrade on exact and near duplicates (hnswlib issues #263, #341: a group of identical
vectors links only to itself, and a large group of rows ~1e-7 apart is pruned into separate
components), so the hnsw miner settles sameness here, before a row can enter its graph.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import NDArray

# Rows closer than this fraction of their norm count as the same embedding. Identical images
# embedded in batches of different sizes come out that far apart because kernels sum in an
# order that depends on the batch: one float32 ulp (6e-8) per coordinate for the tiny ViT and
# EfficientNet on CPU, a distance of 5e-7 for ViT-B/32 on CPU (unit vectors). 1e-5 is 20x the
# largest of these (~80 float32 epsilons, room for other kernels) and far below any distance a
# person judges: one grey level in one pixel of a 64x64 RGB image moves its pixel embedding
# ~1e-4 of its norm, CLIP near-duplicates sit 1e-2 and more apart. A row taken for a copy by
# mistake is still paired with its stand-in at its true distance; it only stays out of the graph.
RELATIVE_TOLERANCE = 1e-5
# Zero rows (or rows underflowing to subnormals) have no norm to be relative to.
ABSOLUTE_TOLERANCE = float(np.finfo(np.float32).tiny)


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


def copy_tolerance(norm_a: NDArray[np.float64], norm_b: NDArray[np.float64]) -> NDArray[np.float64]:
    """The distance (elementwise, broadcasting) at or below which two rows are the same."""
    return np.maximum(RELATIVE_TOLERANCE * np.maximum(norm_a, norm_b), ABSOLUTE_TOLERANCE)


def are_copies(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.bool_]:
    """Whether rows a[t] and b[t] are the same embedding, by exact float64 distance."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    distance = np.linalg.norm(a64 - b64, axis=1)
    return distance <= copy_tolerance(np.linalg.norm(a64, axis=1), np.linalg.norm(b64, axis=1))


def centred_shortcut(rows: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Squared distances (b, b) between rows by the float64 matmul shortcut on centred rows,
    and a bound on each one's rounding error: to shortlist, never to report.

    The bound is Higham's gamma_d for the products, doubled for the centring and the sums; a
    true squared distance lies within it of the shortcut's.
    """
    x = rows.astype(np.float64)
    centred = x - x.mean(axis=0) if x.shape[0] else x
    sq = np.square(centred).sum(axis=1)
    approx = sq[:, None] + sq[None, :] - 2.0 * (centred @ centred.T)
    slack = 2 * (x.shape[1] + 8) * np.finfo(np.float64).eps * (sq[:, None] + sq[None, :])
    return approx, slack


def first_near_copies(
    rows: NDArray[np.float32],
    shortcut: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
) -> NDArray[np.int64]:
    """For each row, the position of the earlier row (among `rows`) it copies, or its own.

    Rows are taken in order and may map only to a row that maps to itself, so every copy lies
    within tolerance of its stand-in: no chain of copies drifts away. Costs O(b^2 d): callers
    pass blocks of a few hundred rows, and may pass the rows' `centred_shortcut` if they have it.
    """
    count = rows.shape[0]
    first = np.arange(count, dtype=np.int64)
    if count < 2:
        return first
    x = rows.astype(np.float64)
    norms = np.linalg.norm(x, axis=1)
    approx, slack = centred_shortcut(rows) if shortcut is None else shortcut
    tol = copy_tolerance(norms[:, None], norms[None, :])
    # The shortcut only shortlists: widened by its rounding bound it keeps every true copy;
    # exact distances then decide.
    near = np.tril(approx <= np.square(tol) + slack, k=-1)
    stands = np.ones(count, dtype=bool)
    for r in np.flatnonzero(near.any(axis=1)).tolist():
        earlier = np.flatnonzero(near[r] & stands)
        same = earlier[are_copies(x[earlier], np.broadcast_to(x[r], (earlier.size, x.shape[1])))]
        if same.size:
            first[r] = same[0]
            stands[r] = False
    return first
