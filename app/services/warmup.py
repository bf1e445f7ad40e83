"""Build the review caches of the audits people were working on, in the background after start-up.

An audit's pairs are read into arrays on first use and its estimate and review queue are built
from them; at 10^6 samples that is ~6 s of reading and ~9 s before the first estimate. Without a
warm-up the first reviewer after a restart pays it on their first label; with it they find the
caches built (or wait only for the rest of the build, never for a second one: the caches let one
caller build and the others wait for it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

from sqlalchemy import func, select

from app.services.estimates import assess
from app.services.history import audit_estimate_history
from app.services.review import prepare_queue
from app.services.review_state import load_review
from app.services.secondary import audit_secondary
from app.store.db import Database
from app.store.models import Audit, CandidatePair, Judgement

log = logging.getLogger(__name__)

# One warm-up computes at a time in a process. stop() cannot interrupt a step in hand (a Vendi
# eigendecomposition takes seconds and ~1 GB at 4,000 samples of images), so an app started
# again meanwhile would build the same caches beside it; its warm-up waits here instead, and
# then finds them built. Without this, restarts piled up a dozen such steps and 20 GB.
_ONE_AT_A_TIME = threading.Lock()


def audits_to_warm(db: Database, limit: int) -> list[int]:
    """The audits most recently judged, then the newest others with pairs: up to `limit` ids."""
    if limit <= 0:
        return []
    with db.read() as session:
        judged = session.execute(
            select(CandidatePair.audit_id)
            .join(Judgement, Judgement.pair_id == CandidatePair.id)
            .group_by(CandidatePair.audit_id)
            .order_by(func.max(Judgement.id).desc())
            .limit(limit)
        ).scalars()
        newest = session.execute(
            select(Audit.id)
            .where(Audit.candidate_pairs > 0, Audit.samples_done >= 2)
            .order_by(Audit.id.desc())
            .limit(limit)
        ).scalars()
        ordered = list(dict.fromkeys([*judged, *newest]))
    return ordered[:limit]


def warm_audit(db: Database, audit_id: int) -> None:
    """What the first estimate and the first handout of this audit would build."""
    state = load_review(db, audit_id)
    prepare_queue(state, assess(state))


def warm_page(db: Database, scratch_dir: Path, audit_id: int) -> None:
    """What the audit page's first view would compute beyond the estimate: the history's points
    and the secondary figures (~2.5 s and ~2 s at 10^6 samples)."""
    audit_estimate_history(db, audit_id)
    audit_secondary(db, scratch_dir, audit_id)


class Warmup:
    """A daemon thread that warms `limit` audits once, reviewers' needs first (every audit's
    estimate and queue), then the audit pages'; stop() lets it finish the step in hand."""

    def __init__(self, db: Database, limit: int, scratch_dir: Path) -> None:
        self._db = db
        self._limit = limit
        self._scratch = scratch_dir
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="birthday-warmup", daemon=True)
        self.warmed: list[int] = []
        self.reviews_ready = threading.Event()  # set once the first pass (estimate, queue) ends

    def start(self) -> None:
        if self._limit > 0:
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """True once the warm-up has ended (or never started)."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not _ONE_AT_A_TIME.acquire(timeout=0.1):
            if self._stop.is_set():
                self.reviews_ready.set()
                return
        try:
            self._warm()
        finally:
            _ONE_AT_A_TIME.release()

    def _warm(self) -> None:
        try:
            ids = audits_to_warm(self._db, self._limit)
        except Exception:  # a cache warm-up must never take the server down
            log.exception("warm-up: could not list audits")
            self.reviews_ready.set()
            return
        for audit_id in ids:
            if self._step(audit_id, partial(warm_audit, self._db)):
                self.warmed.append(audit_id)
        self.reviews_ready.set()
        for audit_id in list(self.warmed):
            self._step(audit_id, partial(warm_page, self._db, self._scratch))

    def _step(self, audit_id: int, step: Callable[[int], None]) -> bool:
        if self._stop.is_set():
            return False
        try:
            step(audit_id)
        except ValueError:  # fewer than two samples: nothing to build
            return False
        except Exception:
            if not self._stop.is_set():  # else the store closed under it at shutdown
                log.exception(
                    "warm-up of audit %d failed; its first request builds instead", audit_id
                )
            return False
        return True
