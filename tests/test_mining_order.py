"""Candidate pairs do not depend on where the pool is cut into chunks, and hnsw runs repeat.

A miner that only paired each new row with its k nearest lost pairs of a row whose duplicates
all came in later chunks, each with more than k closer copies of one another; and hnswlib's
threaded insertion made two identical runs differ in 41 of 97,750 pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from app.mining.exact import ExactMiner
from app.mining.hnsw import HnswMiner
from app.mining.types import Miner
from tests.test_mining_recall import CHUNK, DIM, K, N, embedding_like_pool

Pairs = dict[tuple[int, int], float]
MINERS: dict[str, Callable[[int, int], Miner]] = {
    "exact": lambda n, d: ExactMiner(n, d, block=64, device="cpu"),
    "hnsw": lambda n, d: HnswMiner(n, d),
}


def mine(miner: Miner, x: NDArray[np.float32], sizes: Sequence[int], k: int) -> Pairs:
    """All pairs of a pool mined in chunks of the given sizes, checked never to repeat."""
    bounds = np.cumsum([0, *sizes])
    assert bounds[-1] == len(x)
    found: Pairs = {}
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        batch = miner.add_and_query(x[s:e], k)
        pairs = dict(
            zip(
                zip(batch.i.tolist(), batch.j.tolist(), strict=True),
                batch.distance.tolist(),
                strict=True,
            )
        )
        assert len(pairs) == len(batch)
        assert not pairs.keys() & found.keys(), "a pair came back in a later batch"
        found.update(pairs)
    return found


def whole_pool_knn(x: NDArray[np.float32], k: int, block: int = 2048) -> set[tuple[int, int]]:
    """Pairs (i < j) where one is among the other's k nearest in the whole pool, leaving out
    rows tied with the (k+1)-th (copies tie): then either may be among the k."""
    t = torch.from_numpy(x).double()
    t = t - t.mean(dim=0)
    sq = t.square().sum(dim=1)
    pairs: set[tuple[int, int]] = set()
    for r0 in range(0, len(x), block):
        d2 = sq[r0 : r0 + block, None] + sq[None, :] - 2.0 * (t[r0 : r0 + block] @ t.T)
        rows = torch.arange(r0, min(r0 + block, len(x)))
        d2[rows - r0, rows] = torch.inf
        near, cols = torch.topk(d2, k + 1, dim=1, largest=False)  # sorted, nearest first
        # Beyond the float64 shortcut's rounding (~1e-13 of |x|^2 here) from the (k+1)-th.
        clear = near[:, :k] < near[:, k:] - 1e-9 * sq.max()
        for r, c in zip(rows.tolist(), cols[:, :k].tolist(), strict=True):
            pairs |= {
                (min(r, j), max(r, j))
                for j, ok in zip(c, clear[r - r0].tolist(), strict=True)
                if ok
            }
    return pairs


@pytest.mark.parametrize("kind", sorted(MINERS))
def test_a_row_whose_copies_all_come_later_is_paired_with_them(kind: str) -> None:
    """Row 0 has 6 near copies in the second chunk, each with 5 copies closer than row 0:
    chunk by chunk, each copy's 3 nearest were other copies and row 0 met none of them."""
    rng = np.random.default_rng(4)
    k, dim = 3, 8
    x = rng.standard_normal((60, dim)).astype(np.float32)
    step = rng.standard_normal(dim)
    step *= 0.3 / np.linalg.norm(step)
    jitter = rng.standard_normal((6, dim))
    jitter *= 0.005 / np.linalg.norm(jitter, axis=1, keepdims=True)
    copies = np.arange(35, 41)
    x[copies] = (x[0] + step + jitter).astype(np.float32)

    chunked = mine(MINERS[kind](60, dim), x, [30, 30], k)
    whole = mine(MINERS[kind](60, dim), x, [60], k)
    distance = np.linalg.norm(x[copies].astype(np.float64) - x[0].astype(np.float64), axis=1)
    nearest = copies[np.argsort(distance)[:k]]  # row 0's k nearest in the whole pool
    assert {(0, int(c)) for c in nearest} <= chunked.keys()
    assert chunked.keys() == whole.keys()


def planted_pool(n: int, dim: int, seed: int) -> NDArray[np.float32]:
    """Gaussian rows, a tenth of them near copies (1e-3 to 0.5 away) of rows in other chunks,
    and a few byte copies."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    late = rng.choice(np.arange(n // 2, n), n // 10, replace=False)
    source = rng.integers(0, n // 2, late.size)
    step = rng.standard_normal((late.size, dim))
    step *= np.exp(rng.uniform(np.log(1e-3), np.log(0.5), late.size))[:, None] / np.linalg.norm(
        step, axis=1, keepdims=True
    )
    x[late] = (x[source] + step).astype(np.float32)
    x[[n - 1, n - 7, n // 2]] = x[[3, 5, 7]]
    return x


CHUNKINGS = [[600], [100] * 6, [1, 77, 300, 222], [37] * 16 + [8]]


@pytest.mark.parametrize("sizes", CHUNKINGS[1:], ids=str)
def test_exact_pairs_do_not_depend_on_the_chunks(sizes: list[int]) -> None:
    x = planted_pool(600, 16, seed=9)
    whole = mine(MINERS["exact"](600, 16), x, CHUNKINGS[0], 5)
    chunked = mine(MINERS["exact"](600, 16), x, sizes, 5)
    assert chunked == whole  # the same pairs at the same distances
    assert whole_pool_knn(x, 5) <= whole.keys()


def test_hnsw_runs_repeat() -> None:
    """With threaded insertion, runs on this pool differed in 3 to 111 pairs (2 cores); a small
    ef makes the results depend on the graph's every link."""
    x = np.random.default_rng(0).standard_normal((3000, 16)).astype(np.float32)
    runs = [mine(HnswMiner(3000, 16, ef=20, ef_construction=20), x, [1000] * 3, 5) for _ in "ab"]
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_hnsw_recall_does_not_drop_with_chunks() -> None:
    """hnsw against the exact miner on the recall test's pool (20,000 x 64, k=10): chunks of
    2,000 lost a quarter of the whole pool's k-NN graph (75.8% kept) before the reverse half."""
    pool, _ = embedding_like_pool(np.random.default_rng(20_000))
    exact = mine(ExactMiner(N, DIM, device="cpu"), pool, [CHUNK] * (N // CHUNK), K).keys()
    knn = whole_pool_knn(pool, K)
    assert knn <= exact
    recall = {}
    for sizes in ([CHUNK] * (N // CHUNK), [N]):
        found = mine(HnswMiner(N, DIM), pool, sizes, K).keys()
        recall[len(sizes)] = len(found & exact) / len(exact)
        assert len(found & knn) / len(knn) >= 0.99
    assert recall[1] >= 0.99
    assert recall[N // CHUNK] >= recall[1] - 0.002
