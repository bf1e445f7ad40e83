"""Queueing training runs and sweeps, and describing them, for the API, the pages and the CLI."""

from __future__ import annotations

import itertools
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.gan.datasets import DATASETS, Dataset
from app.gan.losses import PENALISED
from app.gan.training import LOOP_FIELDS, loop_defaults
from app.jobs.train import discriminator_file, train_config
from app.schemas import (
    DatasetChoice,
    DatasetFile,
    DatasetsPublic,
    SweepCreate,
    TrainingProgress,
    TrainingRunCreate,
    TrainingRunPublic,
)
from app.settings import DEFAULT_MAX_SWEEP_RUNS
from app.store import jobs as job_store
from app.store import training as training_store
from app.store.db import Database
from app.store.errors import Conflict
from app.store.jobs import LOCAL_STARTER, Starter
from app.store.models import Generator, Job, TrainingRun

LOCAL_DATASETS = ("npz", "folder")  # datasets read from a path they must be given
FILE_OPTIONAL_DATASETS = ("mnist", "stacked_mnist")  # a path replaces their packaged digits


def local_dataset_path(data_dir: Path, relative: object) -> str:
    """Datasets on disk live under data_dir/datasets: no user may point training at any file."""
    if not isinstance(relative, str) or not relative:
        raise ValueError("dataset_options.path must be a path relative to the datasets directory")
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or "\\" in relative:
        raise ValueError("dataset_options.path must stay inside the datasets directory")
    return str((data_dir / "datasets" / path).resolve())


MAX_LISTED_FILES = 500


def dataset_choices(data_dir: Path, files: bool = True) -> DatasetsPublic:
    """The datasets a run can name, and (with `files`) the files and folders under
    data/datasets/ to point the ones that read from disk at (what the training page offers)."""
    datasets = [DatasetChoice(name=name, path=_path_use(name)) for name in DATASETS]
    if not files:
        return DatasetsPublic(datasets=datasets, files=[])
    found: list[DatasetFile] = []
    root = data_dir / "datasets"
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError:  # no datasets directory yet
        entries = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found.append(DatasetFile(path=entry.name, kind="folder"))
        elif entry.suffix == ".npz" and entry.is_file():
            found.append(DatasetFile(path=entry.name, kind="npz"))
        if len(found) == MAX_LISTED_FILES:
            break
    return DatasetsPublic(datasets=datasets, files=found)


def _path_use(dataset: str) -> Literal["required", "optional", "none"]:
    if dataset in LOCAL_DATASETS:
        return "required"
    return "optional" if dataset in FILE_OPTIONAL_DATASETS else "none"


def _config(
    body: TrainingRunCreate, data_dir: Path, datasets: dict[str, Dataset] | None = None
) -> dict[str, Any]:
    fields = body.model_dump()
    # left out: the loss's paper's loop, written into the run so that it resumes and shows as run
    defaults = loop_defaults(fields["loss"])
    for name in LOOP_FIELDS:
        if fields[name] is None:
            fields[name] = defaults[name]
    dataset, given = fields["dataset"], fields["dataset_options"]
    if dataset in LOCAL_DATASETS or (dataset in FILE_OPTIONAL_DATASETS and "path" in given):
        options = dict(given)
        options["path"] = local_dataset_path(data_dir, options.get("path"))
        fields["dataset_options"] = options
    # refuses unknown datasets, losses and options before anything is queued
    train_config(fields, datasets)
    return fields


def create_run(
    db: Database, data_dir: Path, body: TrainingRunCreate, starter: Starter = LOCAL_STARTER
) -> tuple[TrainingRun, Job]:
    """Queue a run started by `starter` (within their cap of unfinished jobs)."""
    config = _config(body, data_dir)
    with db.write() as session:
        job_store.check_room(session, starter, 1)  # counted where the job is inserted
        return training_store.create_run(session, config, created_by=starter.name)


