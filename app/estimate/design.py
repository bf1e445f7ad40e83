"""The review design: which candidate pairs count as sampled, and with what probability.

Every candidate pair has a seeded uniform priority u (pairs.pair_priority), independent of its
distance. The design keeps a reach threshold t(d), a step function of distance: a pair is
*reached* when u <= t(d). Within a run of distances where t is constant, the reached pairs are
therefore, given their number, a simple random sample of the pairs in that run (a post-stratum),
whatever the labels said and however the run came to have that threshold. The queue raises t on
one allocation stratum at a time, handing out pairs in priority order; pairs whose value the
closure already implies are reached for free.

Allocation strata are distance bands whose sizes grow geometrically away from a centre rank:
from the closest pairs at first, then from where duplicates stop once labels show it (denser
there). Re-deriving them only adds cut points to t; thresholds are kept, so the inclusion
probabilities stay exact for what was actually sampled.

The non-candidate pairs are sampled uniformly by the job (`sample_noncandidate_pairs`), a
generation per pool size, and reviewed in priority order as one more stratum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.estimate.pairs import Candidates
from app.estimate.ranges import run_positions

__all__ = [
    "ReviewDesign",
    "candidate_strata",
    "derive_edges",
    "inclusion",
    "new_design",
    "piece_of",
    "piece_post_strata",
    "piece_sizes",
    "piece_strata",
    "post_strata",
    "queue_order",
    "reach",
    "reached",
    "sample_noncandidate_pairs",
    "stratum_of",
    "update_design",
]

REDERIVE_GROWTH = 1.25  # re-derive the strata when the candidates grew by this factor
RECENTRE_SHIFT = 0.25  # ... or when the centre's rank moved by this share


@dataclass(frozen=True)
class ReviewDesign:
    """State of one audit's review design: small, JSON-serialisable, stored per audit."""

    seed: int  # priorities are pair_priority(seed, i, j)
    edges: tuple[float, ...]  # allocation strata: h covers edges[h-1] <= d < edges[h]
    breaks: tuple[float, ...]  # cut points of the reach threshold t(d); contains edges
    thresholds: tuple[float, ...]  # t on each of the len(breaks) + 1 pieces
    derived_for: int  # number of candidates when the edges were last derived
    centre: float | None  # distance the strata are centred on (where duplicates stop)
    random_share: float  # share of labels spent on random non-candidate pairs
    random_min: int  # random pairs to judge before stopping (fewer if fewer were drawn)
    min_per_stratum: int  # pairs every stratum must reach before the estimate is trusted

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "edges": list(self.edges),
            "breaks": list(self.breaks),
            "thresholds": list(self.thresholds),
            "derived_for": self.derived_for,
            "centre": self.centre,
            "random_share": self.random_share,
            "random_min": self.random_min,
            "min_per_stratum": self.min_per_stratum,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReviewDesign:
        design = cls(
            seed=int(data["seed"]),
            edges=tuple(float(x) for x in data["edges"]),
            breaks=tuple(float(x) for x in data["breaks"]),
            thresholds=tuple(float(x) for x in data["thresholds"]),
            derived_for=int(data["derived_for"]),
            centre=None if data.get("centre") is None else float(data["centre"]),
            random_share=float(data["random_share"]),
            random_min=int(data["random_min"]),
            min_per_stratum=int(data["min_per_stratum"]),
        )
        _check(design)
        return design

    @property
    def strata(self) -> int:
        return len(self.edges) + 1


def _check(design: ReviewDesign) -> None:
    if list(design.breaks) != sorted(set(design.breaks)):
        raise ValueError("breaks must be strictly increasing")
    if not set(design.edges) <= set(design.breaks):
        raise ValueError("every stratum edge must be a break of the threshold")
    if len(design.thresholds) != len(design.breaks) + 1:
        raise ValueError("one threshold per piece expected")
    if not all(0.0 <= t <= 1.0 for t in design.thresholds):
        raise ValueError("thresholds must lie in [0, 1]")
    if not 0.0 <= design.random_share < 1.0:
        raise ValueError("random_share must lie in [0, 1)")
    if design.random_min < 0:
        raise ValueError("random_min must be >= 0")
    if design.min_per_stratum < 1:
        raise ValueError("min_per_stratum must be >= 1")


