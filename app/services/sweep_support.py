"""The birthday test's answer across a sweep: each cell's N_eff over its seeds and the trend of
N_eff over discriminator width (the paper's second question), from one audit per generator."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import cast

from app.estimate.across_runs import PoolCount, cell_means, width_trend
from app.estimate.simpson import zero_collision_bound
from app.schemas import (
    AuditPublic,
    EstimatePublic,
    SweepNextReview,
    SweepPublic,
    SweepSupport,
    SweepSupportCell,
    SweepSupportRun,
    SweepTrend,
    TrainingRunPublic,
    WaitingFor,
)
from app.services.audits import MAX_POOL, check_archive_size, describe_audits, extend_audit
from app.services.estimates import audit_estimate
from app.settings import Settings
from app.store import audits as audit_store
from app.store import jobs as job_store
from app.store.db import Database
from app.store.jobs import LOCAL_STARTER, Starter
from app.store.models import Audit, Job

Cell = tuple[str, int | None, float]
Group = tuple[str, int | None]


def _cell(run: TrainingRunPublic) -> Cell:
    return str(run.config["loss"]), run.config.get("latent_dim"), float(run.config["d_width"])


def newest_audits(
    audits: Sequence[AuditPublic], generator_ids: set[int], embedder: str | None
) -> dict[int, AuditPublic]:
    """Each generator's newest finished audit (with `embedder`, when named)."""
    chosen: dict[int, AuditPublic] = {}
    for audit in audits:
        gid = audit.generator_id
        if gid not in generator_ids or audit.status != "done":
            continue
        if embedder is not None and audit.embedder != embedder:
            continue
        if gid not in chosen or audit.id > chosen[gid].id:
            chosen[gid] = audit
    return chosen


Waiting = tuple[WaitingFor, str]


def unusable(estimate: EstimatePublic) -> Waiting | None:
    """Why an audit's estimate cannot yet be read as log N_eff with a sampling variance (a mean
    over seeds, a ratio of two audits), and what would fix it; None when it can."""
    if not (estimate.explored or estimate.complete):
        return "review", (
            "its review has not explored every distance band and the miner check: keep labelling"
        )
    if estimate.n_eff is None:
        bound = f" (N_eff >= {estimate.n_eff_low:.4g})" if estimate.n_eff_low else ""
        return "samples", (
            f"no duplicate in its pool{bound}: only a lower bound, so it joins its loss's trend "
            "as a count of 0 but gives its cell no mean alone; extend the pool to sharpen it"
        )
    if estimate.n_eff_high is None or not estimate.n_eff_low:
        return "review", "its interval has no upper bound yet: keep labelling or extend the pool"
    if not estimate.n_eff_low < estimate.n_eff_high:
        return "review", "its interval has no width to weigh it by"
    return None


def _run_row(
    db: Database, run: TrainingRunPublic, audit: AuditPublic | None, level: float
) -> tuple[SweepSupportRun, PoolCount | None]:
    loss, latent_dim, d_width = _cell(run)
    estimate: EstimatePublic | None = None
    waiting: Waiting | None = None
    if run.status != "done":
        waiting = "run", f"the run is {run.status}"
    elif not run.auditable:
        waiting = "images", "it draws 2-D points, not images: its mode coverage is its figure"
    elif audit is None:
        waiting = "audit", "no finished audit of its generator yet"
    else:
        try:
            estimate = audit_estimate(db, audit.id, level=level)
        except ValueError as exc:
            waiting = "audit", str(exc)
        else:
            waiting = unusable(estimate)
    point = None
    cell = (loss, latent_dim, d_width)
    if estimate is not None and waiting is None:
        assert estimate.n_eff and estimate.n_eff_low and estimate.n_eff_high
        point = PoolCount.from_interval(
            cell, d_width, estimate.n_eff, estimate.n_eff_low, estimate.n_eff_high, level
        )
    elif estimate is not None and waiting and waiting[0] == "samples" and estimate.n_eff_low:
        point = PoolCount.from_empty_pool(cell, d_width, estimate.n_eff_low, level)
    row = SweepSupportRun(
        run_id=run.id,
        loss=loss,
        latent_dim=latent_dim,
        d_width=d_width,
        seed=run.config.get("seed"),
        generator_id=run.generator_id,
        audit_id=audit.id if audit else None,
        n=estimate.n if estimate else None,
        n_eff=estimate.n_eff if estimate else None,
        n_eff_low=estimate.n_eff_low if estimate else None,
        n_eff_high=estimate.n_eff_high if estimate else None,
        used=False,  # set once the fits say whether it entered one
        waiting_for=waiting[0] if waiting else None,
        reason=waiting[1] if waiting else _pool_too_small(estimate),
        stop_reached=_reached(estimate) if estimate else None,
        labels_to_go=_labels_to_go(estimate) if estimate else None,
        warnings=estimate.warnings if estimate else [],
    )
    return row, point