def create_sweep(
    db: Database,
    data_dir: Path,
    body: SweepCreate,
    starter: Starter = LOCAL_STARTER,
    max_runs: int = DEFAULT_MAX_SWEEP_RUNS,
) -> tuple[int, list[int]]:
    """One training run per grid cell, all queued and started by `starter` (within their cap of
    unfinished jobs); at most `max_runs` cells. Returns (sweep id, job ids)."""
    cells_count = len(body.losses) * len(body.latent_dims) * len(body.d_widths) * len(body.seeds)
    if cells_count > max_runs:
        raise Conflict(
            f"the grid has {cells_count:,} runs; a sweep may queue at most {max_runs:,} "
            "(BIRTHDAY_MAX_SWEEP_RUNS): fewer losses, latent sizes, widths or seeds, or several "
            "sweeps",
            422,
        )
    if body.gp_weight is not None and not set(body.losses) & set(PENALISED):
        # a run refuses it; a grid of unpenalised losses would have dropped it without a word
        raise ValueError(
            "gp_weight is the gradient penalty's lambda: none of the sweep's losses has one "
            f"({', '.join(PENALISED)} do)"
        )
    cells = [
        TrainingRunCreate(
            dataset=body.dataset,
            loss=loss,
            architecture=body.architecture,
            latent_dim=latent,
            d_width=width,
            g_width=body.g_width,
            steps=body.steps,
            seed=seed,
            dataset_options=body.dataset_options,
            batch_size=body.batch_size,
            lr=body.lr,
            betas=body.betas,
            d_steps=body.d_steps,
            # the penalised losses' lambda: a grid may mix them with others
            gp_weight=body.gp_weight if loss in PENALISED else None,
            architecture_options=body.architecture_options,
            sample_every=0,
        )
        for loss, latent, width, seed in itertools.product(
            body.losses, body.latent_dims, body.d_widths, body.seeds
        )
    ]
    # The cells share their data: read once (an 80-cell MNIST grid read mnist.npz 80 times).
    datasets: dict[str, Dataset] = {}
    configs = [_config(cell, data_dir, datasets) for cell in cells]
    with db.write() as session:
        job_store.check_room(session, starter, len(configs))  # counted where they are inserted
        sweep = training_store.create_sweep(session, body.model_dump(), starter.name)
        jobs = [
            training_store.create_run(session, c, sweep.id, starter.name)[1].id for c in configs
        ]
        return sweep.id, jobs


def run_public(
    run: TrainingRun,
    job_id: int | None,
    models_dir: Path,
    generator: Generator | None = None,
    *,
    data_dir: Path | None = None,
) -> TrainingRunPublic:
    """A run as the API shows it; with `data_dir`, its data file's path as the user gave it
    (relative to data/datasets/), not where the server keeps it."""
    discriminator = discriminator_file(run.id)
    saved = run.status == "done" and (models_dir / discriminator).is_file()
    return TrainingRunPublic(
        id=run.id,
        status=run.status,
        progress=TrainingProgress(step=run.step, steps=run.steps),
        generator_id=run.generator_id,
        config=run.config if data_dir is None else shown_config(run.config, data_dir),
        modes=run.modes,
        sweep_id=run.sweep_id,
        job_id=job_id,
        error=run.error,
        discriminator=discriminator if saved else None,
        auditable=generator is not None and generator.auditable,
        created_by=run.created_by,
    )


def describe_run(
    session: Session, run_id: int, models_dir: Path, *, data_dir: Path | None = None
) -> TrainingRunPublic:
    """A stored run as the API shows it: its latest job, its generator's auditability."""
    run = training_store.get_run(session, run_id)
    generator = session.get(Generator, run.generator_id) if run.generator_id else None
    stmt = select(Job.id).where(Job.training_run_id == run_id).order_by(Job.id.desc()).limit(1)
    job_id = session.scalars(stmt).first()
    return run_public(run, job_id, models_dir, generator, data_dir=data_dir)


def shown_config(config: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """The config with its data file relative to data/datasets/: a reader (public ones too)
    learns nothing of the server's directories."""
    path = config.get("dataset_options", {}).get("path")
    if not isinstance(path, str):
        return config
    root = (data_dir / "datasets").resolve()
    try:
        relative = PurePosixPath(Path(path).relative_to(root).as_posix())
    except ValueError:
        relative = PurePosixPath(Path(path).name)  # moved data directory: the name alone
    return {**config, "dataset_options": {**config["dataset_options"], "path": str(relative)}}
