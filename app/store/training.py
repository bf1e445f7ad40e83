"""Training runs, their loss curves and sample grids, and sweeps."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.store.errors import NotFound
from app.store.models import (
    Generator,
    Job,
    Sweep,
    TrainingMetric,
    TrainingRun,
    TrainingSampleGrid,
    utcnow,
)
from app.store.upsert import insert_ignoring_conflicts


def get_run(session: Session, run_id: int) -> TrainingRun:
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise NotFound("training run", run_id)
    return run


def run_of_generator(session: Session, generator_id: int) -> TrainingRun | None:
    """The training run that registered this generator (None for an uploaded one)."""
    stmt = select(TrainingRun).where(TrainingRun.generator_id == generator_id).limit(1)
    return session.scalars(stmt).first()


def list_runs(session: Session, sweep_id: int | None = None) -> list[TrainingRun]:
    stmt = select(TrainingRun).order_by(TrainingRun.id.desc())
    if sweep_id is not None:
        # A sweep's runs in grid order (a second order_by would only add a tie-breaker).
        stmt = stmt.where(TrainingRun.sweep_id == sweep_id).order_by(None).order_by(TrainingRun.id)
    return list(session.scalars(stmt))


def create_run(
    session: Session,
    config: dict[str, Any],
    sweep_id: int | None = None,
    created_by: str | None = None,
) -> tuple[TrainingRun, Job]:
    run = TrainingRun(
        config=config,
        steps=int(config["steps"]),
        sweep_id=sweep_id,
        step=0,
        created_by=created_by,
    )
    session.add(run)
    session.flush()
    job = Job(
        kind="train",
        status="queued",
        training_run_id=run.id,
        progress={},
        created_by=created_by,
    )
    session.add(job)
    session.flush()
    return run, job


def sweep_ids(session: Session) -> list[int]:
    """Every sweep, newest first."""
    return list(session.scalars(select(Sweep.id).order_by(Sweep.id.desc())))


def create_sweep(session: Session, grid: dict[str, Any], created_by: str | None = None) -> Sweep:
    sweep = Sweep(grid=grid, created_by=created_by)
    session.add(sweep)
    session.flush()
    return sweep


def get_sweep(session: Session, sweep_id: int) -> Sweep:
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise NotFound("sweep", sweep_id)
    return sweep


def restart(session: Session, run_id: int) -> None:
    """A new attempt of an interrupted run begins.

    It goes on from the last state the job saved (`jobs/train.py`), or from step 0 if there is
    none, so the rows logged so far are kept: those up to that state are this run's, and those
    after it are replaced as the new attempt logs the same steps again (`record_losses`).
    """
    get_run(session, run_id).status = "running"


def record_losses(session: Session, run_id: int, step: int, losses: dict[str, float]) -> None:
    """Log the losses at `step`. An attempt logs in step order, so rows at or after `step` are
    a lost attempt's, trained again now: they are dropped."""
    session.execute(
        delete(TrainingMetric).where(TrainingMetric.run_id == run_id, TrainingMetric.step >= step)
    )
    insert_ignoring_conflicts(
        session, TrainingMetric, [{"run_id": run_id, "step": step, "losses": losses}]
    )
    get_run(session, run_id).step = step


def record_grid(session: Session, run_id: int, step: int, png: bytes) -> None:
    """Store the sample grid at `step`, replacing a lost attempt's grids from `step` on."""
    session.execute(
        delete(TrainingSampleGrid).where(
            TrainingSampleGrid.run_id == run_id, TrainingSampleGrid.step >= step
        )
    )
    insert_ignoring_conflicts(
        session, TrainingSampleGrid, [{"run_id": run_id, "step": step, "png": png}]
    )


def finish_with_generator(
    session: Session,
    run_id: int,
    *,
    path: str,
    architecture: str,
    options: dict[str, Any],
    latent_dim: int,
    output_shape: tuple[int, ...],
    modes: dict[str, Any] | None,
) -> Generator:
    run = get_run(session, run_id)
    config = run.config
    # What tells a sweep's generators apart (the compare page lists audits by it).
    name = (
        f"{config.get('loss')} {config.get('architecture')} on {config.get('dataset')}, "
        f"D x{config.get('d_width', 1.0):g} G x{config.get('g_width', 1.0):g} z{latent_dim} "
        f"seed {config.get('seed', 0)} (run {run_id})"
    )
    generator = Generator(
        name=name,
        format="safetensors",
        architecture=architecture,
        options=options,
        latent_dim=latent_dim,
        image_shape=list(output_shape),
        path=path,
        status="ready",
    )
    session.add(generator)
    session.flush()
    run.generator_id = generator.id
    run.modes = modes
    run.step = run.steps
    return generator


def set_status(session: Session, run_id: int, status: str, error: str | None = None) -> None:
    run = get_run(session, run_id)
    run.status = status
    run.error = error
    if status in ("done", "failed", "cancelled"):
        run.finished_at = utcnow()


def losses(session: Session, run_id: int) -> list[TrainingMetric]:
    stmt = (
        select(TrainingMetric).where(TrainingMetric.run_id == run_id).order_by(TrainingMetric.step)
    )
    return list(session.scalars(stmt))


def grid_steps(session: Session, run_id: int) -> list[int]:
    stmt = (
        select(TrainingSampleGrid.step)
        .where(TrainingSampleGrid.run_id == run_id)
        .order_by(TrainingSampleGrid.step)
    )
    return [int(s) for s in session.scalars(stmt)]


def grid(session: Session, run_id: int, step: int) -> TrainingSampleGrid | None:
    return session.get(TrainingSampleGrid, (run_id, step))
