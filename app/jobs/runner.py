"""The job runner: takes queued jobs one at a time on a worker thread and writes what they yield.

The job code runs where the executor puts it (this process, or a Ray task: app/jobs/executors.py);
the API process alone writes the store (DESIGN.md): the job only produces results, and this runner
records each one in a single transaction with the progress it implies.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.jobs.audit import AuditChunk, AuditTask, run_audit
from app.jobs.events import Event, EventBus
from app.jobs.executors import Executor, WorkerLost, make_executor
from app.jobs.train import TrainStep, TrainTask, run_training
from app.settings import Settings
from app.sources.factory import SourceSpec, cheap_to_regenerate
from app.store import audits as audit_store
from app.store import generators as generator_store
from app.store import jobs as job_store
from app.store import training as training_store
from app.store.audits import ChunkRows
from app.store.db import Database, is_busy
from app.store.models import Audit

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, int], None]  # done, total, extra (pairs found / 0)

# Times a job is started again from the store after its worker was lost (a Ray worker or node
# died) before it is marked failed.
WORKER_LOSS_RESTARTS = 3

# How long a store held by other writers (SQLite's "database is locked" past the busy timeout, a
# PostgreSQL lock timeout) may hold up recording a job's step before the job fails: generous, as
# a VACUUM or a long import can hold a SQLite file for minutes and the job's work is not lost.
BUSY_RETRY_S = 600.0
BUSY_FIRST_WAIT_S = 0.1  # doubled after each refusal...
BUSY_LONGEST_WAIT_S = 5.0  # ...up to this


@dataclass
class JobOutcome:
    status: str
    error: str | None = None


class _LeaseLost(Exception):
    """Another process holds the job's lease now: this one must write nothing more for it."""


@dataclass(frozen=True)
class _Subject:
    """What a job works on: its topic for live events and how its own status is stored."""

    topic: str
    set_status: Callable[[Session, str, str | None], None]


def _shape(values: list[int] | None) -> tuple[int, int, int] | None:
    if values is None or len(values) != 3:
        return None
    return int(values[0]), int(values[1]), int(values[2])


def audit_source_spec(session: Session, audit: Audit) -> SourceSpec:
    """What the audit samples from, as the job (and the API, redrawing a sample) builds it."""
    if audit.generator_id is None:
        return SourceSpec(synthetic=dict(audit.synthetic or {}))
    generator = generator_store.get_generator(session, audit.generator_id)
    return SourceSpec(
        path=generator.path,
        format=generator.format,
        architecture=generator.architecture,
        options=dict(generator.options or {}),
        latent_dim=generator.latent_dim,
        image_shape=_shape(generator.image_shape),
    )


