"""The pairs a review works on, and what the judgements say about each of them.

Two kinds of pairs carry labels: the miner's candidate pairs (its k nearest neighbours, with their
distances) and a uniform random sample of the pairs the miner did not propose, which checks what
it missed. Every pair gets a seeded uniform priority that depends only on (seed, i, j), never on
its distance or on when it was mined, so the review design can take pairs in priority order and
know the labelled subset of any distance stratum is a simple random sample of it.

`judge_evidence` turns the judgements into a value per pair: duplicate (1), distinct (0) or
unknown (-1). A pair's value is known when a human judged it or when the closure implies it: two
samples in one confirmed cluster are duplicates, and two clusters joined by a "not duplicate"
judgement (a cannot-link) are distinct everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.estimate.clusters import Clustering, cluster_judgements

__all__ = [
    "DISTINCT",
    "DUPLICATE",
    "UNKNOWN",
    "Candidates",
    "Evidence",
    "RandomPairs",
    "judge_evidence",
    "pair_fold",
    "pair_keys",
    "pair_priority",
]

DUPLICATE, DISTINCT, UNKNOWN = 1, 0, -1  # pair values; also the labels the adapter passes in

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_PRIORITY_SALT = 0x5EED_0001
_FOLD_SALT = 0x5EED_0002


def _splitmix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective, well-mixed 64-bit hash."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return np.asarray(z ^ (z >> np.uint64(31)), dtype=np.uint64)


def _ordered(i: ArrayLike, j: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    a = np.atleast_1d(np.asarray(i, dtype=np.int64))
    b = np.atleast_1d(np.asarray(j, dtype=np.int64))
    if a.shape != b.shape:
        raise ValueError("i and j must have the same shape")
    return np.minimum(a, b), np.maximum(a, b)


def _pair_hash(seed: int, salt: int, i: ArrayLike, j: ArrayLike) -> NDArray[np.uint64]:
    lo, hi = _ordered(i, j)
    key = np.uint64((int(seed) * 0x100000001 + salt) % 2**64)
    h = _splitmix64(np.full(lo.shape, key, dtype=np.uint64))
    h = _splitmix64(h ^ lo.astype(np.uint64))
    return _splitmix64(h ^ hi.astype(np.uint64))


def pair_priority(seed: int, i: ArrayLike, j: ArrayLike) -> NDArray[np.float64]:
    """Seeded uniform priority in [0, 1) of each pair (i, j); the same for (j, i).

    A hash of (seed, min(i, j), max(i, j)): independent of distance, of store ids and of the
    order pairs were mined in, so it needs no storage and survives an audit's extension.
    """
    h = _pair_hash(seed, _PRIORITY_SALT, i, j)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def pair_fold(seed: int, i: ArrayLike, j: ArrayLike, folds: int) -> NDArray[np.int64]:
    """Seeded fold 0..folds-1 of each pair for cross-fitting, independent of its priority."""
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    h = _pair_hash(seed, _FOLD_SALT, i, j)
    return (h % np.uint64(folds)).astype(np.int64)


def pair_keys(i: ArrayLike, j: ArrayLike, n: int) -> NDArray[np.int64]:
    """One integer per unordered pair: min(i, j) * n + max(i, j)."""
    lo, hi = _ordered(i, j)
    return lo * np.int64(n) + hi


def _validated_pairs(
    n: int, i: ArrayLike, j: ArrayLike, what: str
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    lo, hi = _ordered(i, j)
    if lo.size and (lo.min() < 0 or hi.max() >= n):
        raise ValueError(f"{what}: a sample index is out of range for n={n}")
    if np.any(lo == hi):
        raise ValueError(f"{what}: a pair joins a sample to itself")
    keys = np.sort(pair_keys(lo, hi, n))  # a sort and a look at neighbours: ~4x np.unique
    if np.any(keys[1:] == keys[:-1]):
        raise ValueError(f"{what}: a pair is listed twice")
    return lo, hi


@dataclass(frozen=True)
class Candidates:
    """The miner's candidate pairs of a pool of n samples: i < j, and their distances.

    Index k of every array is the same pair; the adapter keeps its own pair ids in that order.
    """

    n: int  # pool size
    i: NDArray[np.int64]
    j: NDArray[np.int64]
    distance: NDArray[np.float64]
    _cache: dict[Any, NDArray[Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def build(cls, n: int, i: ArrayLike, j: ArrayLike, distance: ArrayLike) -> Candidates:
        """Validated candidates: indices in range, no self-pairs or repeats, finite distances."""
        if isinstance(n, bool) or int(n) != n or n < 2:
            raise ValueError(f"n must be an integer >= 2, got {n!r}")
        lo, hi = _validated_pairs(int(n), i, j, "candidates")
        dist = np.atleast_1d(np.asarray(distance, dtype=np.float64))
        if dist.shape != lo.shape:
            raise ValueError("distance must have one value per pair")
        if not np.all(np.isfinite(dist)):
            raise ValueError("candidate distances must be finite")
        return cls(int(n), lo, hi, dist)

    def __len__(self) -> int:
        return int(self.i.size)

    def cached(self, key: Hashable, compute: Callable[[], NDArray[Any]]) -> NDArray[Any]:
        """compute() once per key: per-pair arrays that depend only on the pairs and the key."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def priorities(self, seed: int) -> NDArray[np.float64]:
        """pair_priority(seed, i, j) of every pair."""
        return self.cached(("priority", int(seed)), lambda: pair_priority(seed, self.i, self.j))

    def folds(self, seed: int, folds: int) -> NDArray[np.int64]:
        """pair_fold(seed, i, j, folds) of every pair."""
        return self.cached(
            ("fold", int(seed), int(folds)), lambda: pair_fold(seed, self.i, self.j, folds)
        )

    def keys(self) -> NDArray[np.int64]:
        return pair_keys(self.i, self.j, self.n)


