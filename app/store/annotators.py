"""Annotators and their API tokens: only a SHA-256 of each token is stored, never the token."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.store.errors import Conflict, NotFound
from app.store.models import Annotator, Judgement
from app.store.upsert import insert_ignoring_conflicts

ROLES = ("annotator", "admin")


def hash_token(token: str) -> str:
    # Tokens are 256-bit random strings, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "bd_" + secrets.token_urlsafe(32)


def ensure_annotator(session: Session, name: str, role: str = "annotator") -> Annotator:
    """The annotator of that name, made with `role` if there is none.

    INSERT ... ON CONFLICT DO NOTHING, then a read: two processes naming a new annotator at
    once on PostgreSQL both get the one row (a plain insert failed the second on the unique
    name). The read runs after the insert, so under READ COMMITTED it sees the other's row.
    """
    existing = session.scalars(select(Annotator).where(Annotator.name == name)).first()
    if existing is not None:
        return existing
    insert_ignoring_conflicts(session, Annotator, [{"name": name, "role": role}])
    return session.scalars(select(Annotator).where(Annotator.name == name)).one()


def create_annotator(session: Session, name: str, role: str) -> tuple[Annotator, str]:
    """A new annotator (or a new token for an existing one); the token is returned once."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = new_token()
    ensure_annotator(session, name, role)
    # Locked, so of two processes giving one name a token at once the second sees the first's.
    annotator = session.scalars(
        select(Annotator)
        .where(Annotator.name == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if annotator.token_hash is not None:
        raise Conflict(f"annotator {name!r} already has a token; revoke it first")
    annotator.role = role
    annotator.token_hash = hash_token(token)
    session.flush()
    return annotator, token


def revoke_token(session: Session, name: str) -> None:
    """The annotator's token stops working; their judgements stay. NotFound for an unknown name."""
    annotator = session.scalars(select(Annotator).where(Annotator.name == name)).first()
    if annotator is None:
        raise NotFound("annotator", repr(name))
    annotator.token_hash = None


def annotator_for_token(session: Session, token: str) -> Annotator | None:
    digest = hash_token(token)
    annotator = session.scalars(select(Annotator).where(Annotator.token_hash == digest)).first()
    # compare_digest keeps the final check constant-time even though the lookup is by index.
    if annotator is None or not secrets.compare_digest(annotator.token_hash or "", digest):
        return None
    return annotator


def list_annotators(session: Session) -> list[Annotator]:
    return list(session.scalars(select(Annotator).order_by(Annotator.name)))


def judgement_counts(session: Session) -> dict[int, int]:
    """Standing judgements (not undone) per annotator id, over every audit."""
    rows = session.execute(
        select(Judgement.annotator_id, func.count())
        .where(Judgement.deleted_at.is_(None))
        .group_by(Judgement.annotator_id)
    )
    return {int(annotator): int(count) for annotator, count in rows}