def derive_edges(
    distances: ArrayLike, centre: float | None = None, base: int = 4, growth: float = 2.0
) -> tuple[float, ...]:
    """Strata cut points: bands of base, base*growth, ... pairs going away from the centre.

    Small bands at the closest pairs matter when duplicates are few: five draws from a band of
    sixteen pairs that holds all three duplicates miss them 29% of the time.

    Without a centre the bands start at the closest pair (where duplicates are); with one
    (the distance where duplicates stop) they grow both ways from it, so that the strata are
    finest where the duplicate rate changes. Cut points fall midway between distinct
    distances, so tied pairs share a stratum.
    """
    d = np.sort(np.asarray(distances, dtype=np.float64))
    if d.size < 2:
        return ()
    if base < 1 or growth <= 1.0:
        raise ValueError("base must be >= 1 and growth > 1")
    c = 0 if centre is None else int(np.searchsorted(d, centre))
    ranks: set[int] = {c} if 0 < c < d.size else set()
    width = float(base)
    up, down = c, c
    while up < d.size or down > 0:
        up, down = up + math.ceil(width), down - math.ceil(width)
        ranks.update(r for r in (up, down) if 0 < r < d.size)
        width *= growth
    cuts = {(d[r - 1] + d[r]) / 2.0 for r in sorted(ranks) if d[r - 1] < d[r]}
    return tuple(sorted(float(x) for x in cuts))


def new_design(
    candidates: Candidates,
    seed: int,
    *,
    random_share: float = 0.05,
    random_min: int = 20,
    min_per_stratum: int = 5,
) -> ReviewDesign:
    """A fresh design: strata from the closest pairs outwards, nothing reached yet."""
    edges = derive_edges(candidates.distance)
    design = ReviewDesign(
        seed=int(seed),
        edges=edges,
        breaks=edges,
        thresholds=(0.0,) * (len(edges) + 1),
        derived_for=len(candidates),
        centre=None,
        random_share=float(random_share),
        random_min=int(random_min),
        min_per_stratum=int(min_per_stratum),
    )
    _check(design)
    return design


def _threshold_at(design: ReviewDesign, points: NDArray[np.float64]) -> NDArray[np.float64]:
    pieces = np.searchsorted(np.asarray(design.breaks), points, side="right")
    return np.asarray(design.thresholds, dtype=np.float64)[pieces]


def update_design(
    design: ReviewDesign, candidates: Candidates, centre: float | None = None
) -> ReviewDesign:
    """Re-derive the strata when the candidates grew by 25% or the centre (where duplicates
    stop, e.g. incomplete.duplicates_stop) moved by a quarter of its rank.

    The new edges are added to the threshold's cut points; each new piece keeps the threshold
    it had, so everything reached stays reached with the same probability. Small moves are
    ignored so that the pieces do not fragment into post-strata too small to sample.
    """
    grew = len(candidates) >= REDERIVE_GROWTH * max(design.derived_for, 1)
    moved = False
    if centre is not None:
        d = candidates.distance
        new_rank = int(np.sum(d < centre))
        old_rank = None if design.centre is None else int(np.sum(d < design.centre))
        moved = old_rank is None or abs(new_rank - old_rank) > RECENTRE_SHIFT * max(old_rank, 16)
    if not (grew or moved):
        return design
    centre = centre if centre is not None else design.centre
    edges = derive_edges(candidates.distance, centre)
    breaks = np.asarray(sorted(set(design.breaks) | set(edges)), dtype=np.float64)
    # Each new piece's threshold is the old one at its lower end (pieces only split).
    lower = np.concatenate([[-np.inf], breaks])
    old = _threshold_at(design, lower)
    merged = replace(
        design,
        edges=edges,
        breaks=tuple(float(b) for b in breaks),
        thresholds=tuple(float(t) for t in old),
        derived_for=len(candidates),
        centre=centre,
    )
    _check(merged)
    return merged


def stratum_of(design: ReviewDesign, distances: ArrayLike) -> NDArray[np.int64]:
    """Allocation stratum of each distance."""
    d = np.asarray(distances, dtype=np.float64)
    return np.searchsorted(np.asarray(design.edges), d, side="right").astype(np.int64)


