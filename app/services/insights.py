"""The figures behind the estimate panel: batch curve, calibration, clusters (the estimate
history: app.services.history).

Each function reads one audit's labels from the store and computes its figure with `app.estimate`,
so the REST API and the pages draw the same numbers. The batch curve's model uses
`services.estimates` itself (the same design, the same parts); the pool curve and the cluster
gallery show the confirmed clusters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field
from scipy.stats import binomtest
from sqlalchemy import select

from app.estimate import (
    Clustering,
    batch_curve,
    batch_curve_empirical,
    cluster_judgements,
    paper_support,
    s50,
)
from app.schemas import Label
from app.services.estimates import assess, estimate_public
from app.services.review_state import load_review
from app.store import audits as audit_store
from app.store import pairs as pair_store
from app.store.db import Database
from app.store.models import CandidatePair

Span = Literal["all", "labelled"]

MAX_CALIBRATION_POINTS = 2000
CURVE_POINTS = 60  # model curve resolution
POOL_CURVE_POINTS = 12  # the pool curve draws batches, so fewer points
POOL_CURVE_BATCHES = 200
POOL_CURVE_DRAWS = 4_000_000  # cap on samples drawn for the pool curve, whatever n
MEMBERS_SHOWN = 24  # images per cluster in the gallery


class BatchPoint(BaseModel):
    s: int = Field(description="Batch size.")
    p: float = Field(description="1 - exp(-C(s,2) q_hat): P(a batch of s holds a duplicate).")
    p_low: float = Field(description="The same at the lower end of the interval on q.")
    p_high: float = Field(description="The same at the upper end of the interval on q.")
    p_pool: float | None = Field(
        description="Share of batches drawn from the pool (no replacement) that hold a confirmed "
        "duplicate; null where s > n or not sampled."
    )


class BatchCurvePublic(BaseModel):
    """The paper's view: P(duplicate in a batch of s), with s_50 and the paper's s_50^2."""

    n: int
    q: float
    level: float
    s50: int | None
    paper_support: int | None
    points: list[BatchPoint]


class CalibrationBin(BaseModel):
    low: float
    high: float
    candidates: int = Field(description="Candidate pairs with a distance in [low, high).")
    duplicate: int
    distinct: int
    unsure: int
    p_duplicate: float | None = Field(
        description="duplicate / (duplicate + distinct); null with no such label."
    )
    p_low: float | None = Field(description="Wilson interval of p_duplicate.")
    p_high: float | None


class LabelledPoint(BaseModel):
    pair_id: int
    distance: float
    label: Label


class FitPoint(BaseModel):
    distance: float
    p: float


class CalibrationPublic(BaseModel):
    """P(duplicate | distance) from the labelled pairs, over the histogram of all candidates."""

    candidate_pairs: int
    labelled_pairs: int
    beyond: int = Field(description="Candidates farther than the last bin (span=labelled).")
    level: float
    bins: list[CalibrationBin]
    points: list[LabelledPoint] = Field(
        description=f"Labelled pairs, at most {MAX_CALIBRATION_POINTS} spread over the distances."
    )
    fit: list[FitPoint] = Field(
        description="Decreasing isotonic fit of duplicate (1) / distinct (0) on distance, "
        "unweighted: the labels are not a designed sample."
    )


class ClusterPublic(BaseModel):
    rank: int = Field(description="1 = the largest cluster.")
    size: int
    pairs: int = Field(description="C(size, 2): its share of D.")
    direct: int = Field(description="Pairs inside it a human confirmed.")
    implied: int = Field(description="Pairs inside it only the closure asserts: send to review.")
    members: list[int] = Field(description=f"Sample indices, the first {MEMBERS_SHOWN}.")
    image_urls: list[str]


class BlockedMerge(BaseModel):
    i: int
    j: int
    distance: float


class ClustersPublic(BaseModel):
    """Confirmed duplicate clusters: the outputs the generator collapsed onto, largest first."""

    n: int
    clusters_total: int
    duplicate_pairs: int
    direct: int
    implied: int
    from_random: int = Field(
        description="Of the confirmed pairs, those judged among the random pairs (the miner "
        "check): the estimate counts them in its part missed by the miner, not in confirmed D."
    )
    clusters: list[ClusterPublic]
    blocked: list[BlockedMerge] = Field(
        description="Duplicate judgements a 'distinct' judgement kept from merging clusters."
    )


@dataclass(frozen=True)
class _Labels:
    n: int
    seed: int
    labelled: list[tuple[int, int, float, str]]  # (i, j, distance, label)


def _read_labels(db: Database, audit_id: int) -> _Labels:
    with db.read() as session:
        audit = audit_store.get_audit(session, audit_id)
        n = audit.samples_done
        labelled = pair_store.labelled_pairs(session, audit_id)
        seed = audit.seed
    if n < 2:
        raise ValueError(f"audit {audit_id} has {n} samples so far; its figures need at least 2")
    return _Labels(n, seed, labelled)


@dataclass(frozen=True)
class _Clusters:
    """Clusters over only the samples some label mentions, so the cost follows the labels and
    not the pool (up to 10^6, and the history clusters 50 times); unlabelled samples are
    singletons, which add nothing to D. The compact numbering keeps the pool's order."""

    clustering: Clustering  # over compact indices 0..m-1
    samples: list[int]  # compact index -> pool index
    index: dict[int, int]  # pool index -> compact index

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.clustering.sizes

    def members(self) -> list[tuple[int, ...]]:
        """Pool indices of each cluster, largest cluster first, increasing within one."""
        return [tuple(self.samples[k] for k in c) for c in self.clustering.clusters]

    def same(self, i: int, j: int) -> bool:
        labels = self.clustering.labels
        return bool(labels[self.index[i]] == labels[self.index[j]])

    def blocked(self) -> list[tuple[int, int, float]]:
        return [(self.samples[a], self.samples[b], d) for a, b, d in self.clustering.blocked]


