"""The paper's protocol from a user's own batches: no audit, no store, only the arithmetic."""

from __future__ import annotations

from fastapi import APIRouter

from app.services.paper_protocol import PaperProtocolCreate, PaperProtocolPublic, paper_protocol

router = APIRouter(tags=["paper protocol"])


@router.post("/paper-protocol", response_model=PaperProtocolPublic)
def post_paper_protocol(body: PaperProtocolCreate) -> PaperProtocolPublic:
    """Figures of Arora & Zhang's protocol from batches you drew and inspected yourself.

    Per batch size, the share of batches with a near-duplicate and its exact interval; s50 (the
    smallest size whose share reaches 1/2) and the paper's support ~ s50^2; the uniform model's
    MLE of N with its profile-likelihood interval; and a test of that model, since s50^2 and the
    MLE read the support of a uniform generator only."""
    return paper_protocol(body)
