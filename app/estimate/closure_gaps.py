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
"duplicate" brings |A| |B| pairs into the closure at once. The queue hands gaps out ahead of the
strata, the largest merge first, and the stopping rule waits for them. Which pairs are gaps
depends on the candidate judgements and the fit alone, never on what the random pairs found:
closing clusters only where a random pair happened to land would make the closure depend on the
random sample and bias its estimate of what the miner missed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from app.estimate.pairs import UNKNOWN, Candidates, Evidence

__all__ = ["GAP_PREDICTION", "closure_gaps"]

GAP_PREDICTION = 0.9  # a gap must be a near-certain duplicate


def closure_gaps(
    candidates: Candidates,
    evidence: Evidence,
    predict: Callable[[NDArray[np.int64]], NDArray[np.float64]],
    sampled: NDArray[np.bool_],
) -> NDArray[np.int64]:
    """Indices of the gap pairs, most non-candidate pairs settled first, then closest first.

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
    seen = float(candidates.distance[known].max())
    labels = evidence.clustering.labels
    size = np.bincount(labels).astype(np.int64)
    # Only pairs with a sample in a cluster of two or more can be gaps or links between the
    # clusters a gap merges: at 10^6 samples that is a small share of the candidates.
    clustered = size[labels] >= 2
    touch = np.flatnonzero(clustered[candidates.i] | clustered[candidates.j])
    open_ = (value[touch] == UNKNOWN) & (candidates.distance[touch] <= seen)
    open_ &= ~evidence.candidate_unsure[touch]  # judged "unsure" or tied: no answer to wait for
    open_[open_] = predict(touch[open_]) >= GAP_PREDICTION
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