def _cluster(labelled: Sequence[tuple[int, int, float, str]]) -> _Clusters:
    samples = sorted({i for i, _, _, _ in labelled} | {j for _, j, _, _ in labelled})
    index = {sample: k for k, sample in enumerate(samples)}
    duplicates = [(index[i], index[j], d) for i, j, d, label in labelled if label == "duplicate"]
    distinct = [(index[i], index[j]) for i, j, _, label in labelled if label == "distinct"]
    clustering = cluster_judgements(max(2, len(samples)), duplicates, distinct)
    return _Clusters(clustering, samples, index)


def _batch_sizes(s_max: int, points: int, must: Sequence[int]) -> list[int]:
    grid = np.unique(np.round(np.linspace(2, max(s_max, 3), points)).astype(np.int64))
    return sorted({int(s) for s in grid} | {int(s) for s in must if s >= 2})


def audit_batch_curve(db: Database, audit_id: int, level: float = 0.95) -> BatchCurvePublic:
    """Model curve at the estimate's q_hat with the band of its interval on q, and the pool's
    empirical curve over the confirmed clusters."""
    estimate = estimate_public(assess(load_review(db, audit_id), level))
    labels = _read_labels(db, audit_id)
    clusters = _cluster(labels.labelled)
    q_hat = estimate.q
    q_low = 0.0 if estimate.n_eff_high is None else 1.0 / estimate.n_eff_high
    q_high = 1.0 if estimate.n_eff_low is None else min(1.0, 1.0 / estimate.n_eff_low)
    # Run the axis out to where the curve (or, with no duplicate yet, its upper band) reaches 99%.
    q_ref = q_hat if q_hat > 0 else q_high
    s_max = max(10, math.ceil(math.sqrt(2 * math.log(100) / q_ref)) + 1) if q_ref > 0 else labels.n
    s_half = s50(q_hat) if q_hat > 0 else None
    sizes = _batch_sizes(s_max, CURVE_POINTS, [s_half] if s_half else [])
    model = batch_curve(q_hat, sizes)
    low = batch_curve(q_low, sizes)
    high = batch_curve(q_high, sizes)
    by_size = _pool_curve(labels, clusters.members(), [s for s in sizes if s <= labels.n])
    return BatchCurvePublic(
        n=estimate.n,
        q=q_hat,
        level=level,
        s50=s_half,
        paper_support=paper_support(s_half) if s_half is not None else None,
        points=[
            BatchPoint(s=s, p=float(p), p_low=float(lo), p_high=float(hi), p_pool=by_size.get(s))
            for s, p, lo, hi in zip(sizes, model, low, high, strict=True)
        ],
    )


