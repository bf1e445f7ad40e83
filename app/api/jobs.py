"""Jobs: status and cancellation."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from app.api.auth import AnnotatorDep, require_starter
from app.api.deps import JobId, StateDep
from app.jobs.runner import JobRunner
from app.schemas import JobPublic, WorkersPublic
from app.store import jobs as job_store
from app.store.models import Audit, Job, TrainingRun

router = APIRouter(prefix="/jobs", tags=["jobs"])


def job_public(job: Job) -> JobPublic:
    return JobPublic(
        id=job.id,
        kind=job.kind,
        status=job.status,
        audit_id=job.audit_id,
        training_run_id=job.training_run_id,
        progress=job.progress or {},
        error=job.error,
        cancel_requested=job.cancel_requested,
        created_by=job.created_by,
    )


def _started_by(session: Session, job: Job) -> list[str | None]:
    """Who queued the job and who started the audit or training run it works for (an admin
    may have extended someone's audit: its starter may still stop that work)."""
    subject: Audit | TrainingRun | None = None
    if job.audit_id is not None:
        subject = session.get(Audit, job.audit_id)
    elif job.training_run_id is not None:
        subject = session.get(TrainingRun, job.training_run_id)
    return [job.created_by, subject.created_by if subject is not None else None]


def job_owners(session: Session, job_ids: list[int]) -> dict[int, list[str | None]]:
    """Who may cancel each job besides admins (_started_by), for the pages' buttons."""
    out: dict[int, list[str | None]] = {}
    for job_id in job_ids:
        job = session.get(Job, job_id)
        if job is not None:
            out[job_id] = _started_by(session, job)
    return out


@router.get("/workers", response_model=WorkersPublic)
def get_workers(state: StateDep) -> WorkersPublic:
    """Where jobs run (in-process or Ray) and how many at once."""
    return workers_public(state.runner)


def workers_public(runner: JobRunner) -> WorkersPublic:
    executor = runner.executor
    return WorkersPublic(
        executor="ray" if executor.name == "ray" else "in-process",
        description=executor.describe(),
        concurrent_jobs=runner.slots,
    )


@router.get("/{job_id}", response_model=JobPublic)
def get_job(state: StateDep, job_id: JobId) -> JobPublic:
    """One job's status and progress."""
    with state.db.read() as session:
        return job_public(job_store.get_job(session, job_id))


@router.post("/{job_id}/cancel", response_model=JobPublic)
def cancel_job(state: StateDep, principal: AnnotatorDep, job_id: JobId) -> JobPublic:
    """Ask a job to stop at its next step; a queued job is cancelled at once. For whoever queued
    it or started its audit or training run, and admins (403 for others)."""
    with state.db.read() as session:
        started_by = _started_by(session, job_store.get_job(session, job_id))  # NotFound: 404
    require_starter(principal, started_by, "cancel", f"job {job_id}")
    state.runner.request_cancel(job_id)
    with state.db.read() as session:
        return job_public(job_store.get_job(session, job_id))
