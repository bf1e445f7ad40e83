"""A sweep's results table: its runs' mode metrics summarised per grid cell over seeds, as the
mode-collapse papers report them (mean and spread over seeds), and audits of its generators."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.schemas import (
    AuditCreate,
    MetricSummary,
    SweepAuditsCreate,
    SweepCell,
    SweepPublic,
    TrainingRunPublic,
)
from app.services.audits import audit_fields
from app.services.training import describe_run
from app.settings import Settings
from app.store import audits as audit_store
from app.store import jobs as job_store
from app.store import training as training_store
from app.store.db import Database
from app.store.jobs import LOCAL_STARTER, Starter
from app.store.models import Audit, Job

# The same figures under their names for discrete modes, curve segments and digit classes.
CAPTURED = ("modes_captured", "segments_captured")
TOTAL = ("n_modes", "n_segments")
QUALITY = ("high_quality_fraction", "confident_fraction")


def _first(modes: dict[str, Any], keys: Sequence[str]) -> float | None:
    for key in keys:
        if isinstance(modes.get(key), int | float):
            return float(modes[key])
        if key == "kl_to_uniform" and key in modes:
            return math.inf  # stored as null: no good sample at all, infinitely far from uniform
    return None


def summarise(values: Sequence[float]) -> MetricSummary | None:
    """Mean, sample standard deviation (None for one value) and range; None for no values.
    An infinite value (a KL with every count 0) makes the mean and spread None, and itself is
    None at its end of the range (JSON has no infinity)."""
    if not values:
        return None
    finite = all(math.isfinite(v) for v in values)
    mean = statistics.fmean(values) if finite else None
    sd = statistics.stdev(values) if finite and len(values) > 1 else None
    low, high = min(values), max(values)
    return MetricSummary(
        runs=len(values),
        mean=mean,
        sd=sd,
        min=low if math.isfinite(low) else None,
        max=high if math.isfinite(high) else None,
    )


def sweep_cells(runs: Sequence[TrainingRunPublic]) -> list[SweepCell]:
    """One row per (loss, latent size, discriminator width), in the order the grid ran them;
    the metrics summarise its finished runs (the seeds)."""
    groups: dict[tuple[str, int | None, float], list[TrainingRunPublic]] = {}
    for run in runs:
        key = (str(run.config["loss"]), run.config.get("latent_dim"), float(run.config["d_width"]))
        groups.setdefault(key, []).append(run)
    cells = []
    for (loss, latent_dim, d_width), members in groups.items():
        measured = [r.modes for r in members if r.status == "done" and r.modes]

        def metric(keys: Sequence[str], measured: list[dict[str, Any]] = measured) -> list[float]:
            return [v for m in measured if (v := _first(m, keys)) is not None]

        totals = metric(TOTAL)
        cells.append(
            SweepCell(
                loss=loss,
                latent_dim=latent_dim,
                d_width=d_width,
                runs=len(members),
                done=sum(r.status == "done" for r in members),
                run_ids=[r.id for r in members],
                n_modes=int(totals[0]) if totals else None,
                modes_captured=summarise(metric(CAPTURED)),
                quality=summarise(metric(QUALITY)),
                kl_to_uniform=summarise(metric(("kl_to_uniform",))),
            )
        )
    return cells


def sweep_audit_ids(session: Session, generator_ids: Sequence[int]) -> list[int]:
    """Audits of these generators, oldest first."""
    stmt = select(Audit.id).where(Audit.generator_id.in_(generator_ids)).order_by(Audit.id)
    return list(session.scalars(stmt))


def audit_sweep(
    db: Database,
    settings: Settings,
    runs: Sequence[TrainingRunPublic],
    body: SweepAuditsCreate,
    starter: Starter = LOCAL_STARTER,
) -> list[tuple[Audit, Job]]:
    """One audit per finished run whose generator draws images, all checked before any is
    stored, all started by `starter` (within their cap of unfinished jobs); with the
    discriminator embedder and no weights named, each run's own."""
    auditable = [r for r in runs if r.status == "done" and r.auditable and r.generator_id]
    if not auditable:
        raise ValueError(
            "no finished run of this sweep draws images (runs on toy 2-D data report their mode "
            "coverage instead)"
        )
    checked: dict[str, dict[str, Any]] = {}
    planned = []
    for run in auditable:
        options = dict(body.embedder_options)
        if body.embedder == "discriminator" and "weights" not in options:
            if run.discriminator is None:
                raise ValueError(f"training run {run.id} saved no discriminator")
            options["weights"] = run.discriminator
        request = AuditCreate(
            generator_id=run.generator_id,
            **body.model_dump(exclude={"embedder_options"}),
            embedder_options=options,
        )
        # A sweep's generators share the data's shape: each embedder is built (and its weights
        # read) once, not once per run.
        key = json.dumps([run.config.get("dataset"), run.config.get("dataset_options"), options])
        if key not in checked:
            checked[key] = audit_fields(db, settings, request)
        planned.append(
            checked[key] | {"generator_id": run.generator_id, "created_by": starter.name}
        )
    with db.write() as session:
        job_store.check_room(session, starter, len(planned))  # counted where they are inserted
        return [audit_store.create_audit(session, **fields) for fields in planned]


def describe_sweep(
    db: Database, sweep_id: int, models_dir: Path, *, data_dir: Path | None = None
) -> SweepPublic:
    """A sweep's runs, its results per cell and the audits of its generators (`data_dir`: see
    `run_public`)."""
    with db.read() as session:
        sweep = training_store.get_sweep(session, sweep_id)
        runs = [
            describe_run(session, run.id, models_dir, data_dir=data_dir)
            for run in training_store.list_runs(session, sweep_id)
        ]
        generators = [r.generator_id for r in runs if r.generator_id is not None]
        return SweepPublic(
            id=sweep.id,
            grid=sweep.grid,
            created_by=sweep.created_by,
            runs=runs,
            cells=sweep_cells(runs),
            audits=sweep_audit_ids(session, generators),
        )


RUN_COLUMNS = (
    "run_id",
    "loss",
    "architecture",
    "dataset",
    "latent_dim",
    "d_width",
    "g_width",
    "seed",
    "steps",
    "status",
    "step",
    "n_modes",
    "modes_captured",
    "quality",
    "kl_to_uniform",
    "generator_id",
)


def runs_csv(sweep: SweepPublic) -> str:
    """A row per run with its grid coordinates and mode metrics, for the paper's own table
    (blank where a run has no figure; an infinite KL written as inf)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RUN_COLUMNS)
    for run in sweep.runs:
        config, modes = run.config, run.modes or {}
        total, captured, quality, kl = (
            _first(modes, keys) for keys in (TOTAL, CAPTURED, QUALITY, ("kl_to_uniform",))
        )
        writer.writerow(
            [
                run.id,
                config.get("loss"),
                config.get("architecture"),
                config.get("dataset"),
                config.get("latent_dim"),
                config.get("d_width"),
                config.get("g_width"),
                config.get("seed"),
                run.progress.steps,
                run.status,
                run.progress.step,
                *("" if v is None else int(v) for v in (total, captured)),
                *("" if v is None else repr(v) for v in (quality, kl)),
                run.generator_id or "",
            ]
        )
    return out.getvalue()
