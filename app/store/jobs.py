"""Job rows: the worker's state, kept in the store so a restart can resume it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.errors import NotFound
from app.store.models import Job, utcnow

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("job", job_id)
    return job


def jobs_to_resume(session: Session) -> list[int]:
    return list(session.scalars(select(Job.id).where(Job.status.in_(ACTIVE)).order_by(Job.id)))


def latest_job_for_audit(session: Session, audit_id: int) -> Job | None:
    stmt = select(Job).where(Job.audit_id == audit_id).order_by(Job.id.desc()).limit(1)
    return session.scalars(stmt).first()


def mark_running(session: Session, job_id: int) -> Job:
    job = get_job(session, job_id)
    job.status = "running"
    job.attempts += 1
    job.started_at = job.started_at or utcnow()
    return job


def set_progress(session: Session, job_id: int, progress: dict[str, Any]) -> None:
    get_job(session, job_id).progress = dict(progress)


def finish(session: Session, job_id: int, status: str, error: str | None = None) -> Job:
    job = get_job(session, job_id)
    job.status = status
    job.error = error
    job.finished_at = utcnow()
    return job


def request_cancel(session: Session, job_id: int) -> Job:
    job = get_job(session, job_id)
    if job.status in FINISHED:
        return job
    job.cancel_requested = True
    if job.status == "queued":
        job.status = "cancelled"
        job.finished_at = utcnow()
    return job
