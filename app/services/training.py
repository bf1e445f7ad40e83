"""Queueing training runs and sweeps, and describing them, for the API, the pages and the CLI."""

from __future__ import annotations

import itertools
from typing import Any

from app.jobs.train import train_config
from app.schemas import SweepCreate, TrainingProgress, TrainingRunCreate, TrainingRunPublic
from app.store import training as training_store
from app.store.db import Database
from app.store.models import Job, TrainingRun


def _config(body: TrainingRunCreate) -> dict[str, Any]:
    fields = body.model_dump()
    train_config(fields)  # refuses unknown datasets, losses and options before anything is queued
    return fields


def create_run(db: Database, body: TrainingRunCreate) -> tuple[TrainingRun, Job]:
    config = _config(body)
    with db.write() as session:
        return training_store.create_run(session, config)


def create_sweep(db: Database, body: SweepCreate) -> tuple[int, list[int]]:
    """One training run per grid cell, all queued; returns (sweep id, job ids)."""
    configs = [
        _config(
            TrainingRunCreate(
                dataset=body.dataset,
                loss=loss,
                architecture=body.architecture,
                latent_dim=latent,
                d_width=width,
                steps=body.steps,
                seed=seed,
                dataset_options=body.dataset_options,
                sample_every=0,
            )
        )
        for loss, latent, width, seed in itertools.product(
            body.losses, body.latent_dims, body.d_widths, body.seeds
        )
    ]
    with db.write() as session:
        sweep = training_store.create_sweep(session, body.model_dump())
        jobs = [training_store.create_run(session, c, sweep.id)[1].id for c in configs]
        return sweep.id, jobs


def run_public(run: TrainingRun, job_id: int | None) -> TrainingRunPublic:
    return TrainingRunPublic(
        id=run.id,
        status=run.status,
        progress=TrainingProgress(step=run.step, steps=run.steps),
        generator_id=run.generator_id,
        config=run.config,
        modes=run.modes,
        sweep_id=run.sweep_id,
        job_id=job_id,
        error=run.error,
    )
