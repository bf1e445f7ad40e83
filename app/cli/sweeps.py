"""`birthday sweep-support | sweep-extend`: the birthday test across a sweep."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from app.cli.common import (
    DataDir,
    JsonFlag,
    LevelOption,
    cli,
    console,
    fail,
    open_store,
    run_audit_job,
    settings_for,
    validated,
)
from app.store.errors import Conflict, NotFound


@cli.command("sweep-support")
def sweep_support_command(
    sweep_id: Annotated[int, typer.Argument(metavar="SWEEP")],
    level: LevelOption = 0.95,
    embedder: Annotated[
        str | None, typer.Option(help="Only audits with this embedder (pixels, clip, ...).")
    ] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
) -> None:
    """Print a sweep's support per cell and N_eff ~ width^b per loss (GET
    /api/sweeps/SWEEP/support): does a wider discriminator buy a larger support?"""
    from app.services.sweep_support import sweep_support
    from app.services.sweeps import describe_sweep

    if not 0.5 < level < 1:
        fail(f"--level must be between 0.5 and 1 (exclusive), not {level}")
        return
    settings = settings_for(data_dir)
    db = open_store(settings)
    try:
        result = sweep_support(
            db, describe_sweep(db, sweep_id, settings.models_dir), level, embedder
        )
    except (ValueError, NotFound) as exc:
        fail(str(exc))
        return
    if as_json:
        console.print_json(result.model_dump_json())
        return
    from rich import box
    from rich.table import Table

    table = Table(title=f"N_eff per cell over seeds, {level:.0%} intervals", box=box.SIMPLE)
    for column in ("loss", "latent", "D width", "runs", "N_eff", "interval"):
        table.add_column(column, justify="left" if column == "loss" else "right", no_wrap=True)
    for c in result.cells:
        table.add_row(
            c.loss,
            "default" if c.latent_dim is None else str(c.latent_dim),
            f"{c.d_width:g}",
            str(c.runs),
            f"{c.n_eff:.4g}",
            f"{c.n_eff_low:.4g} - {c.n_eff_high:.4g}",
        )
    out = Console(width=max(console.width, 120))
    if result.cells:
        out.print(table)
    elif any(r.waiting_for == "samples" for r in result.runs):
        out.print(f"sweep {sweep_id}: no cell has a pool with a duplicate yet")
    else:
        out.print(f"sweep {sweep_id}: no generator's audit is reviewed yet")
    for t in result.trends:
        group = t.loss if t.latent_dim is None else f"{t.loss}, latent {t.latent_dim}"
        out.print(
            f"{group}: N_eff ~ width^{t.exponent:.2f} ({level:.0%} interval "
            f"{t.exponent_low:.2f} to {t.exponent_high:.2f}, p = {t.p_value:.2g} for no change "
            f"with width; {t.runs} runs at {t.widths} widths"
            + (f", {t.empty_pools} of them with no duplicate" if t.empty_pools else "")
            + ")"
        )
    for r in result.runs:
        if r.reason:  # left out, in only as a lower bound, or waiting for a larger pool
            audit = "" if r.audit_id is None else f" (audit {r.audit_id})"
            out.print(f"run {r.run_id}{audit}: {r.reason}")
    for note in result.notes:
        out.print(note, style="dim", markup=False)
    if result.next_review:
        nxt = result.next_review
        out.print(
            f"next: review audit {nxt.audit_id} (run {nxt.run_id}, about {nxt.labels_to_go} "
            f"labels to go) on /audits/{nxt.audit_id}/review?sweep={sweep_id}",
            markup=False,
        )
    if any(r.waiting_for == "samples" for r in result.runs):
        out.print(f"grow the pools with no duplicate: birthday sweep-extend {sweep_id}")


@cli.command("sweep-extend")
def sweep_extend(
    sweep_id: Annotated[int, typer.Argument(metavar="SWEEP")],
    n_more: Annotated[
        int | None,
        typer.Option("--n-more", help="Samples to add to each (default: double each pool)."),
    ] = None,
    embedder: Annotated[
        str | None, typer.Option(help="As for sweep-support: that embedder's audits only.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Grow, headless, the pool of every audit a sweep's support figure leaves out for want of a
    duplicate (POST /api/sweeps/SWEEP/extend), keeping their pairs and labels."""
    from app.schemas import SweepExtend
    from app.services.sweep_support import extend_empty_pools, sweep_support
    from app.services.sweeps import describe_sweep

    settings = settings_for(data_dir)
    body = validated(SweepExtend, n_more=n_more, embedder=embedder)
    db = open_store(settings)
    try:
        sweep = describe_sweep(db, sweep_id, settings.models_dir)
        support = sweep_support(db, sweep, embedder=body.embedder)
        extended = extend_empty_pools(db, settings, support, body.n_more)
    except (ValueError, NotFound, Conflict) as exc:
        fail(str(exc))
        return
    for audit, job in extended:
        run_audit_job(db, settings, audit.id, job.id, audit.n)
    console.print(f"label their new pairs, then: birthday sweep-support {sweep_id}", markup=False)
