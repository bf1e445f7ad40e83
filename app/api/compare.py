"""Several audits' estimates side by side: the compare page's data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import MAX_ID, StateDep
from app.schemas import CompareItem
from app.services import compare as compare_service

router = APIRouter(prefix="/compare", tags=["audits"])


@router.get("", response_model=list[CompareItem])
def get_compare(
    state: StateDep,
    ids: Annotated[
        list[str] | None,
        Query(description="Audits in the order to show them: repeat or list with commas."),
    ] = None,
    level: Annotated[float, Query(gt=0.5, lt=1, description="Confidence level.")] = 0.95,
) -> list[CompareItem]:
    """The audits' estimates (N_eff with its interval, D, labels, s50) in one answer, with the
    true N_eff where a synthetic source knows it; without `ids`, every finished audit (a
    sweep's audits: `GET /api/sweeps/{id}`)."""
    wanted = compare_service.parse_ids(ids, MAX_ID)
    return compare_service.compare_items(state.db, wanted, level=level)[1]
