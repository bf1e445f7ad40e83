"""The in-process executor: runs job generators on a worker thread and writes what they yield.

The API process alone writes the store (DESIGN.md): the worker only produces results, and this runner
records each one in a single transaction with the progress it implies.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app.jobs.audit import AuditChunk, AuditTask, run_audit
from app.jobs.events import Event, EventBus
from app.settings import Settings
from app.sources.factory import SourceSpec
from app.store import audits as audit_store
from app.store import generators as generator_store
from app.store import jobs as job_store
from app.store.audits import ChunkRows
from app.store.db import Database

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, int], None]  # samples_done, n, candidate_pairs


@dataclass
class JobOutcome:
    status: str
    error: str | None = None


class JobRunner:
    def __init__(self, db: Database, settings: Settings, events: EventBus | None = None) -> None:
        self.db = db
        self.settings = settings
        self.events = events or EventBus()
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="birthday-worker", daemon=True)
            self._thread.start()
        if self.settings.resume_jobs:
            with self.db.read() as session:
                pending = job_store.jobs_to_resume(session)
            for job_id in pending:
                self.submit(job_id)

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            with self._lock:
                self._cancelled.add(-1)  # stop the running job at its next step; it resumes later
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, job_id: int) -> None:
        self._queue.put(job_id)

    def cancel(self, job_id: int) -> None:
        with self._lock:
            self._cancelled.add(job_id)

    def _should_stop(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._cancelled or -1 in self._cancelled

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self.run_job(job_id)
            except Exception:  # noqa: BLE001 - the worker must survive any job
                log.exception("job %s crashed the runner", job_id)

    # -- one job -----------------------------------------------------------------------------
    def audit_task(self, audit_id: int) -> AuditTask:
        with self.db.read() as session:
            audit = audit_store.get_audit(session, audit_id)
            if audit.generator_id is not None:
                generator = generator_store.get_generator(session, audit.generator_id)
                source = SourceSpec(
                    path=generator.path,
                    format=generator.format,
                    architecture=generator.architecture,
                    options=dict(generator.options or {}),
                )
            else:
                source = SourceSpec(synthetic=dict(audit.synthetic or {}))
            return AuditTask(
                audit_id=audit.id,
                source=source,
                n=audit.n,
                seed=audit.seed,
                embedder=audit.embedder,
                embedder_options=dict(audit.embedder_options or {}),
                miner=audit.miner,
                neighbours=audit.neighbours,
                chunk_size=audit.chunk_size,
                scratch_dir=str(self.settings.scratch_dir),
                models_dir=str(self.settings.models_dir),
            )

    def run_job(self, job_id: int, on_progress: ProgressCallback | None = None) -> JobOutcome:
        with self.db.write() as session:
            job = job_store.get_job(session, job_id)
            if job.status not in job_store.ACTIVE or job.audit_id is None:
                return JobOutcome(job.status, job.error)
            if job.cancel_requested:
                job_store.finish(session, job_id, "cancelled")
                audit_store.set_audit_status(session, job.audit_id, "cancelled")
                return JobOutcome("cancelled")
            job_store.mark_running(session, job_id)
            audit_id = job.audit_id
            audit = audit_store.get_audit(session, audit_id)
            audit.status = "running"
            resume_from = audit.samples_done
        self._publish(audit_id, "status", {"status": "running"})
        try:
            task = self.audit_task(audit_id)
            for chunk in run_audit(task, resume_from):
                self._record(job_id, audit_id, task.n, chunk, on_progress)
                if self._should_stop(job_id) or self._cancel_requested(job_id):
                    return self._stopped(job_id, audit_id)
        except Exception as exc:  # noqa: BLE001 - any failure becomes the job's message
            log.exception("audit job %s failed", job_id)
            return self._finish(job_id, audit_id, "failed", f"{type(exc).__name__}: {exc}")
        return self._finish(job_id, audit_id, "done", None)

    def _cancel_requested(self, job_id: int) -> bool:
        with self.db.read() as session:
            return bool(job_store.get_job(session, job_id).cancel_requested)

    def _stopped(self, job_id: int, audit_id: int) -> JobOutcome:
        with self._lock:
            cancelled = job_id in self._cancelled
        if cancelled or self._cancel_requested(job_id):
            return self._finish(job_id, audit_id, "cancelled", None)
        # Shutting down: leave the job active so the next start resumes it.
        with self.db.write() as session:
            job_store.get_job(session, job_id).status = "queued"
            audit_store.get_audit(session, audit_id).status = "queued"
        return JobOutcome("queued")

    def _record(
        self,
        job_id: int,
        audit_id: int,
        n: int,
        chunk: AuditChunk,
        on_progress: ProgressCallback | None,
    ) -> None:
        with self.db.write() as session:
            audit = audit_store.record_chunk(
                session, audit_id, ChunkRows(chunk.samples_done, chunk.pairs, chunk.samples)
            )
            progress = {
                "samples_done": audit.samples_done,
                "n": n,
                "candidate_pairs": audit.candidate_pairs,
            }
            job_store.set_progress(session, job_id, progress)
        self._publish(audit_id, "progress", progress)
        if on_progress is not None:
            on_progress(progress["samples_done"], n, progress["candidate_pairs"])

    def _finish(self, job_id: int, audit_id: int, status: str, error: str | None) -> JobOutcome:
        with self.db.write() as session:
            job_store.finish(session, job_id, status, error)
            audit_store.set_audit_status(session, audit_id, status, error)
        self._publish(audit_id, "status", {"status": status, "error": error})
        return JobOutcome(status, error)

    def _publish(self, audit_id: int, kind: str, data: Mapping[str, object]) -> None:
        self.events.publish(Event(topic=f"audit:{audit_id}", kind=kind, data=dict(data)))
