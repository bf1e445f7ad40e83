"""Carry the labels of one audit over to another audit of the same samples (see
app/store/label_import.py): e.g. after re-mining a pool with more neighbours per sample."""

from __future__ import annotations

from app.store import audits as audit_store
from app.store.db import Database
from app.store.errors import Conflict
from app.store.label_import import LabelImport, import_judgements
from app.store.models import Audit

__all__ = ["import_labels"]


def _source(audit: Audit) -> tuple[object, ...]:
    """What fixes sample i's image: the generator (or synthetic spec) and the seed."""
    return (audit.generator_id, audit.synthetic, audit.seed)


def import_labels(db: Database, target_id: int, source_id: int) -> LabelImport:
    """Copy the source audit's standing judgements onto the target's pairs with the same (i, j).

    Refused (422) unless both audits sample the same source with the same seed: otherwise
    pair (i, j) shows other images. The target must be done, so that every pair it will hold
    is there to match.
    """
    if source_id == target_id:
        raise Conflict("an audit cannot import its own labels", 422)
    with db.write() as session:
        target = audit_store.get_audit(session, target_id)
        source = audit_store.get_audit(session, source_id)
        if _source(source) != _source(target):
            raise Conflict(
                f"audit {source_id} samples another source or seed than audit {target_id}: "
                "its pair (i, j) shows other images, so its labels do not carry over",
                422,
            )
        if target.status != "done":
            raise Conflict(f"audit {target_id} is {target.status}; import labels when it is done")
        return import_judgements(session, source_id, target_id)
