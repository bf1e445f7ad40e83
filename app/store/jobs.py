"""Job rows: the worker's state, kept in the store so a restart can resume it."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.store.errors import Conflict, NotFound
from app.store.models import Job, utcnow

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class Starter:
    """Who queues work (its rows' `created_by`) and how many unfinished jobs they may have."""

    name: str | None = None  # an annotator's name; None: the local user (CLI, no tokens)
    max_unfinished: int | None = None  # None: not capped (admins, the local user)


LOCAL_STARTER = Starter()


def unfinished_jobs(session: Session, name: str) -> int:
    """Jobs this annotator queued that are queued or running."""
    stmt = (
        select(func.count()).select_from(Job).where(Job.created_by == name, Job.status.in_(ACTIVE))
    )
    return int(session.scalar(stmt) or 0)


def check_room(session: Session, starter: Starter, adding: int) -> None:
    """Refuse `adding` jobs that would take the starter past their cap of unfinished jobs: 429
    (some must finish first), or 422 when this request alone needs more than the cap.

    Call it in the write transaction that inserts the jobs. On SQLite that transaction began
    with BEGIN IMMEDIATE (and holds the in-process write lock), so two requests at once count
    one after the other and cannot both slip under the cap. On PostgreSQL, under READ COMMITTED,
    requests through two processes at once may each count before the other commits and overshoot
    the cap by the few jobs they add: acceptable for a guard against runaway queues.
    """
    cap, name = starter.max_unfinished, starter.name
    if cap is None or name is None:
        return
    setting = "BIRTHDAY_MAX_UNFINISHED_JOBS"
    if adding > cap:
        raise Conflict(
            f"this request queues {adding:,} jobs, over the {cap:,} unfinished jobs one annotator "
            f"may have (an admin can queue it, or raise {setting})",
            422,
        )
    unfinished = unfinished_jobs(session, name)
    if unfinished + adding > cap:
        raise Conflict(
            f"{name} has {unfinished:,} unfinished jobs (queued or running) and may have at most "
            f"{cap:,} at once ({setting}): wait for some to finish or cancel some, then queue "
            f"{'this' if adding == 1 else f'these {adding:,}'}",
            429,
        )


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("job", job_id)
    return job


def jobs_to_resume(session: Session) -> list[int]:
    """Every active job; `claim` decides which another live process still holds."""
    return list(session.scalars(select(Job.id).where(Job.status.in_(ACTIVE)).order_by(Job.id)))


def lease_owner_name() -> str:
    """host:pid:token, unique to one runner; host and pid let a dead owner be told at once."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def _owner_is_dead(owner: str) -> bool:
    """True only for a process of this host that no longer exists (others wait for expiry)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def held_elsewhere(job: Job, owner: str, now: float | None = None) -> float | None:
    """Seconds left on another live process's lease of this job, or None when it is free."""
    if job.lease_owner is None or job.lease_owner == owner or job.lease_expires is None:
        return None
    left = job.lease_expires - (time.time() if now is None else now)
    if left <= 0 or _owner_is_dead(job.lease_owner):
        return None
    return left


def claim(session: Session, job_id: int, owner: str, lease_s: float) -> tuple[Job, float | None]:
    """Lock the job row and take its lease unless another live process holds it.

    Returns the job and None when taken, or the seconds left on the other holder's lease.
    """
    # populate_existing: the locked row as it is now, even if this session read it before.
    stmt = select(Job).where(Job.id == job_id).with_for_update()
    job = session.scalars(stmt.execution_options(populate_existing=True)).first()
    if job is None:
        raise NotFound("job", job_id)
    left = held_elsewhere(job, owner)
    if left is None and job.status in ACTIVE:
        job.lease_owner = owner
        job.lease_expires = time.time() + lease_s
    return job, left


def renew(session: Session, owner: str, job_ids: list[int], lease_s: float) -> set[int]:
    """Extend this owner's leases; returns the jobs whose lease it no longer holds.

    A lease that ran out is extended too while no other process took it (claimed it, or
    claimed and released it): its holder was only slow to renew. On PostgreSQL the update
    locks the job's row, so a claim by another process and this renewal take turns.
    """
    if not job_ids:
        return set()
    session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.lease_owner == owner)
        .values(lease_expires=time.time() + lease_s)
    )
    held = set(session.scalars(select(Job.id).where(Job.id.in_(job_ids), Job.lease_owner == owner)))
    return set(job_ids) - held


def release(session: Session, job_id: int, owner: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner)
        .values(lease_owner=None, lease_expires=None)
    )


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
