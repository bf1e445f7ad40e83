"""Candidate pairs whose judgement would grow a duplicate cluster: the closure's gaps.

The miner proposes each sample's k nearest earlier samples, so a cluster of m >> k copies (a
collapsed mode) holds C(m, 2) duplicate pairs of which the miner proposes about k m. The rest
reach the estimate in two ways: through the closure of confirmed judgements, exactly, or through
the random non-candidate pairs, as a Horvitz-Thompson estimate whose weight is tens of thousands
of pairs per random pair. Neyman allocation over distance strata does not see the difference: a
stratum of near-certain duplicates has almost no residual variance, so it is barely sampled,
the big clusters stay in pieces, and the interval is several times wider than the labels could
make it (bench/README.md, "collapse").

A gap is an unsettled candidate pair the fit calls a near-certain duplicate (P(duplicate |
distance) >= GAP_PREDICTION) whose two samples sit in different closure clusters, at least one
with two or more members, and the merge reaches pairs the miner never proposed: judging it
"duplicate" brings |A| |B| pairs into the closure at once. A mode nobody has judged yet is all
singletons, and a merge of two singletons settles only the pair itself; there a gap is a link of
a block of singletons that near-certain pairs hold together, when the block holds pairs the miner
did not propose: ten outputs of ~30 copies stopped with one of them in 26 singletons, its 210
unproposed pairs left to the random check, which met none. A block is what stays connected with
the bridges taken out (every link lies on a cycle of likely duplicates, as in a mode whose
copies each proposed several others); a chain of small clusters joined by single near pairs is
no block, and labelling such links outside the design biased the estimate by more than a
tenth of sd(D) (tests/test_estimate_incomplete.py). The queue hands gaps out ahead
of the strata, the largest merge first, and the stopping rule waits for them. Which pairs are gaps
depends on the candidate judgements and the fit alone, never on what the random pairs found:
closing clusters only where a random pair happened to land would make the closure depend on the
random sample and bias its estimate of what the miner missed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from app.estimate.bridges import bridge_cuts
from app.estimate.pairs import UNKNOWN, Candidates, Evidence

__all__ = ["GAP_PREDICTION", "closure_gaps"]

GAP_PREDICTION = 0.9  # a gap must be a near-certain duplicate
# Runs of singletons larger than this count as one block: a chain of small clusters joined by
# near pairs is a few samples, and the bridge search runs in Python (1.7 s for 500,000 links,
# a collapsed pool's mode of 10^5 copies before any of it is judged).
BLOCK_SEARCH_MAX = 64


def closure_gaps(
    candidates: Candidates,
    evidence: Evidence,
    predict: Callable[[NDArray[np.int64]], NDArray[np.float64]],
    sampled: NDArray[np.bool_],
    *,
    within: float = math.inf,
) -> NDArray[np.int64]:
    """Indices of the gap pairs, most non-candidate pairs settled first, then closest first.

    `within`, if known, is a distance beyond which `predict` is below GAP_PREDICTION
    (CrossFit.reach): only closer pairs are predicted, which at 10^6 samples are few.

    `predict` gives the cross-fitted P(duplicate | distance) of the candidates at some indices
    and `sampled` is the design's sample (incomplete.residual_frame). The fit is trusted only up
    to the farthest sampled pair: beyond it (early in a review, say) the monotone fit just
    carries its last level on. That pair may be a duplicate: in a pool collapsed onto a few
    outputs every candidate is one, and the fragments of each mode still need joining. A merge
    of clusters A and B settles |A| |B| pairs; the candidate pairs among them are estimated well
    from their distances already, so a gap counts only when the merge reaches pairs the miner
    did not propose (a third sample next to a confirmed pair usually is a candidate of both: no
    gap).
    """
    value = evidence.candidate_value
    known = sampled & (value != UNKNOWN)
    if not known.any():
        return np.zeros(0, dtype=np.int64)
    seen = min(float(candidates.distance[known].max()), within)
    labels = evidence.clustering.labels
    size = np.bincount(labels).astype(np.int64)
    clustered = size[labels] >= 2

    def likely(index: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Unsettled near-certain duplicates within the sampled distances."""
        out = (candidates.distance[index] <= seen) & (value[index] == UNKNOWN)
        out &= ~evidence.candidate_unsure[index]  # judged "unsure" or tied: no answer to wait for
        out[out] = predict(index[out]) >= GAP_PREDICTION
        return out

    merges = _cluster_merges(candidates, labels, size, clustered, likely)
    blocks = _singleton_blocks(candidates, clustered, likely, seen)
    return np.concatenate([merges, blocks])