def _cut(candidates: Candidates, cuts: tuple[float, ...]) -> NDArray[np.int64]:
    """Index of the band between cut points of every candidate (cached per set of cuts)."""
    return candidates.cached(
        ("cut", cuts),
        lambda: np.searchsorted(np.asarray(cuts), candidates.distance, side="right").astype(
            np.int64
        ),
    )


def candidate_strata(design: ReviewDesign, candidates: Candidates) -> NDArray[np.int64]:
    """Allocation stratum of every candidate."""
    return _cut(candidates, design.edges)


def queue_order(design: ReviewDesign, candidates: Candidates) -> NDArray[np.int64]:
    """All candidates sorted by (allocation stratum, priority): the order pairs are reached."""
    h = candidate_strata(design, candidates)
    u = candidates.priorities(design.seed)
    # lexsort, not argsort(h + u): h + u rounds, and a stratum's block must be sorted exactly.
    return candidates.cached(("queue", design.seed, design.edges), lambda: np.lexsort((u, h)))


def queue_priorities(design: ReviewDesign, candidates: Candidates) -> NDArray[np.float64]:
    """Priorities in queue_order (cached: each stratum searches its block for where its
    threshold stands)."""
    order = queue_order(design, candidates)
    return candidates.cached(
        ("queue-priority", design.seed, design.edges),
        lambda: candidates.priorities(design.seed)[order],
    )


def piece_sizes(design: ReviewDesign, candidates: Candidates) -> NDArray[np.int64]:
    """Candidates per threshold piece (cached per set of breaks)."""
    return candidates.cached(
        ("piece-size", design.breaks),
        lambda: np.bincount(piece_of(design, candidates), minlength=len(design.breaks) + 1),
    )


def _piece_order(design: ReviewDesign, candidates: Candidates) -> NDArray[np.int64]:
    """All candidates sorted by (piece, priority): a piece's reached pairs are a prefix of its
    block. Cached per set of breaks; pieces split allocation strata, so a stable sort by piece
    of the queue order (stratum, priority) gives it without sorting priorities again."""

    def build() -> NDArray[np.int64]:
        queue = queue_order(design, candidates)
        return queue[np.argsort(piece_of(design, candidates)[queue], kind="stable")]

    return candidates.cached(("piece-order", design.seed, design.edges, design.breaks), build)


def reached(design: ReviewDesign, candidates: Candidates) -> NDArray[np.bool_]:
    """Pairs the design has sampled: priority <= the threshold at their distance.

    A binary search per piece in its priority-sorted block, for all pieces at once: after each
    label the thresholds move, and comparing all 5 * 10^6 priorities at 10^6 samples cost more
    than the rest of the review's bookkeeping together.
    """
    order = _piece_order(design, candidates)
    u = candidates.priorities(design.seed)
    t = np.asarray(design.thresholds, dtype=np.float64)
    start = np.concatenate([[0], np.cumsum(piece_sizes(design, candidates))]).astype(np.int64)
    lo, hi = start[:-1].copy(), start[1:].copy()  # the first priority above t lies in [lo, hi]
    while np.any(searching := lo < hi):
        mid = (lo + hi) // 2
        below = searching & (u[order[np.minimum(mid, order.size - 1)]] <= t)
        lo = np.where(below, mid + 1, lo)
        hi = np.where(searching & ~below, mid, hi)
    out = np.zeros(len(candidates), dtype=np.bool_)
    out[order[run_positions(start[:-1], lo - start[:-1])]] = True
    return out


def piece_of(design: ReviewDesign, candidates: Candidates) -> NDArray[np.int64]:
    """Threshold piece (between consecutive breaks) of every candidate.

    Strata and post-strata are unions of pieces: sums per piece, taken in one pass over the
    pairs, give both (piece_strata, piece_post_strata).
    """
    return _cut(candidates, design.breaks)


def piece_strata(design: ReviewDesign) -> NDArray[np.int64]:
    """Allocation stratum of each piece (edges are breaks, so a piece lies in one stratum)."""
    lower = np.concatenate([[-np.inf], np.asarray(design.breaks, dtype=np.float64)])
    return np.searchsorted(np.asarray(design.edges), lower, side="right").astype(np.int64)


