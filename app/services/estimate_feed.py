"""Live estimates for an audit's event stream: one computation per change of the audit, however
many pages watch it, pushed as `estimate` events.

The audit page used to poll every 3 s, each poll a full estimate request per open page (~0.15 s at
10^6 samples even with warm caches). Now a watched audit gets one thread that computes when a
writer in this process says the audit changed (a judgement, an undo, a label import, job
progress), waits a moment first so a burst of labels costs one computation, and otherwise checks
again every `recheck_s` for writers it cannot hear (the CLI, another server process on the same
PostgreSQL). An event goes out only when the estimate differs from the last one sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from app.jobs.events import Event
from app.schemas import EstimatePublic
from app.services.estimates import audit_estimate
from app.store.db import Database
from app.store.errors import NotFound

log = logging.getLogger(__name__)

Estimate = dict[str, Any]  # the JSON body of GET /api/audits/{id}/estimate


def estimate_digest(estimate: Estimate) -> str:
    """Names an estimate's content: the event's id, and what the audit page's panel shows, so a
    page can tell whether an event is news to it."""
    body = json.dumps(estimate, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def estimate_body(estimate: EstimatePublic) -> Estimate:
    """The estimate as the API's JSON body has it (an infinite value is null there, while
    model_dump(mode="json") keeps it as a float that JSON cannot carry)."""
    body: Estimate = json.loads(estimate.model_dump_json())
    return body


def _compute(db: Database, audit_id: int) -> Estimate | None:
    """The estimate as GET /estimate gives it by default, or None while there is none yet."""
    try:
        return estimate_body(audit_estimate(db, audit_id))
    except ValueError:  # fewer than 2 samples so far
        return None


@dataclass
class _Watch:
    watchers: int = 0
    wake: threading.Event = field(default_factory=threading.Event)
    latest: Estimate | None = None
    computations: int = 0


class EstimateFeed:
    """Watched audits' estimates, recomputed on change and published as `estimate` events."""

    def __init__(
        self,
        db: Database,
        publish: Callable[[Event], None],
        recheck_s: float = 10.0,
        settle_s: float = 0.05,
        min_gap_s: float = 1.0,
    ) -> None:
        self._db = db
        self._publish = publish
        self._recheck_s = recheck_s
        self._settle_s = settle_s  # a burst of labels lands before the computation starts
        self._min_gap_s = min_gap_s
        self._lock = threading.Lock()
        self._watches: dict[int, _Watch] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._stopping = False

    @contextmanager
    def watching(self, audit_id: int) -> Iterator[Estimate | None]:
        """Keep the audit's estimate live while the block runs; yields the last one sent, if
        any (a first watcher gets its first estimate as an event)."""
        with self._lock:
            watch = self._watches.setdefault(audit_id, _Watch())
            watch.watchers += 1
            latest = watch.latest
            thread = self._threads.get(audit_id)
            if not self._stopping and (thread is None or not thread.is_alive()):
                watch.wake.set()  # compute at once, without settling
                thread = threading.Thread(
                    target=self._run, args=(audit_id, watch), name=f"estimate-feed-{audit_id}"
                )
                thread.daemon = True
                self._threads[audit_id] = thread
                thread.start()
        try:
            yield latest
        finally:
            with self._lock:
                watch.watchers -= 1
                last = watch.watchers == 0
            if last:
                watch.wake.set()  # the thread sees it is unwatched and ends

    def changed(self, audit_id: int) -> None:
        """A writer in this process changed the audit: compute again soon if it is watched."""
        with self._lock:
            watch = self._watches.get(audit_id)
        if watch is not None:
            watch.wake.set()

    def computations(self, audit_id: int) -> int:
        with self._lock:
            watch = self._watches.get(audit_id)
            return watch.computations if watch else 0

    def start(self) -> None:
        """Serve watchers (again): an app may be started more than once."""
        with self._lock:
            self._stopping = False

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
            watches = list(self._watches.values())
            threads = list(self._threads.values())
        for watch in watches:
            watch.wake.set()
        for thread in threads:
            thread.join(timeout)

    def _watched(self, audit_id: int, watch: _Watch) -> bool:
        with self._lock:
            if watch.watchers > 0 and not self._stopping:
                return True
            # Nobody watches: forget the audit (a later watcher starts afresh).
            if self._watches.get(audit_id) is watch:
                del self._watches[audit_id]
                self._threads.pop(audit_id, None)
            return False

    def _run(self, audit_id: int, watch: _Watch) -> None:
        first, finished, took = True, 0.0, 0.0
        while True:
            hinted = watch.wake.wait(self._recheck_s)
            if not self._watched(audit_id, watch):
                return
            if hinted and not first:
                # Settle, and keep the feed to at most a third of a core: a running job's
                # progress (or a team labelling fast) would otherwise keep it computing.
                rest = finished + max(self._min_gap_s, 2 * took) - time.monotonic()
                time.sleep(max(self._settle_s, rest))
            watch.wake.clear()  # a change from here on asks for another round
            first = False
            started = time.monotonic()
            try:
                estimate = _compute(self._db, audit_id)
            except NotFound:  # the audit was deleted: nothing more to say
                watch.latest = None
                return
            except Exception:
                log.exception("live estimate of audit %s failed; trying again later", audit_id)
                continue
            finally:
                finished = time.monotonic()
                took = finished - started
                watch.computations += 1
            if estimate is not None and estimate != watch.latest:
                watch.latest = estimate
                self._publish(Event(topic=f"audit:{audit_id}", kind="estimate", data=estimate))
