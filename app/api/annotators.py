"""Annotators and tokens (admins), and who the caller is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.auth import AdminDep, PrincipalDep
from app.api.deps import StateDep
from app.schemas import AnnotatorCreate, AnnotatorCreated, AnnotatorPublic, Me
from app.store.annotators import (
    create_annotator,
    judgement_counts,
    list_annotators,
    revoke_token,
)

router = APIRouter(tags=["annotators"])


@router.get("/me", response_model=Me)
def get_me(state: StateDep, principal: PrincipalDep) -> Me:
    """The caller as the server sees them."""
    return Me(
        name=principal.name,
        role=principal.role,
        authenticated=principal.authenticated,
        auth_required=state.settings.auth_required,
    )


@router.post("/annotators", status_code=status.HTTP_201_CREATED, response_model=AnnotatorCreated)
def create_annotator_token(state: StateDep, _: AdminDep, body: AnnotatorCreate) -> AnnotatorCreated:
    """Create an annotator and return their token, once."""
    with state.db.write() as session:
        annotator, token = create_annotator(session, body.name, body.role)
        return AnnotatorCreated(
            name=annotator.name, role=annotator.role, has_token=True, token=token
        )


@router.get("/annotators", response_model=list[AnnotatorPublic])
def list_annotator_accounts(state: StateDep, _: AdminDep) -> list[AnnotatorPublic]:
    """Everyone who has judged or holds a token, with their standing judgements."""
    with state.db.read() as session:
        counts = judgement_counts(session)
        return [
            AnnotatorPublic(
                name=a.name,
                role=a.role,
                has_token=a.token_hash is not None,
                judgements=counts.get(a.id, 0),
            )
            for a in list_annotators(session)
        ]


@router.delete("/annotators/{name}/token", status_code=status.HTTP_204_NO_CONTENT)
def revoke_annotator_token(
    state: StateDep, _: AdminDep, name: Annotated[str, Path(max_length=100)]
) -> Response:
    """Revoke an annotator's token (admins): it stops working at once; their judgements stay,
    and a new token can be created for the same name."""
    with state.db.write() as session:
        revoke_token(session, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
