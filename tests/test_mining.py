"""Miners against a brute-force float64 reference derived from the contract in app/mining/types.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from app.mining.closest import exact_closest_pairs
from app.mining.duplicates import RELATIVE_TOLERANCE, first_near_copies
from app.mining.exact import ExactMiner
from app.mining.factory import EXACT_MAX_POOL, make_miner
from app.mining.hnsw import HnswMiner
from app.mining.types import Miner, PairBatch

MakeMiner = Callable[[int, int], Miner]
MINERS: dict[str, MakeMiner] = {
    # A small block makes the exact miner tile every query, the case worth testing.
    "exact": lambda n, d: ExactMiner(n, d, block=16, device="cpu"),
    # On a few hundred points ef=200 searches the whole graph.
    "hnsw": lambda n, d: HnswMiner(n, d, num_threads=1),
}


def distances64(x: NDArray[np.float32]) -> NDArray[np.float64]:
    x64 = x.astype(np.float64)
    return np.sqrt(np.square(x64[:, None, :] - x64[None, :, :]).sum(axis=2))


def first_identical(x: NDArray[np.float32]) -> NDArray[np.int64]:
    """For each row, the first row with equal values (itself when none comes before)."""
    first = np.arange(len(x))
    for r in range(len(x)):
        same = np.flatnonzero((x[:r] == x[r]).all(axis=1))
        if same.size:
            first[r] = same[0]
    return first


def reference_bounds(
    x: NDArray[np.float32], start: int, end: int, k: int
) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Pairs a chunk's batch must contain, and pairs it may contain, by the contract.

    Each new row j in [start, end) pairs with its k nearest among rows [0, j): rows strictly
    closer than the k-th distance must appear, rows at exactly that distance must too unless
    they tie for more places than are left; then any of them may. Each earlier row i pairs with
    j when j, on arrival, is closer to i than i's k-th nearest among rows [0, j) other than i
    (in float32: a tie goes to the earlier row). A row with an identical earlier row must also
    pair with the first such row.
    """
    dist = distances64(x[:end])
    first = first_identical(x[:end])
    top = np.full((end, k), np.inf, dtype=np.float32)  # each row's k nearest so far
    must: set[tuple[int, int]] = set()
    may: set[tuple[int, int]] = set()
    for j in range(1, end):
        d = dist[j, :j]
        kth = np.sort(d)[min(k, j) - 1]
        near = np.flatnonzero(d <= kth)
        # The tied rows at the k-th distance are all required when they fit in k.
        required = near if len(near) <= k else np.flatnonzero(d < kth)
        entering = np.flatnonzero(d.astype(np.float32) < top[:j, -1])
        top[:j] = np.sort(np.column_stack([top[:j], d.astype(np.float32)]), axis=1)[:, :k]
        nearest = np.sort(d)[:k]
        top[j, : nearest.size] = nearest
        if j < start:
            continue
        must |= {(c, j) for c in [*required.tolist(), *entering.tolist()]}
        may |= {(c, j) for c in [*near.tolist(), *entering.tolist()]}
        if first[j] != j:
            must.add((int(first[j]), j))
            may.add((int(first[j]), j))
    return must, may


def mine(miner: Miner, x: NDArray[np.float32], sizes: Sequence[int], k: int) -> list[PairBatch]:
    bounds = np.cumsum([0, *sizes])
    assert bounds[-1] == len(x)
    return [miner.add_and_query(x[s:e], k) for s, e in zip(bounds[:-1], bounds[1:], strict=True)]