def piece_post_strata(design: ReviewDesign) -> NDArray[np.int64]:
    """Post-stratum of each piece: maximal runs of pieces with equal threshold."""
    t = np.asarray(design.thresholds)
    return np.concatenate([[0], np.cumsum(t[1:] != t[:-1])]).astype(np.int64)


def post_strata(design: ReviewDesign, candidates: Candidates) -> NDArray[np.int64]:
    """Post-stratum of each pair: maximal runs of pieces with equal threshold.

    Given how many pairs of a post-stratum were reached, they are a simple random sample of it.
    """
    return piece_post_strata(design)[piece_of(design, candidates)]


def inclusion(design: ReviewDesign, candidates: Candidates) -> NDArray[np.float64]:
    """Inclusion probability of each pair given the reached count of its post-stratum, r_g/N_g."""
    g = post_strata(design, candidates)
    hit = reached(design, candidates)
    size = np.bincount(g, minlength=int(g.max(initial=0)) + 1)
    got = np.bincount(g, weights=hit, minlength=size.size)
    return np.asarray(got[g] / size[g], dtype=np.float64)


def reach(design: ReviewDesign, stratum: int, priority: float) -> ReviewDesign:
    """Raise the threshold on every piece of a stratum to at least `priority`."""
    if not 0 <= stratum < design.strata:
        raise ValueError(f"stratum {stratum} out of range 0..{design.strata - 1}")
    t = np.asarray(design.thresholds, dtype=np.float64)
    t = np.where(piece_strata(design) == stratum, np.maximum(t, priority), t)
    return replace(design, thresholds=tuple(float(x) for x in t))


def _triangle_decode(index: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Pair number k in the order (0,1), (0,2), (1,2), (0,3), ... to (i, j): k = C(j,2) + i."""
    j = np.floor((1.0 + np.sqrt(1.0 + 8.0 * index.astype(np.float64))) / 2.0).astype(np.int64)
    j = np.where(j * (j - 1) // 2 > index, j - 1, j)  # fix rounding at the edges
    j = np.where((j + 1) * j // 2 <= index, j + 1, j)
    return index - j * (j - 1) // 2, j


def sample_noncandidate_pairs(
    n: int,
    candidate_pairs: Iterable[tuple[int, int]] | NDArray[np.int64],
    m: int,
    rng: np.random.Generator,
    *,
    new_from: int = 0,
) -> NDArray[np.int64]:
    """m pairs (i < j) drawn uniformly without replacement from the non-candidate pairs with
    new_from <= j < n; fewer if there are fewer. Rows of the (m, 2) result are sorted by (j, i).

    new_from = the previous pool size draws a new generation after an extension.
    """
    if n < 2 or not 0 <= new_from < n or m < 0:
        raise ValueError(f"need n >= 2, 0 <= new_from < n and m >= 0 (n={n}, new_from={new_from})")
    listed = candidate_pairs if isinstance(candidate_pairs, np.ndarray) else list(candidate_pairs)
    cand = np.asarray(listed, dtype=np.int64).reshape(-1, 2)
    first = new_from * (new_from - 1) // 2  # pairs with j < new_from come first in the order
    total = n * (n - 1) // 2 - first
    lo, hi = np.minimum(cand[:, 0], cand[:, 1]), np.maximum(cand[:, 0], cand[:, 1])
    inside = hi >= new_from
    taken = np.unique(hi[inside] * (hi[inside] - 1) // 2 + lo[inside])
    population = total - taken.size
    m = min(m, population)
    if m == 0:
        return np.empty((0, 2), dtype=np.int64)
    if population <= 4 * m:  # small population: choose among the free indices directly
        free = np.setdiff1d(np.arange(first, first + total, dtype=np.int64), taken)
        chosen = rng.choice(free, size=m, replace=False)
    else:  # rejection: each round keeps fresh, non-candidate indices
        chosen = np.empty(0, dtype=np.int64)
        while chosen.size < m:
            draw = rng.integers(first, first + total, size=2 * (m - chosen.size) + 8)
            draw = draw[~np.isin(draw, taken) & ~np.isin(draw, chosen)]
            _, keep = np.unique(draw, return_index=True)
            chosen = np.concatenate([chosen, draw[np.sort(keep)]])[:m]
    chosen = np.sort(chosen)
    i, j = _triangle_decode(chosen)
    return np.stack([i, j], axis=1)
