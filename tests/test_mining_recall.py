"""Acceptance: HnswMiner recall on an embedding-like pool with planted near-duplicates.

The reference is exact: the planted pairs themselves, and exact_closest_pairs over the pool
(checked against brute force in test_mining.py). Thresholds are the project's: >= 99% of planted
pairs and >= 95% of the exact 1,000 closest pairs, with k=10 and chunks of 2,000.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from app.mining.closest import exact_closest_pairs
from app.mining.hnsw import HnswMiner

N, DIM, CHUNK, K = 20_000, 64, 2_000, 10
N_NEAR, N_COPY = 500, 50


def embedding_like_pool(
    rng: np.random.Generator,
) -> tuple[NDArray[np.float32], set[tuple[int, int]]]:
    """A shuffled pool and its planted pairs (i < j).

    Embeddings concentrate near low-dimensional pieces: 50 clusters, each a random 12-d linear
    patch with its own scale, plus isotropic noise in all 64 dimensions (structureless 64-d or
    512-d noise is not what an embedder produces, and ANN recall on it is poor; DESIGN.md).
    Near-duplicates sit at log-uniform distances from 0.005 to 1.5, below the closest natural
    pairs' ~2 and far below the median nearest-neighbour distance (~7.6); copies are exact.
    """
    n_base, clusters, latent = N - N_NEAR - N_COPY, 50, 12
    centres = 3.0 * rng.standard_normal((clusters, DIM))
    patches = rng.standard_normal((clusters, latent, DIM)) / np.sqrt(latent)
    scales = rng.uniform(0.5, 2.0, clusters)
    label = rng.integers(0, clusters, n_base)
    z = rng.standard_normal((n_base, latent)) * scales[label, None]
    base = centres[label] + np.einsum("nl,nld->nd", z, patches[label])
    base = (base + 0.1 * rng.standard_normal((n_base, DIM))).astype(np.float32)

    source = rng.choice(n_base, N_NEAR + N_COPY, replace=False)
    step = rng.standard_normal((N_NEAR, DIM))
    length = np.exp(rng.uniform(np.log(0.005), np.log(1.5), N_NEAR))
    step *= (length / np.linalg.norm(step, axis=1))[:, None]
    near = (base[source[:N_NEAR]] + step).astype(np.float32)
    copies = base[source[N_NEAR:]]
    pool = np.concatenate([base, near, copies])

    # Shuffle so that partners usually land in different chunks.
    order = rng.permutation(N)
    position = np.empty(N, dtype=np.int64)
    position[order] = np.arange(N)
    a, b = position[source], position[n_base + np.arange(N_NEAR + N_COPY)]
    planted = set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), strict=True))
    return pool[order], planted


@pytest.mark.slow
def test_hnsw_recall_on_planted_duplicates_and_closest_pairs() -> None:
    pool, planted = embedding_like_pool(np.random.default_rng(20_000))
    assert len(planted) == N_NEAR + N_COPY

    miner = HnswMiner(N, DIM)
    found: set[tuple[int, int]] = set()
    for start in range(0, N, CHUNK):
        batch = miner.add_and_query(pool[start : start + CHUNK], K)
        found |= set(zip(batch.i.tolist(), batch.j.tolist(), strict=True))

    closest = exact_closest_pairs(pool, 1_000, device="cpu")
    top = set(zip(closest.i.tolist(), closest.j.tolist(), strict=True))
    # The test is only as hard as its reference: natural pairs must be in the top 1,000 too.
    assert 300 < len(top - planted) < 1_000 - 300

    assert len(planted & found) / len(planted) >= 0.99
    assert len(top & found) / len(top) >= 0.95


def closure_splits(n: int, found: set[tuple[int, int]], groups: NDArray[np.int64]) -> int:
    """Pairs inside the planted groups that the union of the found pairs leaves unjoined."""
    parent = np.arange(n)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    for i, j in found:
        parent[root(i)] = root(j)
    lost = 0
    for members in groups:
        _, sizes = np.unique([root(int(m)) for m in members], return_counts=True)
        lost += len(members) * (len(members) - 1) // 2 - int((sizes * (sizes - 1) // 2).sum())
    return lost


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_groups_equal_up_to_rounding_stay_joined(seed: int) -> None:
    """Identical images embedded in batches of different sizes differ by ~1e-7 (CLIP on CPU).

    With such rows in the graph, pruning split large groups of them into separate components:
    these seeds lost 113,614, 186,159 and 159,676 of the 958,800 planted pairs to the closure
    (3 groups of 800 among 3,000 unit rows, d=384, k=5; at d=64 none split), and none now.
    """
    n, dim, chunk, k, groups, size = 3_000, 384, 1_000, 5, 3, 800
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal((n, dim)).astype(np.float32)
    members = rng.permutation(n)[: groups * size].reshape(groups, size)
    for group in members:
        base = rng.standard_normal(dim)
        pool[group] = (base + 1e-7 * rng.standard_normal((size, dim))).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)

    miner = HnswMiner(n, dim, num_threads=1)
    found: dict[tuple[int, int], float] = {}
    for start in range(0, n, chunk):
        batch = miner.add_and_query(pool[start : start + chunk], k)
        pairs = zip(batch.i.tolist(), batch.j.tolist(), strict=True)
        found.update(zip(pairs, batch.distance.tolist(), strict=True))

    assert closure_splits(n, set(found), members) == 0
    # Each row keeps its own values: distances are the true ones, not the group's 0.
    i, j = np.array(list(found)).T
    truth = np.linalg.norm(pool[i].astype(np.float64) - pool[j].astype(np.float64), axis=1)
    np.testing.assert_allclose(list(found.values()), truth, rtol=1e-12, atol=0)
    assert min(found.values()) > 0.0
