"""The embedders an audit can use and the checkpoints their `weights` option can name."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.auth import AnnotatorDep
from app.api.deps import StateDep
from app.schemas import EmbeddersPublic
from app.services.embedders import embedder_choices

router = APIRouter(tags=["audits"])


@router.get("/embedders", response_model=EmbeddersPublic)
def list_embedders(state: StateDep, _: AnnotatorDep) -> EmbeddersPublic:
    """Each embedder with the options it takes and whether it needs `weights`, and the
    checkpoints under the models directory by kind (what the audit form offers; for those who
    may start audits: a public reader sees no file names)."""
    return embedder_choices(state.settings.models_dir)
