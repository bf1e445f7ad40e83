"""Secondary figures beside N_eff, on the same pool and embeddings, each named for what it is:
the paper's batch view, the uniform-model MLE from batch indicators, Chao1 and the Vendi scores.

They answer other questions than N_eff (richness, label-free diversity, the paper's protocol), so
they are shown next to it, never folded into it.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field

from app.estimate import (
    chao1_from_pool,
    cluster_judgements,
    pool_batch_view,
    s50,
    uniform_batch_mle,
    vendi_scores,
)
from app.jobs.audit import EmbeddingCache
from app.services.estimates import assess
from app.services.review_state import load_review
from app.services.single_flight import SingleFlight
from app.store import pairs as pair_store
from app.store.db import Database

VENDI_FULL_DIM = 2048  # up to this embedding size the Gram matrix covers the whole pool
VENDI_SUBSAMPLE = 4000  # otherwise a seeded subsample of this many samples


class PaperView(BaseModel):
    s50: int | None = Field(
        description="Smallest batch size s whose batches drawn from the pool hold a confirmed "
        "duplicate with probability >= 1/2 (exact over the pool); null if even the whole pool "
        "falls short."
    )
    paper_support: int | None = Field(
        description="The paper's 'support ~ s50^2'. For a uniform distribution on N outputs, "
        "s50^2 ~ 1.39 N; for clumped mass it is no support estimate at all."
    )


class BatchMLEPublic(BaseModel):
    batch_size: int | None = Field(description="Size s of the disjoint batches cut from the pool.")
    batches: int
    with_duplicate: int = Field(description="Batches holding a confirmed duplicate pair.")
    n_hat: float | None = Field(
        description="Uniform-model MLE of N; null without interior maximum."
    )
    low: float | None = Field(description="Profile-likelihood bound; null: unbounded.")
    high: float | None


class Chao1Public(BaseModel):
    estimate: float = Field(description="Bias-corrected Chao1: a lower bound on richness.")
    low: float
    high: float = Field(description="Log-normal interval.")
    observed: int = Field(description="Distinct outputs seen: confirmed clusters and singletons.")
    f1: int
    f2: int


class VendiPublic(BaseModel):
    order1: float = Field(description="exp(entropy) of the cosine kernel's eigenvalues.")
    order2: float = Field(description="Inverse Simpson of the eigenvalues; <= order1.")
    samples: int = Field(description="Embeddings used: the whole pool or a seeded subsample.")


class SecondaryPublic(BaseModel):
    """Figures beside N_eff; none of them replaces it."""

    n: int
    level: float
    paper: PaperView
    batch_mle: BatchMLEPublic
    chao1: Chao1Public
    vendi: VendiPublic | None = Field(
        description="Label-free diversity of the embeddings (cannot exceed n); null when the "
        "pool's embeddings are no longer cached."
    )


Labelled = list[tuple[int, int, float, str]]


def _labelled(db: Database, audit_id: int, n: int) -> Labelled:
    """Every labelled pair of the pool (any origin): i, j, distance, label."""
    with db.read() as session:
        labelled = pair_store.labelled_pairs(session, audit_id)
    return sorted((int(i), int(j), float(d), str(label)) for i, j, d, label in labelled if j < n)


def _cluster_sizes(n: int, labelled: Labelled) -> tuple[list[int], NDArray[np.int64]]:
    """Sizes of the confirmed clusters and each sample's cluster label over the pool."""
    clustering = cluster_judgements(
        n,
        [(i, j, d) for i, j, d, label in labelled if label == "duplicate"],
        [(i, j) for i, j, _, label in labelled if label == "distinct"],
    )
    return [s for s in clustering.sizes if s >= 2], clustering.labels


def _batch_mle(labels: NDArray[np.int64], s: int | None, seed: int, level: float) -> BatchMLEPublic:
    """Disjoint batches of s cut from a seeded shuffle of the pool: i.i.d. samples make them
    independent fresh batches, as in the paper's protocol."""
    n = labels.size
    if s is None or s < 2 or n // s < 2:
        return BatchMLEPublic(
            batch_size=s, batches=0, with_duplicate=0, n_hat=None, low=None, high=None
        )
    order = np.random.default_rng([seed, 0xBA7C]).permutation(n)
    m = n // s
    batches = labels[order[: m * s]].reshape(m, s)
    hits = np.array([np.unique(b).size < s for b in batches], dtype=np.int64)
    mle = uniform_batch_mle(np.full(m, s), hits, level)
    return BatchMLEPublic(
        batch_size=s,
        batches=m,
        with_duplicate=int(hits.sum()),
        n_hat=mle.n_hat,
        low=mle.low,
        high=mle.high,
    )