def _pool_too_small(estimate: EstimatePublic | None) -> str | None:
    """A review done (no label would help) whose interval is still wider than its target: in
    the figure, but only a larger pool narrows it."""
    if estimate is None or estimate.stop.reached or not estimate.stop.labels_done:
        return None
    stop = estimate.stop
    if stop.limited_by != "samples" or stop.relative_half_width is None:
        return None
    wide = f"its review is done at +-{stop.relative_half_width:.0%} against a target of +-"
    wide += f"{stop.target_relative_half_width:.0%}"
    if stop.samples_to_go is None:
        return f"{wide}, which no pool size reaches at this level"
    return f"{wide}: extend its pool by about {stop.samples_to_go:,} samples"


def _labels_to_go(estimate: EstimatePublic) -> int:
    return 0 if _reached(estimate) else estimate.stop.labels_to_go


def _reached(estimate: EstimatePublic) -> bool:
    """What the review queue goes by: it answers 204 once either holds."""
    return estimate.stop.reached or estimate.stop.labels_done


def next_review(rows: Sequence[SweepSupportRun]) -> SweepNextReview | None:
    """Labels where the figure needs them first: audits it leaves out for want of review, then
    those whose own stopping rule is not met; grid order within each."""
    open_ = [r for r in rows if r.audit_id is not None and r.stop_reached is False]
    blocking = [r for r in open_ if r.waiting_for == "review"]
    for row in blocking + open_:
        assert row.audit_id is not None
        return SweepNextReview(
            run_id=row.run_id, audit_id=row.audit_id, labels_to_go=row.labels_to_go or 0
        )
    return None


def sweep_support(
    db: Database, sweep: SweepPublic, level: float = 0.95, embedder: str | None = None
) -> SweepSupport:
    """N_eff per cell (random-effects mean of log N_eff over seeds) and, per loss and latent
    size, the exponent of N_eff ~ width^b, from each generator's newest finished audit."""
    generator_ids = {r.generator_id for r in sweep.runs if r.generator_id is not None}
    audits = describe_audits(db)
    chosen = newest_audits(audits, generator_ids, embedder)
    embedders = sorted(
        {a.embedder for a in audits if a.generator_id in generator_ids and a.status == "done"}
    )
    rows, points = [], []
    for run in sweep.runs:
        audit = chosen.get(run.generator_id) if run.generator_id is not None else None
        row, point = _run_row(db, run, audit, level)
        rows.append(row)
        points.append(point)
    notes = _notes(rows)
    counted = [p for p in points if p is not None]
    cells, tau, in_cells = _cells(counted, level, notes)
    trends, in_trends = _trends(counted, level, notes)
    for k, point in enumerate(points):
        if point is not None:
            group = cast(Cell, point.cell)[:2]
            rows[k] = rows[k].model_copy(
                update={"used": point.cell in in_cells or group in in_trends}
            )
    return SweepSupport(
        level=level,
        embedder=embedder,
        embedders=embedders,
        runs=rows,
        next_review=next_review(rows),
        cells=cells,
        trends=trends,
        tau=tau,
        notes=notes + _left_out(rows),
    )


def _cells(
    points: list[PoolCount], level: float, notes: list[str]
) -> tuple[list[SweepSupportCell], float | None, set[Cell]]:
    """The cells' means, over the cells with a duplicate in some pool (a cell of empty pools
    has a lower bound only)."""
    with_duplicates = {cast(Cell, p.cell) for p in points if p.has_duplicates}
    for cell in dict.fromkeys(cast(Cell, p.cell) for p in points):
        if cell not in with_duplicates:
            bound = max(p.exposure for p in points if p.cell == cell) / zero_collision_bound(level)
            notes.append(
                f"No pool of cell {_cell_label(cell)} holds a duplicate: no mean for it yet "
                f"(N_eff >= {bound:.4g} from its largest pool); extend its pools."
            )
    members = [p for p in points if p.cell in with_duplicates]
    if not members:
        return [], None, set()
    means = cell_means(members, level)
    if means.tau_at_limit:
        notes.append(_DISAGREE.format(what="A cell's seeds"))
    tau = means.tau if means.df > 0 else None
    if tau is None:
        notes.append(
            "No cell has two runs in the figure: each cell's interval holds its one "
            "generator's sampling noise, not the spread between training seeds."
        )
    cells = [
        SweepSupportCell(
            loss=cast(Cell, c.cell)[0],
            latent_dim=cast(Cell, c.cell)[1],
            d_width=cast(Cell, c.cell)[2],
            runs=c.runs,
            empty_pools=sum(p.cell == c.cell and not p.has_duplicates for p in members),
            n_eff=c.n_eff,
            n_eff_low=c.n_eff_low,
            n_eff_high=c.n_eff_high,
        )
        for c in means.cells
    ]
    return cells, tau, with_duplicates


_DISAGREE = (
    "{what} disagree beyond any spread between training seeds the model allows (log N_eff "
    "varying by more than e, a factor of 15, per standard deviation): the intervals are no "
    "wider than that limit makes them. Look for a broken run or an audit whose labels are off."
)