def _pool_curve(
    labels: _Labels, members: list[tuple[int, ...]], sizes: list[int]
) -> dict[int, float]:
    """Empirical P(duplicate in a batch) at up to POOL_CURVE_POINTS of `sizes`, seeded by the audit."""
    sampled = sizes[:: max(1, math.ceil(len(sizes) / POOL_CURVE_POINTS))]
    if not members:  # no confirmed duplicate: no batch can hold one
        return dict.fromkeys(sampled, 0.0)
    batches = max(20, min(POOL_CURVE_BATCHES, POOL_CURVE_DRAWS // max(1, sum(sampled))))
    curve = batch_curve_empirical(
        labels.n,
        members,
        np.asarray(sampled, dtype=np.int64),
        np.random.default_rng(labels.seed),
        m=batches,
    )
    return dict(zip(sampled, curve.tolist(), strict=True))


def _wilson(k: int, total: int, level: float) -> tuple[float, float]:
    ci = binomtest(k, total).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def _spread(items: Sequence[LabelledPoint], limit: int) -> list[LabelledPoint]:
    if len(items) <= limit:
        return list(items)
    keep = np.unique(np.linspace(0, len(items) - 1, limit).round().astype(np.int64))
    return [items[int(k)] for k in keep]


def _isotonic_fit(points: Sequence[tuple[float, str]]) -> list[FitPoint]:
    """Pool-adjacent-violators fit of a decreasing P(duplicate | distance), as step corners."""
    judged = sorted((d, 1.0 if label == "duplicate" else 0.0) for d, label in points)
    if not judged:
        return []
    # Imported here: scikit-learn takes about a second to import and only this figure needs it.
    from sklearn.isotonic import IsotonicRegression

    x = np.array([d for d, _ in judged])
    y = np.array([v for _, v in judged])
    model = IsotonicRegression(increasing=False, y_min=0.0, y_max=1.0, out_of_bounds="clip")
    model.fit(x, y)
    return [
        FitPoint(distance=float(d), p=float(p))
        for d, p in zip(model.X_thresholds_, model.y_thresholds_, strict=True)
    ]


def _edges(
    distances: NDArray[np.float64], labelled: Sequence[LabelledPoint], bins: int, span: Span
) -> NDArray[np.float64]:
    """Bin edges over all distances, or over the labelled range and a quarter more."""
    low, high = float(distances.min()), float(distances.max())
    if span == "labelled" and labelled:
        top = max(p.distance for p in labelled)
        focused = min(high, low + 1.25 * (top - low))
        if focused > low:
            high = focused
    return np.asarray(np.histogram_bin_edges(distances, bins=bins, range=(low, high)))


def audit_calibration(
    db: Database, audit_id: int, bins: int = 20, level: float = 0.95, span: Span = "all"
) -> CalibrationPublic:
    """Per distance bin: how many candidates, how they were labelled, and P(duplicate).

    With span="labelled" the bins cover the distances humans have labelled so far (reviews go
    closest first, so on well-separated data they sit in a sliver of the full range).
    """
    # The distances come from the review's pair cache (5 * 10^6 rows read from SQL cost ~5 s);
    # the labelled rows are few: sorted here, as an ORDER BY led SQLite to walk the distance
    # index past every unlabelled pair (~10 s at 10^6 samples).
    try:
        distances = load_review(db, audit_id).candidates.distance
    except ValueError:  # fewer than 2 samples yet: no pairs
        distances = np.empty(0, dtype=np.float64)
    with db.read() as session:
        rows = session.execute(
            select(CandidatePair.id, CandidatePair.distance, CandidatePair.label).where(
                CandidatePair.audit_id == audit_id,
                CandidatePair.origin == pair_store.CANDIDATE,
                CandidatePair.label.is_not(None),
            )
        ).all()
    labelled = [
        LabelledPoint(pair_id=pid, distance=d, label=cast(Label, lab))
        for pid, d, lab in sorted(rows, key=lambda row: (row[1], row[0]))
    ]
    if distances.size == 0:
        return CalibrationPublic(
            candidate_pairs=0, labelled_pairs=0, beyond=0, level=level, bins=[], points=[], fit=[]
        )
    edges = _edges(distances, labelled, bins, span)
    counts, _ = np.histogram(distances, bins=edges)

    def bin_of(d: float) -> int:
        # np.histogram puts the maximum in the last bin; searchsorted does the same with the clip.
        return min(int(np.searchsorted(edges, d, side="right")) - 1, len(counts) - 1)

    tallies = np.zeros((len(counts), 3), dtype=np.int64)
    column = {"duplicate": 0, "distinct": 1, "unsure": 2}
    for point in labelled:
        tallies[bin_of(point.distance), column[point.label]] += 1
    out_bins: list[CalibrationBin] = []
    for b, (dup, dis, uns) in enumerate(tallies.tolist()):
        judged = dup + dis
        p_low, p_high = _wilson(dup, judged, level) if judged else (None, None)
        out_bins.append(
            CalibrationBin(
                low=float(edges[b]),
                high=float(edges[b + 1]),
                candidates=int(counts[b]),
                duplicate=dup,
                distinct=dis,
                unsure=uns,
                p_duplicate=dup / judged if judged else None,
                p_low=p_low,
                p_high=p_high,
            )
        )
    fit = _isotonic_fit([(p.distance, p.label) for p in labelled if p.label != "unsure"])
    return CalibrationPublic(
        candidate_pairs=int(distances.size),
        labelled_pairs=len(labelled),
        beyond=int(np.count_nonzero(distances > edges[-1])),
        level=level,
        bins=out_bins,
        points=_spread(labelled, MAX_CALIBRATION_POINTS),
        fit=fit,
    )


def audit_clusters(
    db: Database, audit_id: int, sample_url: Callable[[int], str], limit: int = 50
) -> ClustersPublic:
    """The largest clusters of confirmed duplicates, with how much of each a human confirmed."""
    labels = _read_labels(db, audit_id)
    found = _cluster(labels.labelled)
    direct_by_first: dict[int, int] = {}  # smallest member of a cluster -> confirmed pairs in it
    first_of = {i: members[0] for members in found.members() for i in members}
    confirmed = {
        (min(i, j), max(i, j))
        for i, j, _, label in labels.labelled
        if label == "duplicate" and found.same(i, j)
    }
    for i, _ in confirmed:
        direct_by_first[first_of[i]] = direct_by_first.get(first_of[i], 0) + 1
    with db.read() as session:
        random_labelled = pair_store.labelled_pairs(session, audit_id, pair_store.RANDOM)
    from_random = sum(
        1 for i, j, _, label in random_labelled if label == "duplicate" and found.same(i, j)
    )
    clusters = []
    for rank, members in enumerate(found.members()[:limit], start=1):
        size = len(members)
        pairs = size * (size - 1) // 2
        direct = direct_by_first.get(members[0], 0)
        shown = list(members[:MEMBERS_SHOWN])
        clusters.append(
            ClusterPublic(
                rank=rank,
                size=size,
                pairs=pairs,
                direct=direct,
                implied=pairs - direct,
                members=shown,
                image_urls=[sample_url(i) for i in shown],
            )
        )
    return ClustersPublic(
        n=labels.n,
        clusters_total=len(found.clustering.clusters),
        duplicate_pairs=found.clustering.d,
        direct=found.clustering.direct_pairs,
        implied=found.clustering.implied_pairs,
        from_random=from_random,
        clusters=clusters,
        blocked=[BlockedMerge(i=i, j=j, distance=d) for i, j, d in found.blocked()],
    )
