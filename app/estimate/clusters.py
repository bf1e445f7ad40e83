"""Clusters of samples from human judgements: the closure of "duplicate" under "not duplicate".

A "duplicate" judgement on (i, j) says the two samples are one output of the generator; clusters
are the transitive closure of these. A "not duplicate" judgement is a cannot-link: a merge that
would put its two samples in one cluster is blocked. One false "yes" between clusters of a and b
samples would add a * b pairs to D, so the pairs only the closure asserts (implied) are counted
apart from the ones a human confirmed (direct) and should be sent to review.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Clustering", "cluster_judgements"]


@dataclass(frozen=True)
class Clustering:
    """Clusters of a pool of n samples, with how much of D the humans confirmed directly."""

    n: int  # pool size
    labels: NDArray[np.int64]  # labels[i]: cluster id of sample i, 0..n_clusters-1, singletons too
    clusters: tuple[tuple[int, ...], ...]  # members of clusters with >= 2 samples, largest first
    d: int  # D = sum_c C(n_c, 2): colliding pairs in the closure
    direct_pairs: int  # distinct "duplicate" pairs that ended up inside one cluster
    implied_pairs: int  # D - direct_pairs: pairs asserted only by transitivity
    blocked: tuple[tuple[int, int, float], ...]  # (i, j, distance) merges refused by a cannot-link

    @property
    def sizes(self) -> tuple[int, ...]:
        """Sizes n_c of the clusters with >= 2 members, largest first."""
        return tuple(len(c) for c in self.clusters)

    def members(self, i: int) -> tuple[int, ...]:
        """All samples in sample i's cluster, i included, in increasing order."""
        if not 0 <= i < self.n:
            raise ValueError(f"sample index {i} out of range for n={self.n}")
        label = int(self.labels[i])
        # Ids are ranked by size, so the clusters with >= 2 members come first.
        return self.clusters[label] if label < len(self.clusters) else (i,)

    def size_per_sample(self) -> NDArray[np.int64]:
        """n_c(i) for every sample i (1 for singletons), the input of the jackknife."""
        counts = np.bincount(self.labels)
        return np.asarray(counts[self.labels], dtype=np.int64)


def _pair(i: int, j: int, n: int) -> tuple[int, int]:
    """Validated pair with i < j."""
    if isinstance(i, bool) or isinstance(j, bool) or int(i) != i or int(j) != j:
        raise ValueError(f"pair ({i}, {j}): indices must be integers")
    i, j = int(i), int(j)
    if not (0 <= i < n and 0 <= j < n):
        raise ValueError(f"pair ({i}, {j}) has an index out of range for n={n}")
    if i == j:
        raise ValueError(f"pair ({i}, {j}) joins a sample to itself")
    return (i, j) if i < j else (j, i)


class _CannotLinkUnionFind:
    """Union-find whose roots remember which other roots they must never join.

    Sparse: only samples a judgement touched have an entry (a pool of 10^6 samples holds a few
    thousand judged ones), every other sample is its own root.
    """

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.size: dict[int, int] = {}  # roots of components with >= 2 members
        self.forbidden: dict[int, set[int]] = {}  # root -> roots it has a cannot-link with

    def find(self, x: int) -> int:
        root = x
        while (up := self.parent.get(root, root)) != root:
            root = up
        while x != root:  # path compression
            nxt = self.parent[x]
            self.parent[x] = root
            x = nxt
        return root

    def forbid(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        self.forbidden.setdefault(a, set()).add(b)
        self.forbidden.setdefault(b, set()).add(a)

    def union(self, i: int, j: int) -> bool:
        """Merge the components of i and j; False (nothing changed) if a cannot-link forbids it."""
        a, b = self.find(i), self.find(j)
        if a == b:
            return True
        if b in self.forbidden.get(a, ()):
            return False
        if self.size.get(a, 1) < self.size.get(b, 1):
            a, b = b, a
        self.parent[b] = a
        self.size[a] = self.size.get(a, 1) + self.size.pop(b, 1)
        absorbed = self.forbidden.pop(b, set())
        for other in absorbed:  # keep every forbidden set keyed by live roots
            partners = self.forbidden[other]
            partners.discard(b)
            partners.add(a)
        if absorbed:
            self.forbidden.setdefault(a, set()).update(absorbed)
        return True


def cluster_judgements(
    n: int,
    duplicates: Iterable[tuple[int, int, float]],
    distinct: Iterable[tuple[int, int]] = (),
) -> Clustering:
    """Cluster n samples from "duplicate" pairs (i, j, distance) and "not duplicate" pairs (i, j).

    Duplicate pairs are merged in ascending distance (ties by (i, j)), so the result does not
    depend on input order and, when pairs conflict through a cannot-link, the closest (most
    confident) merges win and the later ones are blocked. All cannot-links hold from the start;
    a pair judged both duplicate and not duplicate is blocked (resolve votes before calling if a
    majority should decide). A pair repeated in `duplicates` counts once, at its smallest distance.
    """
    if isinstance(n, bool) or int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    n = int(n)
    best: dict[tuple[int, int], float] = {}
    for i, j, distance in duplicates:
        key = _pair(i, j, n)
        dist = float(distance)
        if not math.isfinite(dist):
            raise ValueError(f"pair {key} has a non-finite distance {distance!r}")
        if key not in best or dist < best[key]:
            best[key] = dist
    uf = _CannotLinkUnionFind()
    for i, j in distinct:
        a, b = _pair(i, j, n)
        uf.forbid(a, b)
    blocked: list[tuple[int, int, float]] = []
    for (i, j), dist in sorted(best.items(), key=lambda kv: (kv[1], kv[0])):
        if not uf.union(i, j):
            blocked.append((i, j, dist))
    return _clustering(n, uf, best, blocked)


def _clustering(
    n: int,
    uf: _CannotLinkUnionFind,
    confirmed: dict[tuple[int, int], float],
    blocked: Sequence[tuple[int, int, float]],
) -> Clustering:
    groups: dict[int, list[int]] = {}
    for x in sorted(uf.parent.keys() | uf.size.keys()):  # members of clusters of two or more
        groups.setdefault(uf.find(x), []).append(x)
    # Number clusters by size (largest first), then by smallest member, so ids are reproducible:
    # the clusters of two or more first, then the singletons in sample order.
    clusters = tuple(
        tuple(members)
        for members in sorted(
            (m for m in groups.values() if len(m) >= 2), key=lambda m: (-len(m), m[0])
        )
    )
    in_cluster = np.zeros(n, dtype=np.bool_)
    rank_of: dict[int, int] = {}
    for rank, members in enumerate(clusters):
        in_cluster[list(members)] = True
        rank_of.update(dict.fromkeys(members, rank))
    labels = np.arange(n, dtype=np.int64) + len(clusters) - np.cumsum(in_cluster)
    if rank_of:
        labels[np.fromiter(rank_of, dtype=np.int64)] = np.fromiter(rank_of.values(), dtype=np.int64)
    labels.flags.writeable = False  # the result is frozen; members() relies on these ids
    d = sum(len(c) * (len(c) - 1) // 2 for c in clusters)
    direct = sum(1 for i, j in confirmed if labels[i] == labels[j])
    return Clustering(
        n=n,
        labels=labels,
        clusters=clusters,
        d=d,
        direct_pairs=direct,
        implied_pairs=d - direct,
        blocked=tuple(blocked),
    )
