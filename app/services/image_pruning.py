"""Give back the space of stored sample PNGs the server can draw again.

Audits made before sample images were drawn on demand, or with `BIRTHDAY_SAMPLE_IMAGES=stored`,
keep every sample's PNG: about 3 KB each at 64x64 RGB, gigabytes at 10^6. Pruning keeps each job
step's anchor (the first sample of each step, as a new audit would) and drops the rest, once a
spread of stored samples has been drawn again and matched: an audit whose generator file changed
keeps its images, since they could not be drawn again as audited.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select, update

from app.jobs.runner import audit_source_spec
from app.services.sample_images import check_redraw, open_source
from app.settings import Settings
from app.sources.base import close_source
from app.sources.factory import SourceSpec, cheap_to_regenerate
from app.store import audits as audit_store
from app.store.db import Database
from app.store.errors import Conflict
from app.store.models import Sample

CHECKED = 8  # stored samples drawn again and compared before any is dropped
BATCH = 10_000  # rows per write transaction, so labelling goes on beside a large prune


@dataclass(frozen=True)
class PruneResult:
    audit_id: int
    dropped: int  # PNGs removed
    kept: int  # PNGs still stored (the anchors)
    bytes_freed: int
    checked: int  # stored samples drawn again and matched first


def prune_sample_images(db: Database, settings: Settings, audit_id: int) -> PruneResult:
    with db.read() as session:
        audit = audit_store.get_audit(session, audit_id)
        if audit.status in ("queued", "running"):
            raise Conflict(f"audit {audit_id} is {audit.status}; prune its images when it is done")
        spec = audit_source_spec(session, audit)
        seed, chunk = audit.seed, audit.chunk_size
        # Each job step's first sample: the multiples of the chunk size, and where an extension
        # began (a step then starts at the old pool size).
        starts = [int(size) for size in audit.pool_sizes or []]
        step_start = (Sample.idx % chunk == 0) | Sample.idx.in_(starts)
        droppable = (Sample.audit_id == audit_id) & Sample.png.is_not(None) & ~step_start
        stored = list(session.scalars(select(Sample.idx).where(droppable).order_by(Sample.idx)))
    if not cheap_to_regenerate(spec, settings.models_dir):
        raise Conflict(
            f"audit {audit_id}'s samples are not drawn by the server (TorchScript, ONNX or a "
            "compressed .npz): its PNGs are the only copy it can show",
            422,
        )
    checked = _check_draws(db, settings, audit_id, spec, seed, stored)
    dropped = freed = 0
    for start in range(0, len(stored), BATCH):
        batch = stored[start : start + BATCH]
        with db.write() as session:
            rows = (
                (Sample.audit_id == audit_id)
                & Sample.idx.between(batch[0], batch[-1])
                & ~step_start
                & Sample.png.is_not(None)
            )
            count, size = session.execute(
                select(func.count(), func.coalesce(func.sum(func.length(Sample.png)), 0)).where(
                    rows
                )
            ).one()
            session.execute(update(Sample).where(rows).values(png=None))
            dropped, freed = dropped + int(count), freed + int(size)
    with db.read() as session:
        kept = session.scalar(
            select(func.count()).where(Sample.audit_id == audit_id, Sample.png.is_not(None))
        )
    return PruneResult(audit_id, dropped, int(kept or 0), freed, checked)


def _check_draws(
    db: Database,
    settings: Settings,
    audit_id: int,
    spec: SourceSpec,
    seed: int,
    stored: list[int],
) -> int:
    """Draw up to CHECKED of the PNGs about to go, spread over the pool, and compare."""
    if not stored:
        return 0
    picks = sorted({stored[int(k)] for k in np.linspace(0, len(stored) - 1, CHECKED)})
    with db.read() as session:
        rows = session.execute(
            select(Sample.idx, Sample.png).where(Sample.audit_id == audit_id, Sample.idx.in_(picks))
        ).all()
    pngs = {int(idx): png for idx, png in rows}
    source = open_source(spec, seed, settings)
    try:
        for idx in picks:
            png = pngs.get(idx)
            if png is not None:
                check_redraw(source, audit_id, idx, png)
    finally:
        close_source(source)
    return len(picks)