@dataclass(frozen=True)
class RandomPairs:
    """A uniform random sample of non-candidate pairs, drawn in generations as the pool grows.

    Generation g was drawn uniformly from the non-candidate pairs (i < j) with
    pool_sizes[g-1] <= j < pool_sizes[g] (0 for g = 0), without replacement: after an
    extension, pairs that involve a new sample form a new generation (a new stratum).
    """

    i: NDArray[np.int64]
    j: NDArray[np.int64]
    distance: NDArray[np.float64]  # embedding distance; orders merges in the closure only
    generation: NDArray[np.int64]
    pool_sizes: tuple[int, ...] = field(default=())

    @classmethod
    def build(
        cls,
        n: int,
        i: ArrayLike,
        j: ArrayLike,
        distance: ArrayLike,
        generation: ArrayLike | None = None,
        pool_sizes: Sequence[int] = (),
    ) -> RandomPairs:
        """Validated random pairs; one generation covering the whole pool of n by default."""
        lo, hi = _validated_pairs(int(n), i, j, "random pairs")
        dist = np.atleast_1d(np.asarray(distance, dtype=np.float64))
        if dist.shape != lo.shape or not np.all(np.isfinite(dist)):
            raise ValueError("random pairs need one finite distance per pair")
        sizes = tuple(int(s) for s in pool_sizes) or (int(n),)
        if any(b <= a for a, b in zip((0, *sizes), sizes, strict=False)) or sizes[-1] > n:
            raise ValueError(f"pool_sizes must increase and end at most at n={n}, got {sizes}")
        gen = (
            np.zeros(lo.shape, dtype=np.int64)
            if generation is None
            else np.atleast_1d(np.asarray(generation, dtype=np.int64))
        )
        if gen.shape != lo.shape or (gen.size and (gen.min() < 0 or gen.max() >= len(sizes))):
            raise ValueError("generation must give each pair an index into pool_sizes")
        lower = np.asarray((0, *sizes[:-1]), dtype=np.int64)[gen]
        upper = np.asarray(sizes, dtype=np.int64)[gen]
        if np.any((hi < lower) | (hi >= upper)):
            raise ValueError("a random pair lies outside its generation's range of j")
        return cls(lo, hi, dist, gen, sizes)

    @classmethod
    def empty(cls, n: int) -> RandomPairs:
        none = np.empty(0, dtype=np.int64)
        return cls(none, none, np.empty(0, dtype=np.float64), none, (int(n),))

    def __len__(self) -> int:
        return int(self.i.size)


@dataclass(frozen=True)
class Evidence:
    """What the judgements say about every candidate and random pair, after the closure."""

    clustering: Clustering  # closure of "duplicate" judgements under "not duplicate" ones
    candidate_label: NDArray[np.int8]  # the resolved judgement: DUPLICATE, DISTINCT or UNKNOWN
    candidate_value: NDArray[np.int8]  # judged or implied: DUPLICATE, DISTINCT or UNKNOWN
    random_label: NDArray[np.int8]
    random_value: NDArray[np.int8]
    # Pairs judged "unsure" (or tied): the design passes over them (missing at random).
    random_unsure: NDArray[np.bool_]
    candidate_unsure: NDArray[np.bool_]

    @property
    def candidate_labelled(self) -> NDArray[np.bool_]:
        return np.asarray(self.candidate_label != UNKNOWN)

    @property
    def random_labelled(self) -> NDArray[np.bool_]:
        return np.asarray(self.random_label != UNKNOWN)

    @property
    def labelled(self) -> int:
        """Judged pairs (duplicate or distinct), candidates and random pairs together."""
        return int(self.candidate_labelled.sum() + self.random_labelled.sum())


