"""Jobs: status and cancellation."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.auth import AnnotatorDep
from app.api.deps import JobId, StateDep
from app.jobs.runner import JobRunner
from app.schemas import JobPublic, WorkersPublic
from app.store import jobs as job_store
from app.store.models import Job

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
    )


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
def cancel_job(state: StateDep, _: AnnotatorDep, job_id: JobId) -> JobPublic:
    """Ask a job to stop at its next step; a queued job is cancelled at once."""
    state.runner.request_cancel(job_id)  # NotFound: 404
    with state.db.read() as session:
        return job_public(job_store.get_job(session, job_id))