_vendi_cache: dict[tuple[str, int, int], VendiPublic] = {}
_vendi_lock = threading.Lock()
_vendi_computing = SingleFlight()
CACHED_FIGURES = 16
_figures_cache: OrderedDict[tuple[object, ...], tuple[PaperView, BatchMLEPublic, Chao1Public]] = (
    OrderedDict()
)


def _vendi(directory: Path, n: int, seed: int) -> VendiPublic | None:
    cache = EmbeddingCache(directory) if directory.exists() else None
    if cache is None:
        return None
    spans = sorted(s for s in cache.spans() if s[1] <= n)
    covered = np.zeros(n, dtype=bool)
    parts: list[tuple[int, int]] = []
    for start, stop in spans:
        if not covered[start:stop].any():
            parts.append((start, stop))
            covered[start:stop] = True
    if not covered.all():
        return None
    first = cache.load(*parts[0])
    if first is None:
        return None
    if first.shape[1] <= VENDI_FULL_DIM:
        gram = np.zeros((first.shape[1], first.shape[1]))
        for span in parts:
            vectors = cache.load(*span)
            if vectors is None:
                return None
            unit = vectors.astype(np.float64)
            unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-300)
            gram += unit.T @ unit
        lam = np.clip(np.linalg.eigvalsh(gram / n), 0.0, None)
        lam = lam / lam.sum()
        positive = lam[lam > 0]
        order1 = float(np.exp(-np.sum(positive * np.log(positive))))
        return VendiPublic(
            order1=min(order1, n), order2=min(float(1.0 / np.sum(lam**2)), n), samples=n
        )
    pick = np.sort(np.random.default_rng([seed, 0x7E4D]).choice(n, min(n, VENDI_SUBSAMPLE), False))
    rows = []
    for start, stop in parts:
        mine = pick[(pick >= start) & (pick < stop)]
        if mine.size:
            vectors = cache.load(start, stop)
            if vectors is None:
                return None
            rows.append(vectors[mine - start])
    scores = vendi_scores(np.concatenate(rows))
    return VendiPublic(order1=scores.order1, order2=scores.order2, samples=scores.n)


def _cached_vendi(key: tuple[str, int, int], directory: Path, seed: int) -> VendiPublic | None:
    """The Vendi scores of this pool, computed once: callers that ask while another thread
    computes them (the page's polls, the start-up warm-up) wait for it rather than each holding
    a kernel and its eigendecomposition (~1 GB at 4,000 samples of images)."""
    with _vendi_computing(key):
        with _vendi_lock:
            vendi = _vendi_cache.get(key)
        if vendi is None:
            vendi = _vendi(directory, key[2], seed)
            if vendi is not None:
                with _vendi_lock:
                    _vendi_cache[key] = vendi
    return vendi


def audit_secondary(
    db: Database, scratch_dir: Path, audit_id: int, level: float = 0.95
) -> SecondaryPublic:
    state = load_review(db, audit_id)
    n = state.n
    labelled = _labelled(db, audit_id, n)
    q_hat = assess(state, level).estimate.q_hat
    vendi = _cached_vendi((db.url, audit_id, n), scratch_dir / f"audit_{audit_id}", state.seed)
    # The audit page asks on every poll; at 10^6 samples the figures take ~1-2 s (the batch
    # MLE's likelihood profile, the pool-wide cluster labels), and they change only with labels.
    inputs = (db.url, audit_id, n, state.seed, level, q_hat, tuple(labelled))
    with _vendi_lock:
        figures = _figures_cache.get(inputs)
        if figures is not None:
            _figures_cache.move_to_end(inputs)
    if figures is None:
        figures = _figures(n, labelled, q_hat, state.seed, level)
        with _vendi_lock:
            _figures_cache[inputs] = figures
            while len(_figures_cache) > CACHED_FIGURES:
                _figures_cache.popitem(last=False)
    paper, batch_mle, chao1 = figures
    return SecondaryPublic(
        n=n, level=level, paper=paper, batch_mle=batch_mle, chao1=chao1, vendi=vendi
    )


def _figures(
    n: int, labelled: Labelled, q_hat: float, seed: int, level: float
) -> tuple[PaperView, BatchMLEPublic, Chao1Public]:
    sizes, labels = _cluster_sizes(n, labelled)
    view = pool_batch_view(n, sizes)
    s = view.s50 or (s50(q_hat) if q_hat > 0 else None)
    c1 = chao1_from_pool(n, sizes, level)
    return (
        PaperView(s50=view.s50, paper_support=view.paper_support),
        _batch_mle(labels, s, seed, level),
        Chao1Public(
            estimate=c1.estimate,
            low=c1.low,
            high=c1.high if math.isfinite(c1.high) else c1.estimate,
            observed=c1.observed,
            f1=c1.f1,
            f2=c1.f2,
        ),
    )
