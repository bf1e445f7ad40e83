"""Insights: the data behind the estimate panel's figures (batch curve, calibration, history, clusters)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.api.deps import AuditId, StateDep
from app.services import history, insights
from app.services.history import EstimateHistoryPublic
from app.services.insights import BatchCurvePublic, CalibrationPublic, ClustersPublic
from app.services.secondary import SecondaryPublic, audit_secondary

router = APIRouter(prefix="/audits", tags=["insights"])

Level = Annotated[float, Query(gt=0.5, lt=1, description="Confidence level.")]


@router.get("/{audit_id}/batch-curve", response_model=BatchCurvePublic)
def get_batch_curve(state: StateDep, audit_id: AuditId, level: Level = 0.95) -> BatchCurvePublic:
    """P(duplicate in a batch of s) at q_hat with its band, the pool's curve, and s_50."""
    return insights.audit_batch_curve(state.db, audit_id, level=level)


@router.get("/{audit_id}/calibration", response_model=CalibrationPublic)
def get_calibration(
    state: StateDep,
    audit_id: AuditId,
    bins: Annotated[int, Query(ge=1, le=200)] = 20,
    level: Level = 0.95,
    span: Annotated[
        insights.Span, Query(description="Bins over all distances, or the labelled range.")
    ] = "all",
) -> CalibrationPublic:
    """P(duplicate | distance) per distance bin, the labelled pairs, and the candidate histogram."""
    return insights.audit_calibration(state.db, audit_id, bins=bins, level=level, span=span)


@router.get("/{audit_id}/estimate-history", response_model=EstimateHistoryPublic)
def get_estimate_history(
    state: StateDep,
    audit_id: AuditId,
    points: Annotated[int, Query(ge=1, le=history.MAX_HISTORY_POINTS)] = (
        history.MAX_HISTORY_POINTS
    ),
    level: Level = 0.95,
) -> EstimateHistoryPublic:
    """N_eff with its interval after the first k judgements, in the order they came; at most
    `points` of them, fewer on audits with millions of candidate pairs (each point is a full
    estimate). Checkpoints stay put as judgements come: multiples of a power of two, and the
    last judgement."""
    return history.audit_estimate_history(state.db, audit_id, level=level, max_points=points)


@router.get("/{audit_id}/clusters", response_model=ClustersPublic)
def get_clusters(
    state: StateDep,
    request: Request,
    audit_id: AuditId,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ClustersPublic:
    """Clusters of confirmed duplicates, largest first, with sample images."""

    def sample_url(idx: int) -> str:
        return str(request.url_for("get_sample_png", audit_id=audit_id, idx=idx).path)

    return insights.audit_clusters(state.db, audit_id, sample_url, limit=limit)


@router.get("/{audit_id}/secondary", response_model=SecondaryPublic)
def get_secondary(state: StateDep, audit_id: AuditId, level: Level = 0.95) -> SecondaryPublic:
    """Figures beside N_eff, each named for what it is: the paper's s_50 and s_50^2, the
    uniform-model MLE from disjoint batches, Chao1 (a richness lower bound) and the Vendi scores
    of orders 1 and 2 (label-free diversity of the embeddings, at most n)."""
    return audit_secondary(state.db, state.settings.scratch_dir, audit_id, level)
