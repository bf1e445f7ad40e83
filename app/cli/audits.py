"""`birthday audit | extend | prune-images | set-target | import-labels`: audits headless."""

from __future__ import annotations

import dataclasses
import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from app.cli.common import (
    DataDir,
    JsonFlag,
    cli,
    console,
    fail,
    json_object,
    open_store,
    problem,
    run_audit_job,
    settings_for,
    validated,
)
from app.schemas import (
    AuditCreate,
    AuditExtend,
    AuditUpdate,
    StopRule,
    SyntheticSpec,
)
from app.settings import Settings
from app.store.errors import Conflict, NotFound


class SourceKind(StrEnum):
    synthetic = "synthetic"
    generator = "generator"


@cli.command()
def audit(
    source: Annotated[
        SourceKind, typer.Option(help="Where samples come from.")
    ] = SourceKind.synthetic,
    support: Annotated[int | None, typer.Option(help="Synthetic: number of prototypes K.")] = None,
    zipf: Annotated[float, typer.Option(help="Synthetic: Zipf exponent (0 = uniform).")] = 0.0,
    noise: Annotated[float, typer.Option(help="Synthetic: pixel noise std.")] = 0.02,
    continuous: Annotated[
        float, typer.Option(help="Synthetic: share of mass on never-repeating samples.")
    ] = 0.0,
    generator: Annotated[
        int | None, typer.Option(help="Generator id, for --source generator.")
    ] = None,
    n: Annotated[int, typer.Option(help="Pool size.")] = 2000,
    seed: Annotated[int, typer.Option(help="Pool seed.")] = 0,
    embedder: Annotated[
        str, typer.Option(help="pixels | clip | efficientnet | digits | discriminator")
    ] = "pixels",
    embedder_options: Annotated[
        str | None,
        typer.Option(
            help='The embedder\'s options as JSON, e.g. \'{"model": "ViT-B-32", "weights": '
            '"clip/ViT-B-32.safetensors"}\' (paths relative to the models directory).'
        ),
    ] = None,
    miner: Annotated[str, typer.Option(help="auto | exact | hnsw")] = "auto",
    neighbours: Annotated[
        int | None,
        typer.Option(help="k of the k-NN search: more catch duplicates the miner would miss."),
    ] = None,
    random_pairs: Annotated[
        int, typer.Option(help="Random non-candidate pairs per pool size (the miner check).")
    ] = 50,
    target: Annotated[
        float,
        typer.Option(
            help="Relative half-width of the N_eff interval the review aims for (its stopping "
            "rule); change it later with `birthday set-target`."
        ),
    ] = 0.2,
    sweep: Annotated[
        int | None,
        typer.Option(
            help="Audit every finished image generator of this sweep, one audit each (with "
            "--embedder discriminator and no weights: each run's own)."
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Run an audit headless: sample, embed, mine; prints the number of candidate pairs."""
    from app.services.audits import create_audit

    settings = settings_for(data_dir)
    options = json_object(embedder_options, "--embedder-options") if embedder_options else {}
    if sweep is not None:
        if generator is not None or support is not None:
            fail("--sweep audits the sweep's own generators: leave out --generator and --support")
        _audit_sweep(
            settings,
            sweep,
            {
                "n": n,
                "seed": seed,
                "embedder": embedder,
                "embedder_options": options,
                "miner": miner,
                "neighbours": neighbours,
                "random_pairs": random_pairs,
                "target": target,
            },
        )
        return
    if source is SourceKind.generator and generator is None:
        fail("--source generator needs --generator ID")
    if source is SourceKind.generator and support is not None:
        fail("--support is for a synthetic source; --source generator audits --generator ID")
    if source is SourceKind.synthetic and generator is not None:
        fail("--generator needs --source generator (the source is synthetic by default)")
    if source is SourceKind.synthetic and support is None:
        fail(
            "--generator needs --source generator"
            if generator is not None
            else "give --support K (a synthetic source of K prototypes), or --source generator "
            "--generator ID"
        )
    body = validated(
        AuditCreate,
        synthetic=(
            validated(SyntheticSpec, support=support, zipf=zipf, noise=noise, continuous=continuous)
            if source is SourceKind.synthetic
            else None
        ),
        generator_id=generator if source is SourceKind.generator else None,
        n=n,
        seed=seed,
        embedder=embedder,
        embedder_options=options,
        miner=miner,
        neighbours=neighbours,
        random_pairs=random_pairs,
        target=target,
    )
    db = open_store(settings)
    try:
        created, job = create_audit(db, settings, body)
    except (ValueError, NotFound, Conflict) as exc:
        fail(problem(exc))
        return
    run_audit_job(db, settings, created.id, job.id, n)


def _audit_sweep(settings: Settings, sweep_id: int, fields: dict[str, Any]) -> None:
    """One audit per finished image generator of the sweep, run here one after another."""
    from app.schemas import SweepAuditsCreate
    from app.services.sweeps import audit_sweep, describe_sweep

    body = validated(SweepAuditsCreate, **fields)
    db = open_store(settings)
    try:
        runs = describe_sweep(db, sweep_id, settings.models_dir).runs
        created = audit_sweep(db, settings, runs, body)
    except (ValueError, NotFound) as exc:
        fail(problem(exc))
        return
    for audit_row, job in created:
        run_audit_job(db, settings, audit_row.id, job.id, body.n)
    ids = ",".join(str(a.id) for a, _ in created)
    for line in (
        "label their pairs (the sweep's page leads from one review to the next), then:",
        f"  birthday sweep-support {sweep_id}    # N_eff per cell and N_eff ~ width^b",
        f"  birthday compare {ids}    # the audits side by side",
    ):
        console.print(line, markup=False, soft_wrap=True)


@cli.command()
def extend(
    audit_id: Annotated[int, typer.Argument(metavar="AUDIT")],
    n_more: Annotated[int, typer.Option("--n-more", help="Samples to add to the pool.")],
    data_dir: DataDir = None,
) -> None:
    """Grow a finished audit's pool headless, keeping its pairs and labels.

    New samples are mined against the existing index, and a new generation of random pairs
    checks the miner on the pairs they add.
    """
    from app.services.audits import extend_audit

    settings = settings_for(data_dir)
    body = validated(AuditExtend, n_more=n_more)
    db = open_store(settings)
    try:
        audit, job = extend_audit(db, settings, audit_id, body.n_more)
    except (ValueError, NotFound, Conflict) as exc:
        fail(problem(exc))
        return
    run_audit_job(db, settings, audit_id, job.id, audit.n)


@cli.command("prune-images")
def prune_images(
    audit_ids: Annotated[list[int] | None, typer.Argument(metavar="[AUDIT...]")] = None,
    every: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Every audit of the store; those whose PNGs must stay are listed, not failed.",
        ),
    ] = False,
    vacuum: Annotated[
        bool,
        typer.Option(
            help="Then rewrite the SQLite file so the disk gets the space back (VACUUM: a while "
            "on a large store, and as much free disk as the store's size)."
        ),
    ] = False,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Drop the stored sample PNGs the server can draw again, one anchor per job step kept.

    For audits made with every PNG stored (before images were drawn on demand, or with
    BIRTHDAY_SAMPLE_IMAGES=stored). A spread of stored samples is drawn again and compared
    first: an audit whose generator file changed keeps its images.
    """
    from app.services.image_pruning import prune_sample_images
    from app.store.audits import list_audits

    if every == bool(audit_ids):
        fail("name the audits to prune, or give --all")
        return
    settings = settings_for(data_dir)
    db = open_store(settings)
    if every:
        with db.read() as session:
            audit_ids = sorted(audit.id for audit in list_audits(session))
    results, kept = [], []
    for audit_id in audit_ids or []:
        try:
            result = prune_sample_images(db, settings, audit_id)
        except (NotFound, Conflict) as exc:
            if not every:
                fail(str(exc))
                return
            kept.append({"audit_id": audit_id, "reason": str(exc)})
            if not as_json:
                console.print(f"audit {audit_id}: kept as is: {exc}")
            continue
        results.append(dataclasses.asdict(result))
        if not as_json:
            console.print(
                f"audit {audit_id}: {result.dropped:,} PNGs dropped "
                f"({result.bytes_freed / 1e6:,.1f} MB), {result.kept:,} kept; "
                f"{result.checked} drawn again and matched first"
            )
    if vacuum:
        try:
            db.vacuum()
        except ValueError as exc:
            fail(str(exc))
            return
    if as_json:
        console.print_json(json.dumps({"pruned": results, "kept_as_is": kept}))


@cli.command("set-target")
def set_target(
    audit_id: Annotated[int, typer.Argument(metavar="AUDIT")],
    target: Annotated[
        float,
        typer.Argument(help="Relative half-width of the N_eff interval to aim for, in (0, 1]."),
    ],
    data_dir: DataDir = None,
) -> None:
    """Aim an audit's stopping rule at another interval width (PATCH /api/audits/{id}).

    Labels stand; the review queue, the estimate's stopping rule and its labels and samples
    to go follow the new target.
    """
    from app.services.audits import set_target as store_target
    from app.services.estimates import audit_estimate

    body = validated(AuditUpdate, {"target": "TARGET"}, target=target)
    db = open_store(settings_for(data_dir))
    try:
        store_target(db, audit_id, body.target)
        stop = audit_estimate(db, audit_id).stop
    except NotFound as exc:
        fail(str(exc))
        return
    except ValueError:  # fewer than 2 samples so far: no estimate to tell about yet
        console.print(f"audit {audit_id} aims for ±{body.target:.0%}")
        return
    console.print(f"audit {audit_id} aims for ±{body.target:.0%}: {_stop_line(stop)}")


def _stop_line(stop: StopRule) -> str:
    if stop.reached:
        return "the target is met, no more labels needed"
    if stop.labels_done:
        more = (
            f"; extend the pool by about {stop.samples_to_go} samples" if stop.samples_to_go else ""
        )
        return f"more labels would barely narrow the interval{more}"
    return f"about {stop.labels_to_go} labels to go"


@cli.command("import-labels")
def import_labels(
    audit_id: Annotated[int, typer.Argument(metavar="AUDIT")],
    source: Annotated[
        int, typer.Option("--from", help="The audit to copy judgements from (same samples).")
    ],
    data_dir: DataDir = None,
) -> None:
    """Copy another audit's judgements onto this audit's pairs with the same (i, j).

    Both audits must sample the same source with the same seed, e.g. this one re-mined with
    more neighbours per sample; the labels already spent then count here too.
    """
    from app.services.label_import import import_labels as run_import

    db = open_store(settings_for(data_dir))
    try:
        result = run_import(db, audit_id, source)
    except (ValueError, NotFound, Conflict) as exc:
        fail(str(exc))
        return
    console.print(
        f"audit {audit_id}: {result.copied} judgements copied from audit {source} "
        f"({result.matched_pairs} of its {result.judged_pairs} judged pairs are here; "
        f"{result.kept} already judged here by the same annotator)"
    )