def _labels(values: ArrayLike | None, size: int, what: str) -> NDArray[np.int8]:
    if values is None:
        return np.full(size, UNKNOWN, dtype=np.int8)
    out = np.atleast_1d(np.asarray(values, dtype=np.int8))
    if out.shape != (size,):
        raise ValueError(f"{what}: one label per pair expected, got shape {out.shape}")
    if out.size and (out.min() < UNKNOWN or out.max() > DUPLICATE):  # -1, 0, 1 and nothing else
        raise ValueError(f"{what}: labels must be 1 (duplicate), 0 (distinct) or -1 (none)")
    return out


def judge_evidence(
    candidates: Candidates,
    candidate_labels: ArrayLike | None,
    random_pairs: RandomPairs | None = None,
    random_labels: ArrayLike | None = None,
    random_unsure: ArrayLike | None = None,
    candidate_unsure: ArrayLike | None = None,
) -> Evidence:
    """Values of all pairs from one resolved label per pair (1 duplicate, 0 distinct, -1 none).

    Resolve several annotators' votes (and "unsure", which is -1) before calling;
    `random_unsure` and `candidate_unsure` mark the pairs whose resolved label is "unsure" or a
    tie (the design passes over them instead of waiting for them). The closure
    is built from candidate judgements only: the random non-candidate pairs must stay a
    uniform sample *given* the closure, so that their duplicates estimate what it misses
    without counting twice the pairs one of them would join (cluster a whole pool's labels with
    clusters.cluster_judgements for display). A random pair's value is its own label, or what
    the closure implies when it has none.
    """
    n = candidates.n
    rand = random_pairs if random_pairs is not None else RandomPairs.empty(n)
    if rand.i.size and rand.j.max() >= n:
        raise ValueError("a random pair has an index out of range for the pool")
    c_lab = _labels(candidate_labels, len(candidates), "candidate_labels")
    r_lab = _labels(random_labels, len(rand), "random_labels")
    i, j, d = candidates.i, candidates.j, candidates.distance
    dup, dis = c_lab == DUPLICATE, c_lab == DISTINCT
    clustering = cluster_judgements(
        n,
        zip(i[dup].tolist(), j[dup].tolist(), d[dup].tolist(), strict=True),
        zip(i[dis].tolist(), j[dis].tolist(), strict=True),
    )
    cl = clustering.labels
    # Cannot-links between clusters, as keys of unordered cluster pairs.
    n_cl = np.int64(int(cl.max()) + 1)
    forbidden = np.unique(
        np.minimum(cl[i[dis]], cl[j[dis]]) * n_cl + np.maximum(cl[i[dis]], cl[j[dis]])
    )

    # Only a pair of two samples that both sit in a cluster of two or more, or in a cluster
    # with a cannot-link, can have an implied value: look at those alone (most candidate pairs
    # join two untouched samples, 5 * 10^6 of them at 10^6 samples).
    marked = np.bincount(cl, minlength=int(n_cl)) >= 2
    marked[cl[i[dis]]] = True
    marked[cl[j[dis]]] = True
    involved = marked[cl]

    def implied(pi: NDArray[np.int64], pj: NDArray[np.int64]) -> NDArray[np.int8]:
        out = np.full(pi.size, UNKNOWN, dtype=np.int8)
        at = np.flatnonzero(involved[pi] & involved[pj])
        a, b = cl[pi[at]], cl[pj[at]]
        part = np.full(at.size, UNKNOWN, dtype=np.int8)
        if forbidden.size:
            keys = np.minimum(a, b) * n_cl + np.maximum(a, b)
            pos = np.minimum(np.searchsorted(forbidden, keys), forbidden.size - 1)
            part[forbidden[pos] == keys] = DISTINCT
        part[a == b] = DUPLICATE
        out[at] = part
        return out

    c_val = implied(i, j)
    c_val[(c_lab != UNKNOWN) & (c_val == UNKNOWN)] = DISTINCT  # judged, not merged: refused
    r_val = np.where(r_lab != UNKNOWN, r_lab, implied(rand.i, rand.j)).astype(np.int8)
    r_unsure = _flags(random_unsure, len(rand), "random_unsure")
    c_unsure = _flags(candidate_unsure, len(candidates), "candidate_unsure")
    return Evidence(
        clustering=clustering,
        candidate_label=c_lab,
        candidate_value=c_val,
        random_label=r_lab,
        random_value=r_val,
        random_unsure=r_unsure & (r_val == UNKNOWN),
        candidate_unsure=c_unsure & (c_val == UNKNOWN),
    )


def _flags(values: ArrayLike | None, size: int, what: str) -> NDArray[np.bool_]:
    if values is None:
        return np.zeros(size, dtype=np.bool_)
    out = np.atleast_1d(np.asarray(values, dtype=np.bool_))
    if out.shape != (size,):
        raise ValueError(f"{what}: one flag per pair expected, got shape {out.shape}")
    return out