def _cluster_merges(
    candidates: Candidates,
    labels: NDArray[np.int64],
    size: NDArray[np.int64],
    clustered: NDArray[np.bool_],
    likely: Callable[[NDArray[np.int64]], NDArray[np.bool_]],
) -> NDArray[np.int64]:
    """Gaps with a sample in a cluster of two or more: most pairs settled first."""
    # Only these pairs can be gaps or links between the clusters a gap merges: at 10^6
    # samples they are a small share of the candidates.
    touch = np.flatnonzero(clustered[candidates.i] | clustered[candidates.j])
    open_ = likely(touch)
    if not open_.any():
        return np.zeros(0, dtype=np.int64)
    a, b = labels[candidates.i[touch]], labels[candidates.j[touch]]
    across = a != b
    key = np.minimum(a, b) * np.int64(size.size) + np.maximum(a, b)
    linked, links = np.unique(key[across], return_counts=True)
    mine = across & open_
    idx, a, b, key = touch[mine], a[mine], b[mine], key[mine]
    gain = size[a] * size[b] - links[np.searchsorted(linked, key)]
    keep = gain >= 1
    idx, gain = idx[keep], gain[keep]
    order = np.lexsort((candidates.distance[idx], -gain))
    return np.asarray(idx[order], dtype=np.int64)


def _singleton_blocks(
    candidates: Candidates,
    clustered: NDArray[np.bool_],
    likely: Callable[[NDArray[np.int64]], NDArray[np.bool_]],
    seen: float,
) -> NDArray[np.int64]:
    """Gaps between two singletons: the near-certain pairs inside each block of singletons
    (bridges taken out; a run of more than BLOCK_SEARCH_MAX is one block) that holds pairs the
    miner did not propose, the largest block first, then closest first. Every step but the last
    works on the likely pairs alone (pairs within `seen`, from the distances sorted once): most
    calls end at the first."""
    order = candidates.cached(
        ("distance-order",), lambda: np.argsort(candidates.distance, kind="stable")
    )
    ordered = candidates.cached(("sorted-distance",), lambda: np.sort(candidates.distance))
    near = order[: int(np.searchsorted(ordered, seen, side="right"))]
    near = near[~clustered[candidates.i[near]] & ~clustered[candidates.j[near]]]
    edges = near[likely(near)]
    if edges.size < 3:  # a block with a pair the miner did not propose needs a cycle
        return np.zeros(0, dtype=np.int64)
    # Components first, then bridges only where a component has a cycle (a tree is all
    # bridges) and leaves pairs unproposed.
    group, members = _components(candidates, edges)
    links = np.bincount(group[candidates.i[edges]], minlength=members.size)
    cyclic = (links >= members) & (members >= 3)
    if not cyclic.any():
        return np.zeros(0, dtype=np.int64)
    cyclic &= _unproposed(candidates, group, np.where(cyclic, members, 0)) >= 1
    mine = group[candidates.i[edges]]
    large = edges[cyclic[mine] & (members[mine] > BLOCK_SEARCH_MAX)]
    small = edges[cyclic[mine] & (members[mine] <= BLOCK_SEARCH_MAX)]
    small = small[bridge_cuts(candidates.i[small], candidates.j[small]) == 0]
    if small.size >= 3:
        block, size = _components(candidates, small)
        small = small[_unproposed(candidates, block, size)[block[candidates.i[small]]] >= 1]
        small_size = size[block[candidates.i[small]]]
    else:
        small, small_size = small[:0], np.zeros(0, dtype=np.int64)
    idx = np.concatenate([large, small])
    size_of = np.concatenate([members[group[candidates.i[large]]], small_size])
    order = np.lexsort((candidates.distance[idx], -size_of))
    return np.asarray(idx[order], dtype=np.int64)


def _components(
    candidates: Candidates, edges: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Component of every sample in the graph of these candidate pairs (-1 for a sample on
    none of them), and each component's size."""
    nodes, ends = np.unique(
        np.concatenate([candidates.i[edges], candidates.j[edges]]), return_inverse=True
    )
    m = nodes.size
    graph = coo_array((np.ones(edges.size), (ends[: edges.size], ends[edges.size :])), (m, m))
    _, label = connected_components(graph, directed=False)
    group = np.full(candidates.n, -1, dtype=np.int64)
    group[nodes] = label
    return group, np.bincount(label).astype(np.int64)


def _unproposed(
    candidates: Candidates, group: NDArray[np.int64], members: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Per group of two or more samples: its pairs the miner did not propose."""
    sized = members >= 2
    inner = np.flatnonzero(group >= 0)
    keep = np.zeros(candidates.n, dtype=np.bool_)
    keep[inner[sized[group[inner]]]] = True
    pairs = np.flatnonzero(keep[candidates.i] & keep[candidates.j])
    inside = pairs[group[candidates.i[pairs]] == group[candidates.j[pairs]]]
    proposed = np.bincount(group[candidates.i[inside]], minlength=members.size)
    return np.where(sized, members * (members - 1) // 2 - proposed, 0)