def check_batches(
    x: NDArray[np.float32], sizes: Sequence[int], k: int, batches: list[PairBatch]
) -> None:
    dist = distances64(x)
    bounds = np.cumsum([0, *sizes])
    seen: set[tuple[int, int]] = set()
    for s, e, batch in zip(bounds[:-1], bounds[1:], batches, strict=True):
        got = list(zip(batch.i.tolist(), batch.j.tolist(), strict=True))
        pairs = set(got)
        assert len(pairs) == len(got), "pairs repeat within a batch"
        assert not pairs & seen, "a pair came back in a later batch"
        seen |= pairs
        must, may = reference_bounds(x, int(s), int(e), k)
        assert must <= pairs <= may
        assert np.all(batch.i < batch.j)
        assert np.all(np.diff(batch.distance) >= 0)
        np.testing.assert_allclose(batch.distance, dist[batch.i, batch.j], rtol=1e-12, atol=0)


CHUNKINGS = [[120], [30, 30, 30, 30], [1, 7, 64, 48], [17] * 7 + [1]]


@pytest.mark.parametrize("kind", sorted(MINERS))
@pytest.mark.parametrize("sizes", CHUNKINGS, ids=str)
def test_miner_matches_brute_force(kind: str, sizes: list[int]) -> None:
    rng = np.random.default_rng(len(sizes))
    x = rng.standard_normal((120, 8)).astype(np.float32)
    miner = MINERS[kind](120, 8)
    batches = mine(miner, x, sizes, k=4)
    check_batches(x, sizes, 4, batches)
    assert len(miner) == 120
    # Without ties the contract fixes the pairs exactly, so must == may and they were checked.
    must, may = reference_bounds(x, 0, 120, 4)
    assert must == may


@pytest.mark.parametrize("kind", sorted(MINERS))
def test_identical_rows_pair_with_first_at_zero(kind: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((90, 6)).astype(np.float32)
    x[[10, 40, 41, 42, 80]] = x[5]  # copies in the same chunk and in later ones
    for r in range(50, 70):  # a group larger than k
        x[r] = x[45]
    x[60, 0] = 0.0
    x[85] = x[60]
    x[85, 0] = -0.0  # equal value, different bytes
    sizes = [30, 30, 30]
    batches = mine(MINERS[kind](90, 6), x, sizes, k=3)
    check_batches(x, sizes, 3, batches)
    got = {
        (i, j): d
        for b in batches
        for i, j, d in zip(b.i.tolist(), b.j.tolist(), b.distance.tolist(), strict=True)
    }
    first = first_identical(x)
    copies = np.flatnonzero(first != np.arange(90))
    assert len(copies) == 5 + 19 + 1
    for copy in copies.tolist():
        assert got[(int(first[copy]), copy)] == 0.0


@pytest.mark.parametrize("kind", sorted(MINERS))
def test_near_duplicates_far_from_origin_keep_true_distance(kind: str) -> None:
    """The shortcut |a|^2+|b|^2-2ab rounds these to 0 uncentred (DESIGN.md); they must not."""
    rng = np.random.default_rng(11)
    base = (100.0 + rng.standard_normal((200, 64))).astype(np.float32)
    step = rng.standard_normal((40, 64))
    step *= 0.02 / np.linalg.norm(step, axis=1, keepdims=True)
    near = (base[:40] + step).astype(np.float32)
    x = np.concatenate([base, near])
    batches = mine(MINERS[kind](240, 64), x, [120, 120], k=1)
    found = {
        (i, j): d
        for b in batches
        for i, j, d in zip(b.i.tolist(), b.j.tolist(), b.distance.tolist(), strict=True)
    }
    x64 = x.astype(np.float64)
    for r in range(40):
        truth = float(np.linalg.norm(x64[r] - x64[200 + r]))
        assert 0.015 < truth < 0.025
        assert found[(r, 200 + r)] == pytest.approx(truth, rel=1e-6)


def test_exact_closest_pairs_equals_brute_force() -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((150, 6)) + 50.0).astype(np.float32)
    x[99] = x[12]
    dist = distances64(x)
    iu, ju = np.triu_indices(150, k=1)
    order = np.lexsort((ju, iu, dist[iu, ju]))[:40]
    got = exact_closest_pairs(x, 40, block=32, device="cpu")
    np.testing.assert_array_equal(got.i, iu[order])
    np.testing.assert_array_equal(got.j, ju[order])
    np.testing.assert_allclose(got.distance, dist[iu[order], ju[order]], rtol=1e-12, atol=0)
    assert got.distance[0] == 0.0


