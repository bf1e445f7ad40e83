"""Judgements: idempotent posting and undo, keeping each pair's consensus label current.

Idempotency follows Stripe and the IETF draft: the key is stored with the judgement in one transaction;
a replay returns the first response; the same key with a different body is refused (422).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.errors import Conflict, NotFound
from app.store.models import Annotator, IdempotencyKey, Judgement, utcnow
from app.store.pairs import LABELS, get_pair


@dataclass(frozen=True)
class JudgementView:
    id: int
    pair_id: int
    label: str
    annotator: str


def annotator_by_name(session: Session, name: str, create: bool) -> Annotator | None:
    annotator = session.scalars(select(Annotator).where(Annotator.name == name)).first()
    if annotator is None and create:
        annotator = Annotator(name=name, role="annotator")
        session.add(annotator)
        session.flush()
    return annotator


def _request_hash(pair_id: int, label: str, annotator: str) -> str:
    body = json.dumps({"pair_id": pair_id, "label": label, "annotator": annotator}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def _view(session: Session, judgement: Judgement) -> JudgementView:
    annotator = session.get(Annotator, judgement.annotator_id)
    name = annotator.name if annotator else "?"
    return JudgementView(judgement.id, judgement.pair_id, judgement.label, name)


def refresh_pair_label(session: Session, pair_id: int) -> None:
    """The consensus label is the latest judgement still standing (None when all were undone)."""
    pair = get_pair(session, pair_id)
    latest = session.scalars(
        select(Judgement)
        .where(Judgement.pair_id == pair_id, Judgement.deleted_at.is_(None))
        .order_by(Judgement.id.desc())
        .limit(1)
    ).first()
    pair.label = latest.label if latest else None


def post_judgement(
    session: Session, pair_id: int, label: str, annotator: str, key: str | None
) -> tuple[JudgementView, bool]:
    """Returns (judgement, created); created is False for a replay of an idempotency key."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}")
    request_hash = _request_hash(pair_id, label, annotator)
    if key is not None:
        stored = session.get(IdempotencyKey, key)
        if stored is not None:
            if stored.request_hash != request_hash:
                raise Conflict("this Idempotency-Key was used with a different request", 422)
            original = session.get(Judgement, stored.judgement_id)
            if original is None:
                raise NotFound("judgement", stored.judgement_id)
            return _view(session, original), False
    pair = get_pair(session, pair_id)
    who = annotator_by_name(session, annotator, create=True)
    assert who is not None
    judgement = Judgement(pair_id=pair.id, annotator_id=who.id, label=label)
    session.add(judgement)
    session.flush()
    if key is not None:
        session.add(IdempotencyKey(key=key, request_hash=request_hash, judgement_id=judgement.id))
    pair.label = label
    return _view(session, judgement), True


def delete_judgement(session: Session, judgement_id: int) -> JudgementView:
    judgement = session.get(Judgement, judgement_id)
    if judgement is None or judgement.deleted_at is not None:
        raise NotFound("judgement", judgement_id)
    judgement.deleted_at = utcnow()
    session.flush()
    refresh_pair_label(session, judgement.pair_id)
    return _view(session, judgement)