def _cell_label(cell: Cell) -> str:
    loss, latent_dim, d_width = cell
    latent = "" if latent_dim is None else f", latent {latent_dim}"
    return f"({loss}{latent}, width {d_width:g})"


def _trends(
    points: list[PoolCount], level: float, notes: list[str]
) -> tuple[list[SweepTrend], set[Group]]:
    groups: dict[Group, list[PoolCount]] = {}
    for point in points:
        loss, latent_dim, _width = cast(Cell, point.cell)
        groups.setdefault((loss, latent_dim), []).append(point)
    trends = []
    for (loss, latent_dim), members in groups.items():
        widths = {p.width for p in members}
        pinned = {p.width for p in members if p.has_duplicates}
        label = loss if latent_dim is None else f"{loss}, latent {latent_dim}"
        if len(pinned) < 2 or len(members) < 3:
            if len(widths) > 1 or len(members) > 1:
                notes.append(
                    f"No trend for {label}: it needs runs at two widths or more whose pools hold "
                    f"duplicates, and three runs or more in the figure ({len(members)} at "
                    f"{len(widths)} widths, duplicates at {len(pinned)})."
                )
            continue
        t = width_trend(members, level)
        if t.tau_at_limit:
            notes.append(_DISAGREE.format(what=f"The runs of {label}"))
        trends.append(
            SweepTrend(
                loss=loss,
                latent_dim=latent_dim,
                exponent=t.exponent,
                exponent_low=t.low,
                exponent_high=t.high,
                p_value=t.p_value,
                n_eff_at_width_1=t.n_eff_at_width_1,
                tau=t.tau,
                df=t.df,
                runs=t.runs,
                widths=t.widths,
                empty_pools=t.empty_pools,
            )
        )
    return trends, {(t.loss, t.latent_dim) for t in trends}


def _notes(rows: Sequence[SweepSupportRun]) -> list[str]:
    warned = [r.audit_id for r in rows if r.waiting_for in (None, "samples") and r.warnings]
    if not warned:
        return []
    named = ", ".join(f"#{a}" for a in warned)
    return [
        f"The estimates of audit{'s' if len(warned) > 1 else ''} {named} in the figure warn "
        "about assumptions they lean on (see each audit's page): read those before the trend."
    ]


def _left_out(rows: Sequence[SweepSupportRun]) -> list[str]:
    notes = []
    left_out = [r for r in rows if not r.used]
    if left_out:
        notes.append(
            f"{len(left_out)} of {len(rows)} runs are not in the figure yet (see each reason)."
        )
    empty = [r for r in rows if r.waiting_for == "samples"]
    if empty:
        notes.append(
            f"{len(empty)} pool{'s hold' if len(empty) > 1 else ' holds'} no duplicate: "
            "each enters the fits as a lower bound on N_eff (a Poisson count of 0), as leaving "
            "it out would bias the figure low, but says little. Extending those pools sharpens "
            "the figure (POST /api/sweeps/{id}/extend doubles them all)."
        )
    return notes


SUPPORT_COLUMNS = (
    "run_id",
    "loss",
    "latent_dim",
    "d_width",
    "seed",
    "generator_id",
    "audit_id",
    "n",
    "n_eff",
    "n_eff_low",
    "n_eff_high",
    "used",
    "waiting_for",
    "reason",
)


def support_csv(support: SweepSupport) -> str:
    """A row per run: its grid coordinates and its audit's N_eff with the interval (blank where
    there is none; an open upper bound blank too), for plots of one's own."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SUPPORT_COLUMNS)
    for row in support.runs:
        values = row.model_dump()
        writer.writerow(["" if values[c] is None else values[c] for c in SUPPORT_COLUMNS])
    return out.getvalue()


def extend_empty_pools(
    db: Database,
    settings: Settings,
    support: SweepSupport,
    n_more: int | None,
    starter: Starter = LOCAL_STARTER,
) -> list[tuple[Audit, Job]]:
    """Grow every pool the figure leaves out for want of a duplicate, by n_more each or by its
    own size (their sizes, and the starter's room for all their jobs, checked before any is
    queued; each job is counted again, and attributed, in the transaction that queues it)."""
    plan = [
        (r.audit_id, r.n, n_more or r.n)
        for r in support.runs
        if r.waiting_for == "samples" and r.audit_id is not None and r.n
    ]
    if not plan:
        raise ValueError("no audit of this sweep waits for a larger pool (none lacks duplicates)")
    for audit_id, n, more in plan:
        if n + more > MAX_POOL:
            raise ValueError(f"audit {audit_id} would exceed {MAX_POOL:,} samples")
        with db.read() as session:
            generator_id = audit_store.get_audit(session, audit_id).generator_id
        check_archive_size(
            db, settings, generator_id, n + more
        )  # an archive cannot grow past itself
    with db.read() as session:
        job_store.check_room(session, starter, len(plan))
    return [extend_audit(db, settings, audit_id, more, starter) for audit_id, _n, more in plan]