def test_exact_closest_pairs_returns_every_pair_when_m_is_large() -> None:
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]], dtype=np.float32)
    got = exact_closest_pairs(x, 10, block=2, device="cpu")
    assert list(zip(got.i.tolist(), got.j.tolist(), strict=True)) == [(0, 2), (1, 2), (0, 1)]
    np.testing.assert_allclose(got.distance, [1.0, np.sqrt(18.0), 5.0], rtol=1e-15)
    assert len(exact_closest_pairs(x[:1], 5)) == 0


def test_pair_batch_orients_dedupes_and_sorts() -> None:
    batch = PairBatch.from_unordered(
        np.array([5, 2, 3, 4, 7]), np.array([2, 5, 1, 4, 0]), np.array([0.5, 0.5, 0.1, 0.0, 0.1])
    )
    assert batch.i.tolist() == [0, 1, 2]
    assert batch.j.tolist() == [7, 3, 5]
    assert batch.distance.tolist() == [0.1, 0.1, 0.5]
    assert len(batch) == 3
    assert len(PairBatch.empty()) == 0


@pytest.mark.parametrize("kind", sorted(MINERS))
def test_add_rebuilds_the_same_index(kind: str) -> None:
    """Resuming: rows added without a query are neighbours for later queries, as if queried."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((60, 4)).astype(np.float32)
    fresh = mine(MINERS[kind](60, 4), x, [20, 20, 20], k=3)[-1]
    resumed = MINERS[kind](60, 4)
    resumed.add(x[:20])
    resumed.add(x[20:40])
    assert len(resumed) == 40
    last = resumed.add_and_query(x[40:], 3)
    np.testing.assert_array_equal(last.i, fresh.i)
    np.testing.assert_array_equal(last.j, fresh.j)
    np.testing.assert_array_equal(last.distance, fresh.distance)


@pytest.mark.parametrize("kind", sorted(MINERS))
def test_small_pools_and_empty_chunks(kind: str) -> None:
    miner = MINERS[kind](5, 2)
    assert len(miner.add_and_query(np.empty((0, 2), np.float32), 3)) == 0
    assert len(miner.add_and_query(np.array([[0.0, 0.0]], np.float32), 3)) == 0
    got = miner.add_and_query(np.array([[3.0, 4.0], [0.0, 2.0]], np.float32), 3)
    assert list(zip(got.i.tolist(), got.j.tolist(), strict=True)) == [(0, 2), (1, 2), (0, 1)]
    np.testing.assert_allclose(got.distance, [2.0, np.sqrt(13.0), 5.0], rtol=1e-15)


@pytest.mark.parametrize("kind", sorted(MINERS))
def test_bad_input_is_refused(kind: str) -> None:
    miner = MINERS[kind](4, 3)
    with pytest.raises(ValueError, match="shape"):
        miner.add(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="finite"):
        miner.add(np.array([[0.0, np.nan, 1.0]], np.float32))
    with pytest.raises(ValueError, match="k must"):
        miner.add_and_query(np.zeros((1, 3), np.float32), 0)
    miner.add(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="left"):
        miner.add(np.ones((2, 3), np.float32))
    assert len(miner) == 3


def test_make_miner_picks_by_pool_size() -> None:
    assert isinstance(make_miner("auto", EXACT_MAX_POOL, 8), ExactMiner)
    assert isinstance(make_miner("auto", EXACT_MAX_POOL + 1, 8), HnswMiner)
    assert isinstance(make_miner("exact", 10, 8), ExactMiner)
    assert isinstance(make_miner("hnsw", 10, 8), HnswMiner)
    with pytest.raises(ValueError):
        make_miner("faiss", 10, 8)  # type: ignore[arg-type]


def rounding_copies(
    x: NDArray[np.float32], source: int, rows: Sequence[int], rng: np.random.Generator
) -> None:
    """Make `rows` copies of row `source` up to rounding: 1 ulp off in 3 random coordinates."""
    for r in rows:
        x[r] = x[source]
        cols = rng.choice(x.shape[1], 3, replace=False)
        x[r, cols] = np.nextafter(x[r, cols], np.float32(np.inf))


@pytest.mark.parametrize("kind", sorted(MINERS))
def test_rows_equal_up_to_rounding_are_joined_at_their_true_distance(kind: str) -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((120, 16)).astype(np.float32)
    group = [5, 12, 13, *range(31, 52), 70, 100]  # larger than k, in every chunk
    rounding_copies(x, 5, group[1:], rng)
    x[110] = x[40]  # a byte copy of a rounding copy
    batches = mine(MINERS[kind](120, 16), x, [30, 30, 30, 30], k=3)
    dist = distances64(x)
    found: dict[tuple[int, int], float] = {}
    for batch in batches:
        assert np.all(batch.i < batch.j)
        np.testing.assert_allclose(batch.distance, dist[batch.i, batch.j], rtol=1e-12, atol=0)
        pairs = zip(batch.i.tolist(), batch.j.tolist(), strict=True)
        found.update(zip(pairs, batch.distance.tolist(), strict=True))
    members = [*group, 110]
    component = {r: {r} for r in members}
    for a, b in found:
        if a in component and b in component and component[a] is not component[b]:
            merged = component[a] | component[b]
            component.update({m: merged for m in merged})
    assert component[5] == set(members)
    if kind == "hnsw":  # it pairs each copy with the earlier row standing for it in the graph
        assert all(any((c, r) in found for c in members if c < r) for r in members[1:])
    assert found[(40, 110)] == 0.0
    assert all(found[(a, b)] > 0.0 for a, b in found if a in group and b in group)


def test_first_near_copies_map_to_a_stand_in_within_tolerance() -> None:
    one = np.zeros(4, dtype=np.float32)
    one[0] = 1.0
    step = np.float32(0.6 * RELATIVE_TOLERANCE)
    rows = np.stack(
        [
            one,
            one + [0, step, 0, 0],  # copies row 0
            one + [0, 2 * step, 0, 0],  # copies row 1 only: a chain must not drift
            np.zeros(4),
            np.zeros(4),  # zero rows have no norm to be relative to
            1e3 * one + [0, 1e-3, 0, 0],  # 1e-6 of its norm from row 6
            1e3 * one,
            one + [0, 1e-3, 0, 0],  # 1e-3 from row 0: a near duplicate, not a copy
        ]
    ).astype(np.float32)
    assert first_near_copies(rows).tolist() == [0, 0, 2, 3, 3, 5, 5, 7]
    assert first_near_copies(rows[:1]).tolist() == [0]
    assert first_near_copies(rows[:0]).tolist() == []


def test_hnsw_runs_repeat() -> None:
    """hnswlib links rows in the order its threads reach them: with threaded insertion two runs
    on this pool differed in 3 to 111 pairs (2 cores). A small ef makes the pairs depend on the
    graph's every link."""

    def run() -> list[tuple[int, int, float]]:
        miner = HnswMiner(3000, 16, ef=20, ef_construction=20)
        found: list[tuple[int, int, float]] = []
        for start in range(0, 3000, 1000):
            batch = miner.add_and_query(x[start : start + 1000], 5)
            found += zip(batch.i.tolist(), batch.j.tolist(), batch.distance.tolist(), strict=True)
        return sorted(found)

    x = np.random.default_rng(0).standard_normal((3000, 16)).astype(np.float32)
    assert run() == run()