class JobRunner:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        events: EventBus | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.events = events or EventBus()
        self.executor = executor or make_executor(
            settings.ray_address, settings.ray_num_cpus, settings.ray_gpus
        )
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._running: set[int] = set()  # jobs a thread of this runner is running now
        self.slots = 0  # jobs run at once, once started
        self._cancelled: set[int] = set()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # Jobs are leased in the store, so two processes on one store (a server and a CLI run,
        # or a server restarted while a CLI audit goes on) never run one job twice.
        self.owner = job_store.lease_owner_name()
        self._lost: set[int] = set()  # jobs whose lease another process took
        self._retries: dict[int, threading.Timer] = {}  # jobs held elsewhere, tried again later

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads (one per job that may run at once) and resume active jobs."""
        self.executor.start()
        if not self._threads:
            slots = self.settings.concurrent_jobs or self.executor.slots()
            self.slots = slots
            for k in range(slots):
                thread = threading.Thread(
                    target=self._loop, name=f"birthday-worker-{k}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
            log.info("jobs run on the %s, %d at a time", self.executor.describe(), slots)
        if self.settings.resume_jobs:
            with self.db.read() as session:
                pending = job_store.jobs_to_resume(session)
            for job_id in pending:
                self.submit(job_id)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the running jobs at their next step; they stay active and resume at the next start."""
        if self._threads:
            self._stopping.set()
            for _ in self._threads:
                self._queue.put(None)
            deadline = time.monotonic() + timeout
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            self._threads = []
            self.slots = 0
        with self._lock:
            for timer in self._retries.values():
                timer.cancel()
            self._retries.clear()
        self.executor.shutdown()

    def submit(self, job_id: int) -> None:
        self._queue.put(job_id)

    def cancel(self, job_id: int) -> None:
        with self._lock:
            self._cancelled.add(job_id)

    def request_cancel(self, job_id: int) -> None:
        """Ask a job to stop at its next step. A queued one is cancelled at once, with its
        audit or run, and said so on their event stream: no worker will ever pick it up to
        announce its end, and the pages following it would wait for good."""
        with self.db.write() as session:
            job = job_store.request_cancel(session, job_id)
            cancelled = job.status == "cancelled"  # it was queued (a running one stops itself)
            audit, run = job.audit_id, job.training_run_id
            topic = None
            if (
                cancelled
                and audit is not None
                and audit_store.get_audit(session, audit).status == "queued"
            ):
                audit_store.set_audit_status(session, audit, "cancelled")
                topic = f"audit:{audit}"
            if (
                cancelled
                and run is not None
                and training_store.get_run(session, run).status != "cancelled"
            ):
                training_store.set_status(session, run, "cancelled")
                topic = f"training:{run}"
        self.cancel(job_id)
        if topic is not None:
            self.events.publish(Event(topic, "status", {"status": "cancelled", "error": None}))

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                if job_id in self._running:  # submitted twice: another thread has it
                    continue
                self._running.add(job_id)
            try:
                self.run_job(job_id)
            except Exception:  # noqa: BLE001 - the worker must survive any job
                log.exception("job %s crashed the runner", job_id)
            finally:
                with self._lock:
                    self._running.discard(job_id)
                    self._cancelled.discard(job_id)  # spent: a later job never inherits it

    # -- one job -----------------------------------------------------------------------------
    def run_job(self, job_id: int, on_progress: ProgressCallback | None = None) -> JobOutcome:
        with self.db.read() as session:
            kind = job_store.get_job(session, job_id).kind
        if kind == "train":
            return self._run_training(job_id, on_progress)
        return self._run_audit(job_id, on_progress)

    def _claim(self, session: Session, job_id: int, subject: _Subject) -> JobOutcome | None:
        """Lease the job and mark it running, or say why it will not run here."""
        job, left = job_store.claim(session, job_id, self.owner, self.settings.job_lease_s)
        if job.status not in job_store.ACTIVE:
            return JobOutcome(job.status, job.error)
        if left is not None:
            self._retry_later(job_id, left)
            return JobOutcome("elsewhere", f"job {job_id} is being run by {job.lease_owner}")
        if job.cancel_requested:
            job_store.finish(session, job_id, "cancelled")
            subject.set_status(session, "cancelled", None)
            return JobOutcome("cancelled")
        job_store.mark_running(session, job_id)
        subject.set_status(session, "running", None)
        return None

    def _drive(
        self,
        job_id: int,
        subject: _Subject,
        start: Callable[[], Iterator[object]],
        record: Callable[[object], None],
    ) -> JobOutcome:
        """Record what the job yields until it ends, is cancelled or the runner stops.

        `start` begins the job from what the store holds, so a job whose worker was lost goes on
        where it was, as after a restart, up to WORKER_LOSS_RESTARTS times.
        """
        with self._leased(job_id):
            self._publish(subject, "status", {"status": "running"})
            restarts = 0
            while True:
                steps: Iterator[object] | None = None
                try:
                    steps = start()  # a refusal to start is the job's failure too
                    for step in steps:
                        # _LeaseLost once another process holds the job: nothing more is written
                        self._while_busy(job_id, partial(record, step))
                        if self._stopping.is_set() or self._cancel_requested(job_id):
                            return self._stopped(job_id, subject)
                except _LeaseLost:
                    return self._taken_over(job_id)
                except WorkerLost as exc:
                    if restarts >= WORKER_LOSS_RESTARTS:
                        return self._finish(job_id, subject, "failed", f"worker lost: {exc}")
                    restarts += 1
                    log.warning("job %s lost its worker (%s); starting it again", job_id, exc)
                    continue
                except Exception as exc:  # noqa: BLE001 - any failure becomes the job's message
                    log.exception("job %s failed", job_id)
                    return self._finish(job_id, subject, "failed", f"{type(exc).__name__}: {exc}")
                finally:
                    close = getattr(steps, "close", None)
                    if close is not None:
                        close()  # stops the job's code where it is (a Ray task is cancelled)
                if self._lease_lost(job_id):  # its new holder says when it is done
                    return self._taken_over(job_id)
                return self._finish(job_id, subject, "done", None)

    # -- audits ------------------------------------------------------------------------------
    def audit_task(self, audit_id: int) -> AuditTask:
        with self.db.read() as session:
            audit = audit_store.get_audit(session, audit_id)
            source = audit_source_spec(session, audit)
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
                # absolute: the job may run in another process, with another working directory
                scratch_dir=str(self.settings.scratch_dir.resolve()),
                models_dir=str(self.settings.models_dir.resolve()),
                random_pairs=audit.random_pairs,
                random_from=_random_from(audit.pool_sizes, audit.n),
                store_images=self.settings.sample_images == "stored"
                or not cheap_to_regenerate(source, self.settings.models_dir),
            )

    def _run_audit(self, job_id: int, on_progress: ProgressCallback | None) -> JobOutcome:
        with self.db.write() as session:
            audit_id = job_store.get_job(session, job_id).audit_id
            if audit_id is None:
                return JobOutcome("failed", "an audit job without an audit")
            subject = _Subject(
                f"audit:{audit_id}",
                lambda s, status, error: audit_store.set_audit_status(s, audit_id, status, error),
            )
            refused = self._claim(session, job_id, subject)
            if refused is not None:
                return refused
        task = self.audit_task(audit_id)

        def start() -> Iterator[object]:
            if task.source.format == "torchscript" and not self.settings.code_uploads_allowed:
                # queued while the server ran code uploads (loopback), run where it does not
                raise ValueError(
                    "the generator is TorchScript (executable code), and this server does not "
                    "run code uploads (BIRTHDAY_ALLOW_CODE_UPLOADS)"
                )
            with self.db.read() as session:
                resume_from = audit_store.get_audit(session, audit_id).samples_done
                # a pool growing (extended, or resumed after a restart) must grow from the
                # source that drew it: the last stored sample is drawn again and compared
                anchor = (
                    audit_store.anchor_sample(session, audit_id, resume_from - 1)
                    if resume_from
                    else None
                )
            return self.executor.stream(run_audit, task, resume_from, anchor)

        def record(chunk: object) -> None:
            assert isinstance(chunk, AuditChunk)
            with self.db.write() as session:
                self._hold_lease(session, job_id)
                audit = audit_store.record_chunk(
                    session,
                    audit_id,
                    ChunkRows(
                        chunk.samples_done,
                        chunk.pairs,
                        chunk.samples,
                        chunk.random_pairs,
                        chunk.pool_size,
                    ),
                )
                progress = {
                    "samples_done": audit.samples_done,
                    "n": task.n,
                    "candidate_pairs": audit.candidate_pairs,
                }
                job_store.set_progress(session, job_id, progress)
            self._publish(subject, "progress", progress)
            if on_progress is not None:
                on_progress(progress["samples_done"], task.n, progress["candidate_pairs"])

        outcome = self._drive(job_id, subject, start, record)
        if outcome.status == "done":
            self.db.refresh_statistics()  # the planner's picture of the pairs just streamed in
        return outcome

    # -- training ----------------------------------------------------------------------------
    def _run_training(self, job_id: int, on_progress: ProgressCallback | None) -> JobOutcome:
        with self.db.write() as session:
            run_id = job_store.get_job(session, job_id).training_run_id
            if run_id is None:
                return JobOutcome("failed", "a training job without a run")
            subject = _Subject(
                f"training:{run_id}",
                lambda s, status, error: training_store.set_status(s, run_id, status, error),
            )
            refused = self._claim(session, job_id, subject)
            if refused is not None:
                return refused
            # An interrupted run goes on from the last state its job saved (jobs/train.py).
            training_store.restart(session, run_id)
            config = dict(training_store.get_run(session, run_id).config)
        task = TrainTask(
            run_id=run_id, config=config, models_dir=str(self.settings.models_dir.resolve())
        )

        def record(step: object) -> None:
            assert isinstance(step, TrainStep)
            with self.db.write() as session:
                self._hold_lease(session, job_id)
                if step.losses is not None:
                    training_store.record_losses(session, run_id, step.step, step.losses)
                if step.grid_png is not None:
                    training_store.record_grid(session, run_id, step.step, step.grid_png)
                if step.checkpoint is not None:
                    assert step.architecture is not None and step.latent_dim is not None
                    assert step.output_shape is not None
                    training_store.finish_with_generator(
                        session,
                        run_id,
                        path=step.checkpoint,
                        architecture=step.architecture,
                        options=step.options,
                        latent_dim=step.latent_dim,
                        output_shape=step.output_shape,
                        modes=step.modes,
                    )
                progress = {"step": step.step, "steps": step.steps}
                job_store.set_progress(session, job_id, progress)
            # Non-finite losses (a diverged run) go out as null: JSON has no NaN.
            losses = (
                None
                if step.losses is None
                else {k: (v if math.isfinite(v) else None) for k, v in step.losses.items()}
            )
            grid = step.step if step.grid_png is not None else None
            self._publish(subject, "progress", {**progress, "losses": losses, "grid": grid})
            if on_progress is not None:
                on_progress(step.step, step.steps, 0)

        return self._drive(
            job_id, subject, lambda: self.executor.stream(run_training, task), record
        )

    # -- leases ------------------------------------------------------------------------------
    @contextmanager
    def _leased(self, job_id: int) -> Iterator[None]:
        """Renew the job's lease every third of it while the job runs; a lease found taken stops
        the job's recording.

        A refused renewal is tried again soon (after BUSY_FIRST_WAIT_S, doubling up to
        BUSY_LONGEST_WAIT_S or a third of the lease), not a third of the lease later: a store held
        by other writers for about a lease's length (a VACUUM, a large delete) would otherwise
        let the lease run out between two tries, and another process take the job once the store
        is free. Renewing a lease that ran out is fine while no one else took it. Whatever the
        renewals manage, every write for the job checks the lease in its own transaction
        (`_hold_lease`): a process that lost it writes nothing more.
        """
        done = threading.Event()
        every = self.settings.job_lease_s / 3

        def beat() -> None:
            wait, retry = every, BUSY_FIRST_WAIT_S
            while not done.wait(wait):
                try:
                    with self.db.write() as session:
                        lost = job_store.renew(
                            session, self.owner, [job_id], self.settings.job_lease_s
                        )
                except Exception as exc:  # noqa: BLE001 - a failed renewal is tried again
                    busy = is_busy(exc)
                    log.warning(
                        "could not renew the lease of job %s%s; trying again in %.1f s",
                        job_id,
                        " (busy store)" if busy else "",
                        min(retry, every),
                        exc_info=not busy,
                    )
                    wait, retry = min(retry, every), min(2 * retry, BUSY_LONGEST_WAIT_S)
                    continue
                wait, retry = every, BUSY_FIRST_WAIT_S
                if lost:
                    with self._lock:
                        self._lost.add(job_id)
                    return

        thread = threading.Thread(target=beat, name=f"birthday-lease-{job_id}", daemon=True)
        thread.start()
        try:
            yield
        except BaseException:
            # This process gives the job up (Ctrl-C, an exit): free it for whoever is next,
            # as a process that died on this host would be found to.
            done.set()
            try:
                with self.db.write() as session:
                    job_store.release(session, job_id, self.owner)
            except Exception:  # noqa: BLE001 - the lease then runs out by itself
                log.warning("could not release the lease of job %s", job_id, exc_info=True)
            raise
        finally:
            done.set()
            thread.join()
            with self._lock:
                self._lost.discard(job_id)

    def _lease_lost(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._lost

    def _hold_lease(self, session: Session, job_id: int) -> None:
        """Renew the job's lease in the transaction that is about to write for the job, or raise
        _LeaseLost (the transaction then rolls back) when another process took the job.

        The check and the write commit together, so a step is written only by the lease's holder,
        however long this process waited for the store (its lease may have run out meanwhile):
        another process's claim and this transaction take turns on the job's row (PostgreSQL's
        row lock; SQLite's one writer).
        """
        if job_store.renew(session, self.owner, [job_id], self.settings.job_lease_s):
            with self._lock:
                self._lost.add(job_id)
            raise _LeaseLost(job_id)

    def _taken_over(self, job_id: int) -> JobOutcome:
        log.warning("job %s: another process took its lease; it stops here", job_id)
        return JobOutcome("elsewhere", f"job {job_id}'s lease was taken over")

    def _retry_later(self, job_id: int, left: float) -> None:
        """A job another process holds: a started runner tries again once that lease ends
        (renewed if the holder lives on), so a job left by a process that died is resumed."""
        if not self._threads or self._stopping.is_set():
            return
        timer = threading.Timer(left + 0.5, self._retry, (job_id,))
        timer.daemon = True
        with self._lock:
            previous = self._retries.pop(job_id, None)
            self._retries[job_id] = timer
        if previous is not None:
            previous.cancel()
        timer.start()

    def _retry(self, job_id: int) -> None:
        with self._lock:
            self._retries.pop(job_id, None)
        if not self._stopping.is_set():
            self.submit(job_id)

    # -- endings -----------------------------------------------------------------------------
    def _cancel_requested(self, job_id: int) -> bool:
        with self._lock:
            if job_id in self._cancelled:
                return True
        with self.db.read() as session:
            return bool(job_store.get_job(session, job_id).cancel_requested)

    def _stopped(self, job_id: int, subject: _Subject) -> JobOutcome:
        if self._cancel_requested(job_id):
            return self._finish(job_id, subject, "cancelled", None)
        # Shutting down: leave the job active, and free, so the next start resumes it.
        try:
            with self.db.write() as session:
                self._hold_lease(session, job_id)
                job_store.get_job(session, job_id).status = "queued"
                job_store.release(session, job_id, self.owner)
                subject.set_status(session, "queued", None)
        except _LeaseLost:
            return self._taken_over(job_id)
        return JobOutcome("queued")

    def _while_busy(
        self, job_id: int, write: Callable[[], None], *, stoppable: bool = True
    ) -> bool:
        """Run `write`, again after a wait each time the store was busy, for up to BUSY_RETRY_S.

        Each try is a whole transaction, rolled back when refused, so trying again is safe.
        False when the runner stopped meanwhile (if `stoppable`): the step is left unwritten,
        and the job resumes from what the store holds at the next start. _LeaseLost as soon as
        the job's lease is known taken (by a renewal meanwhile, or by `write` itself, which
        checks it). Any other error, or a store busy for longer, is raised.
        """
        deadline = time.monotonic() + BUSY_RETRY_S
        wait = BUSY_FIRST_WAIT_S
        while True:
            if self._lease_lost(job_id):
                raise _LeaseLost(job_id)
            try:
                write()
                return True
            except DBAPIError as exc:
                if not is_busy(exc) or time.monotonic() + wait > deadline:
                    raise
                log.warning(
                    "job %s: the store is busy (%s); writing again in %.1f s",
                    job_id,
                    exc.orig,
                    wait,
                )
            if not stoppable:
                time.sleep(wait)
            elif self._stopping.wait(wait):
                return False
            wait = min(2 * wait, BUSY_LONGEST_WAIT_S)

    def _finish(self, job_id: int, subject: _Subject, status: str, error: str | None) -> JobOutcome:
        def write() -> None:
            with self.db.write() as session:
                self._hold_lease(session, job_id)  # the job's end is its holder's to say
                job_store.finish(session, job_id, status, error)
                job_store.release(session, job_id, self.owner)
                subject.set_status(session, status, error)

        # Not stoppable: a job that ended must say so, or it would run again at the next start.
        try:
            self._while_busy(job_id, write, stoppable=False)
        except _LeaseLost:
            return self._taken_over(job_id)
        self._publish(subject, "status", {"status": status, "error": error})
        return JobOutcome(status, error)

    def _publish(self, subject: _Subject, kind: str, data: Mapping[str, object]) -> None:
        self.events.publish(Event(topic=subject.topic, kind=kind, data=dict(data)))


def _random_from(pool_sizes: list[int] | None, n: int) -> int | None:
    """Where the next generation of random pairs starts (the previous pool size), or None
    when the pool of n samples already has its generation."""
    sizes = list(pool_sizes or [])
    if sizes and sizes[-1] >= n:
        return None
    return sizes[-1] if sizes else 0
