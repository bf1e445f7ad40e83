"""Generator rows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.errors import NotFound
from app.store.models import Generator


def get_generator(session: Session, generator_id: int) -> Generator:
    generator = session.get(Generator, generator_id)
    if generator is None:
        raise NotFound("generator", generator_id)
    return generator


def list_generators(session: Session) -> list[Generator]:
    return list(session.scalars(select(Generator).order_by(Generator.id.desc())))
