"""`birthday serve | train | sweep | upload | audit | extend | set-target | import-labels |
estimate | compare | sweep-support | second-look | paper-protocol | export | digit-classifier |
annotator`: the same services as the API, from a terminal."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.schemas import (
    AuditCreate,
    AuditExtend,
    AuditUpdate,
    EstimatePublic,
    MetricSummary,
    StopRule,
    SweepPublic,
    SyntheticSpec,
)
from app.settings import Settings
from app.store.db import Database
from app.store.errors import Conflict, NotFound
from app.store.migrate import upgrade

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: BIRTHDAY_DATA_DIR or ./data)."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's JSON body.")]
LevelOption = Annotated[float, typer.Option(help="Confidence level of intervals, in (0.5, 1).")]


class ExportOriginChoice(StrEnum):
    all = "all"
    candidate = "candidate"
    random = "random"


class SourceKind(StrEnum):
    synthetic = "synthetic"
    generator = "generator"


def _settings(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir) if data_dir is not None else Settings()


def _open(settings: Settings) -> Database:
    settings.ensure_dirs()
    url = settings.resolved_database_url()
    upgrade(url)
    return Database(url, settings.sqlite_busy_timeout_ms)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _json_object(text: str, option: str) -> dict[str, Any]:
    """A JSON object given on the command line, or a message saying what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{option} is not JSON: {exc}")
    if not isinstance(value, dict):
        _fail(f"{option} must be a JSON object, got {text!r}")
    return value


@cli.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            help="Run jobs on Ray: auto (a cluster started on this machine), HOST:6379 (a "
            "cluster's head) or local (a private instance). Default: the in-process worker."
        ),
    ] = None,
) -> None:
    """Start the dashboard and its worker (in-process, or Ray tasks with --ray)."""
    from app.main import create_app
    from app.serving import serve as serve_app

    settings = _settings(data_dir)
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    if ray is not None:
        settings.ray_address = ray
    try:
        app = create_app(settings)
    except (ValueError, RuntimeError) as exc:  # e.g. a Ray address that cannot work
        _fail(str(exc))
        return
    if settings.auth_required:
        console.print("tokens required: create one with `birthday annotator add NAME --role admin`")
    console.print(
        f"birthday dashboard on http://{settings.host}:{settings.port}/ (data: {settings.data_dir}; "
        f"jobs: {app.state.birthday.runner.executor.describe()})"
    )
    serve_app(app, settings.host, settings.port)


class UploadFormat(StrEnum):
    safetensors = "safetensors"
    state_dict = "state_dict"
    onnx = "onnx"
    torchscript = "torchscript"
    samples = "samples"


@cli.command()
def upload(
    file: Annotated[
        Path,
        typer.Argument(
            help="The generator or sample archive; with --format samples also a folder of "
            "same-size PNGs (sample i is the i-th file by name)."
        ),
    ],
    fmt: Annotated[UploadFormat, typer.Option("--format", help="What the file holds.")],
    name: Annotated[str | None, typer.Option(help="Name (default: the file's name).")] = None,
    architecture: Annotated[
        str | None, typer.Option(help="Built-in architecture, for safetensors or state_dict.")
    ] = None,
    options: Annotated[
        str | None, typer.Option(help="The architecture's options, a JSON object.")
    ] = None,
    latent_dim: Annotated[
        int | None,
        typer.Option(help="Latent size (TorchScript; ONNX where the graph leaves it open)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Register a generator: the file is checked and probed as an upload; prints its id."""
    settings = _settings(data_dir)
    if fmt is UploadFormat.samples and file.is_dir():
        try:
            archive = _zip_folder(file)
        except ValueError as exc:
            _fail(str(exc))
            return
        try:
            _register(settings, archive, fmt, name or file.name, architecture, options, latent_dim)
        finally:
            archive.unlink(missing_ok=True)
        return
    if not file.is_file():
        _fail(f"no such file: {file}")
        return
    _register(settings, file, fmt, name or file.name, architecture, options, latent_dim)


def _zip_folder(folder: Path) -> Path:
    """The folder's PNGs, sorted by name, stored (PNG is compressed already) in a temporary zip."""
    import tempfile
    import zipfile

    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    if not images:
        raise ValueError(f"{folder} holds no .png files")
    handle, name = tempfile.mkstemp(suffix=".zip")
    os.close(handle)
    with zipfile.ZipFile(name, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for image in images:
            archive.write(image, arcname=image.name)
    return Path(name)


def _register(
    settings: Settings,
    file: Path,
    fmt: UploadFormat,
    name: str,
    architecture: str | None,
    options: str | None,
    latent_dim: int | None,
) -> None:
    from app.services.generators import register_upload

    db = _open(settings)
    try:
        with file.open("rb") as stream:
            generator = register_upload(
                db,
                settings,
                name=name,
                fmt=fmt.value,
                architecture=architecture,
                options_text=options,
                latent_dim=latent_dim,
                stream=stream,
            )
    except (ValueError, Conflict) as exc:
        _fail(str(exc))
        return
    shape = "x".join(str(x) for x in generator.image_shape or [])
    latent = f", latent size {generator.latent_dim}" if generator.latent_dim else ""
    console.print(f"generator {generator.id}: {generator.format}, images {shape}{latent}")


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

    settings = _settings(data_dir)
    options = _json_object(embedder_options, "--embedder-options") if embedder_options else {}
    if sweep is not None:
        if generator is not None or support is not None:
            _fail("--sweep audits the sweep's own generators: leave out --generator and --support")
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
    try:
        body = AuditCreate(
            synthetic=(
                SyntheticSpec(support=support, zipf=zipf, noise=noise, continuous=continuous)
                if source is SourceKind.synthetic and support is not None
                else None
            ),
            generator_id=generator if source is SourceKind.generator else None,
            n=n,
            seed=seed,
            embedder=embedder,  # type: ignore[arg-type]
            embedder_options=options,
            miner=miner,  # type: ignore[arg-type]
            neighbours=neighbours,
            random_pairs=random_pairs,
            target=target,
        )
    except ValidationError as exc:
        _fail("; ".join(e["msg"] for e in exc.errors()))
        return
    db = _open(settings)
    try:
        created, job = create_audit(db, settings, body)
    except (ValueError, NotFound, Conflict) as exc:
        _fail(str(exc))
        return
    _run_audit_job(db, settings, created.id, job.id, n)


def _audit_sweep(settings: Settings, sweep_id: int, fields: dict[str, Any]) -> None:
    """One audit per finished image generator of the sweep, run here one after another."""
    from app.schemas import SweepAuditsCreate
    from app.services.sweeps import audit_sweep, describe_sweep

    try:
        body = SweepAuditsCreate(**fields)
    except ValidationError as exc:
        _fail("; ".join(e["msg"] for e in exc.errors()))
        return
    db = _open(settings)
    try:
        runs = describe_sweep(db, sweep_id, settings.models_dir).runs
        created = audit_sweep(db, settings, runs, body)
    except (ValueError, NotFound) as exc:
        _fail(str(exc))
        return
    for audit_row, job in created:
        _run_audit_job(db, settings, audit_row.id, job.id, body.n)
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

    settings = _settings(data_dir)
    try:
        body = AuditExtend(n_more=n_more)
    except ValidationError as exc:
        _fail("; ".join(e["msg"] for e in exc.errors()))
        return
    db = _open(settings)
    try:
        audit, job = extend_audit(db, settings, audit_id, body.n_more)
    except (ValueError, NotFound, Conflict) as exc:
        _fail(str(exc))
        return
    _run_audit_job(db, settings, audit_id, job.id, audit.n)


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
        _fail("name the audits to prune, or give --all")
        return
    settings = _settings(data_dir)
    db = _open(settings)
    if every:
        with db.read() as session:
            audit_ids = sorted(audit.id for audit in list_audits(session))
    results, kept = [], []
    for audit_id in audit_ids or []:
        try:
            result = prune_sample_images(db, settings, audit_id)
        except (NotFound, Conflict) as exc:
            if not every:
                _fail(str(exc))
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
            _fail(str(exc))
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

    try:
        body = AuditUpdate(target=target)
    except ValidationError as exc:
        _fail("; ".join(e["msg"] for e in exc.errors()))
        return
    db = _open(_settings(data_dir))
    try:
        store_target(db, audit_id, body.target)
        stop = audit_estimate(db, audit_id).stop
    except NotFound as exc:
        _fail(str(exc))
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

    db = _open(_settings(data_dir))
    try:
        result = run_import(db, audit_id, source)
    except (ValueError, NotFound, Conflict) as exc:
        _fail(str(exc))
        return
    console.print(
        f"audit {audit_id}: {result.copied} judgements copied from audit {source} "
        f"({result.matched_pairs} of its {result.judged_pairs} judged pairs are here; "
        f"{result.kept} already judged here by the same annotator)"
    )


def _run_audit_job(db: Database, settings: Settings, audit_id: int, job_id: int, n: int) -> None:
    """Run an audit's job in this process with a progress bar; print what the pool holds."""
    from app.jobs.runner import JobRunner
    from app.services.audits import describe_audit

    runner = JobRunner(db, settings)
    with Progress(
        TextColumn(f"audit {audit_id}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[pairs]} pairs"),
        TimeElapsedColumn(),
        console=err,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("samples", total=n, pairs=0)
        outcome = runner.run_job(
            job_id,
            on_progress=lambda done, total, pairs: bar.update(task, completed=done, pairs=pairs),
        )
    if outcome.status != "done":
        _fail(f"audit {audit_id} {outcome.status}: {outcome.error}")
    result = describe_audit(db, audit_id)
    console.print(
        f"audit {audit_id}: {result.progress.samples_done} samples, "
        f"{result.progress.candidate_pairs} candidate pairs"
    )


def _steps_progress(label: str) -> Progress:
    """A bar of training steps on stderr (none when it is not a terminal)."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not sys.stderr.isatty(),
    )


@cli.command()
def train(
    dataset: Annotated[
        str,
        typer.Option(
            help="ring8, grid25, spiral, digits, stacked_digits, mnist, stacked_mnist, ..."
        ),
    ],
    loss: Annotated[
        str, typer.Option(help="sgan_nonsaturating, rsgan, rasgan, veegan, bigan, ...")
    ],
    architecture: Annotated[str, typer.Option(help="mlp | dcgan")] = "mlp",
    latent_dim: Annotated[
        int | None, typer.Option(help="Latent size (default: the architecture's).")
    ] = None,
    d_width: Annotated[float, typer.Option(help="Discriminator width multiplier.")] = 1.0,
    g_width: Annotated[float, typer.Option(help="Generator width multiplier.")] = 1.0,
    steps: Annotated[int, typer.Option(help="Generator updates.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of init, batches and noise.")] = 0,
    image_size: Annotated[int | None, typer.Option(help="Image datasets: side in pixels.")] = None,
    dataset_options: DatasetOptions = None,
    data_dir: DataDir = None,
) -> None:
    """Train a GAN headless; prints its generator id (ready to audit) and its mode metrics."""
    from app.jobs.runner import JobRunner
    from app.schemas import TrainingRunCreate
    from app.services.training import create_run, run_public
    from app.store import training as training_store

    settings = _settings(data_dir)
    try:
        body = TrainingRunCreate(
            dataset=dataset,
            loss=loss,
            architecture=architecture,  # type: ignore[arg-type]
            latent_dim=latent_dim,
            d_width=d_width,
            g_width=g_width,
            steps=steps,
            seed=seed,
            dataset_options=_dataset_options(image_size, dataset_options),
        )
        db = _open(settings)
        run, job = create_run(db, settings.data_dir, body)
    except (ValidationError, ValueError) as exc:
        _fail(str(exc))
        return
    with _steps_progress(f"training run {run.id}") as bar:
        task = bar.add_task("steps", total=steps)
        outcome = JobRunner(db, settings).run_job(
            job.id, on_progress=lambda done, total, _: bar.update(task, completed=done)
        )
    if outcome.status != "done":
        _fail(f"training run {run.id} {outcome.status}: {outcome.error}")
    with db.read() as session:
        finished = training_store.get_run(session, run.id)
        console.print(f"training run {run.id}: generator {finished.generator_id}")
        discriminator = run_public(finished, None, settings.models_dir).discriminator
        if discriminator is not None:
            console.print(
                "its discriminator embeds audits: --embedder discriminator --embedder-options "
                f'\'{{"weights": "{discriminator}"}}\'',
                soft_wrap=True,
                markup=False,
            )
        if finished.modes:
            console.print_json(data=finished.modes)


@cli.command("digit-classifier")
def digit_classifier_command(
    digits: Annotated[str, typer.Option(help="The digit set: mnist or sklearn.")] = "mnist",
    data: Annotated[
        str | None,
        typer.Option(
            help="A keras-style mnist.npz under the data directory's datasets/ to learn from "
            "(default: the packaged digits)."
        ),
    ] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Train (or find) a digit classifier, on all the digits of your mnist.npz when given; prints
    its held-out accuracy and the embedder options that audit with it."""
    from app.services.digit_classifiers import ensure_digit_classifier

    settings = _settings(data_dir)
    try:
        with err.status(f"the {digits} digit classifier"):
            made = ensure_digit_classifier(settings, digits, data)
    except ValueError as exc:
        _fail(str(exc))
        return
    trained = made.trained
    options = {"classifier": trained.digits, "weights": made.weights}
    if as_json:
        body = {
            "digits": trained.digits,
            "source": trained.source,
            "train_digits": trained.train_digits,
            "held_out_accuracy": trained.held_out_accuracy,
            "embedder_options": options,
        }
        console.print_json(data=body)
        return
    learnt = "the packaged digits" if data is None else data
    console.print(
        f"{trained.digits} classifier from {learnt}: {trained.held_out_accuracy:.4f} held-out "
        f"accuracy ({trained.train_digits or '?'} training digits)",
        markup=False,
    )
    console.print(
        f"audit with it: --embedder digits --embedder-options '{json.dumps(options)}'",
        soft_wrap=True,
        markup=False,
    )


DatasetOptions = Annotated[
    str | None,
    typer.Option(
        help='Dataset options as JSON, e.g. \'{"path": "mnist.npz"}\' (a path under '
        "the data directory's datasets/)."
    ),
]


def _dataset_options(image_size: int | None, text: str | None) -> dict[str, Any]:
    """--dataset-options with --image-size folded in (the two must not disagree)."""
    options = _json_object(text, "--dataset-options") if text else {}
    if image_size is not None:
        if options.get("image_size", image_size) != image_size:
            _fail("--image-size and --dataset-options' image_size disagree")
        options["image_size"] = image_size
    return options


def _split(values: list[str] | None, cast: type[int] | type[float], option: str) -> list[Any]:
    """Repeated options and comma lists alike: --d-width 0.5 --d-width 1 or --d-width 0.5,1."""
    try:
        return [cast(v) for value in values or [] for v in value.split(",") if v.strip()]
    except ValueError:
        _fail(f"{option}: numbers, separated by commas")
        return []


@cli.command()
def sweep(
    dataset: Annotated[str, typer.Option(help="ring8, grid25, digits, stacked_mnist, ...")],
    loss: Annotated[
        list[str], typer.Option(help="A loss to train; repeat it (or give a comma list).")
    ],
    architecture: Annotated[str, typer.Option(help="mlp | dcgan")] = "mlp",
    latent_dim: Annotated[list[str] | None, typer.Option(help="Latent sizes (default: 2).")] = None,
    d_width: Annotated[
        list[str] | None, typer.Option(help="Discriminator widths (default: 1).")
    ] = None,
    seed: Annotated[list[str] | None, typer.Option(help="Seeds (default: 0).")] = None,
    g_width: Annotated[float, typer.Option(help="Generator width, every run.")] = 1.0,
    steps: Annotated[int, typer.Option(help="Generator updates per run.")] = 2000,
    image_size: Annotated[int | None, typer.Option(help="Image datasets: side in pixels.")] = None,
    dataset_options: DatasetOptions = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the sweep as JSON.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Train a grid of GANs (every loss x latent size x discriminator width x seed) headless,
    then print its results per cell over seeds and its generators, ready to audit."""
    from app.jobs.runner import JobRunner
    from app.schemas import SweepCreate
    from app.services.sweeps import describe_sweep
    from app.services.training import create_sweep

    settings = _settings(data_dir)
    grid: dict[str, Any] = {
        "dataset": dataset,
        "architecture": architecture,
        "losses": [name.strip() for value in loss for name in value.split(",") if name.strip()],
        "g_width": g_width,
        "steps": steps,
        "dataset_options": _dataset_options(image_size, dataset_options),
    }
    for option, key, values, cast in (
        ("--latent-dim", "latent_dims", latent_dim, int),
        ("--d-width", "d_widths", d_width, float),
        ("--seed", "seeds", seed, int),
    ):
        if values:
            grid[key] = _split(values, cast, option)
    try:
        body = SweepCreate(**grid)
        db = _open(settings)
        sweep_id, job_ids = create_sweep(db, settings.data_dir, body)
    except (ValidationError, ValueError) as exc:
        _fail(str(exc))
        return
    runner = JobRunner(db, settings)
    with _steps_progress(f"sweep {sweep_id}: run {{task.fields[run]}} of {len(job_ids)}") as bar:
        task = bar.add_task("steps", total=steps * len(job_ids), run=1)
        for k, job_id in enumerate(job_ids):
            bar.update(task, run=k + 1)
            before = k * steps

            def advance(done: int, _total: int, _pairs: int, before: int = before) -> None:
                bar.update(task, completed=before + done)

            runner.run_job(job_id, on_progress=advance)
    result = describe_sweep(db, sweep_id, settings.models_dir)
    if as_json:
        console.print_json(result.model_dump_json())
        return
    _print_sweep(result)


def _print_sweep(result: SweepPublic) -> None:
    from rich import box
    from rich.table import Table

    def summary(s: MetricSummary | None, digits: int) -> str:
        if s is None:
            return "-"
        if s.mean is None:  # an infinite value
            return "inf" if s.min is None else f"{s.min:.{digits}f} - inf"
        spread = f"±{s.sd:.{digits}f}" if s.sd is not None else ""
        return f"{s.mean:.{digits}f}{spread}"

    cells = Table(title=f"sweep {result.id}: results per cell, mean±sd over seeds", box=box.SIMPLE)
    cells.add_column("loss", no_wrap=True)
    for column in ("z", "D width", "done", "modes captured", "good samples", "KL"):
        cells.add_column(column, justify="right", no_wrap=True)
    for c in result.cells:
        captured = summary(c.modes_captured, 1) + (f" / {c.n_modes}" if c.n_modes else "")
        cells.add_row(
            c.loss,
            str(c.latent_dim or "default"),
            f"{c.d_width:g}",
            f"{c.done} / {c.runs}",
            captured,
            summary(c.quality, 2),
            summary(c.kl_to_uniform, 2),
        )
    # Wider than a default 80-column pipe: a cut number is worse than a long line.
    Console(width=max(console.width, 110)).print(cells)
    failed = [r for r in result.runs if r.status != "done"]
    for run in failed:
        console.print(f"training run {run.id} {run.status}: {run.error}", markup=False)
    ready = [r for r in result.runs if r.auditable]
    if ready:
        generators = ", ".join(str(r.generator_id) for r in ready)
        console.print(
            f"generators {generators}: audit each with `birthday audit --source generator "
            f"--generator ID`, or all at once from /sweeps/{result.id}",
            markup=False,
        )


@cli.command()
def estimate(
    audit_id: Annotated[int, typer.Argument(metavar="AUDIT")],
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
    level: LevelOption = 0.95,
    target: Annotated[
        float | None,
        typer.Option(
            help="Relative half-width the stopping rule aims for, in (0, 1]; default: the "
            "audit's own target."
        ),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Print it again each time it changes (anyone's labels, a growing pool) until "
            "Ctrl-C; with --json, one JSON body per line.",
        ),
    ] = False,
    every: Annotated[float, typer.Option(hidden=True, min=0.05)] = 2.0,
) -> None:
    """Print an audit's current support-size estimate."""
    from app.services.estimates import audit_estimate

    # The API's bounds (GET /estimate?level=&target=), said as a message rather than a traceback.
    if not 0.5 < level < 1:
        _fail(f"--level must be between 0.5 and 1 (exclusive), not {level}")
        return
    if target is not None and not 0 < target <= 1:
        _fail(f"--target must be in (0, 1], not {target}")
        return
    db = _open(_settings(data_dir))
    if watch:
        _watch_estimate(db, audit_id, level, target, as_json, every)
        return
    try:
        result = audit_estimate(db, audit_id, level=level, target=target)
    except (ValueError, NotFound) as exc:
        _fail(str(exc))
        return
    if as_json:
        console.print_json(result.model_dump_json())
        return
    _print_estimate(audit_id, result)


def _watch_estimate(
    db: Database, audit_id: int, level: float, target: float | None, as_json: bool, every: float
) -> None:
    """Recompute every `every` seconds and print what changed: the store is the only channel
    between this process and the server's, so this reads it (cached, so cheap when nothing
    changed).

    Ctrl-C sets a flag the loop checks instead of raising where it lands: a KeyboardInterrupt
    raised inside a finaliser (a database connection's, during garbage collection) is printed
    and dropped, and the watch went on until killed (seen once in CI under load)."""
    import signal
    import threading
    from datetime import datetime

    from app.services.estimates import audit_estimate

    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    last, waiting = "", ""
    try:
        while not stop.is_set():
            try:
                result = audit_estimate(db, audit_id, level=level, target=target)
            except NotFound as exc:
                _fail(str(exc))
                return
            except ValueError as exc:  # fewer than 2 samples so far: the job is starting
                if str(exc) != waiting:
                    waiting = str(exc)
                    err.print(f"waiting: {exc}")
            else:
                body = result.model_dump_json()
                if body != last:
                    last = body
                    if as_json:
                        print(body, flush=True)  # JSON Lines
                    else:
                        console.rule(datetime.now().strftime("%H:%M:%S"))
                        _print_estimate(audit_id, result)
            stop.wait(every)
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_estimate(audit_id: int, result: EstimatePublic) -> None:
    console.print(
        f"audit {audit_id}: n={result.n}, {result.candidate_pairs} candidate pairs, "
        f"{result.labelled_pairs} labelled, D={result.duplicate_pairs}"
    )
    if result.d_hat is None:
        console.print(
            f"no judgements yet: N_eff >= {result.n_eff_low:.4g} ({result.level:.0%}) even if "
            "every candidate pair were a duplicate"
        )
    elif result.n_eff is None:
        console.print(f"no duplicates found: N_eff >= {result.n_eff_low:.4g} ({result.level:.0%})")
    else:
        high = "inf" if result.n_eff_high is None else f"{result.n_eff_high:.4g}"
        console.print(
            f"N_eff (inverse Simpson) = {result.n_eff:.4g}, "
            f"{result.level:.0%} interval [{result.n_eff_low:.4g}, {high}]"
        )
    parts = result.parts
    if parts.unreviewed is not None:
        missed = "not checked yet" if parts.missed is None else f"{parts.missed:.3g}"
        console.print(
            f"D_hat = {parts.confirmed} confirmed + {parts.unreviewed:.3g} unreviewed "
            f"(estimated) + {missed} missed by the miner"
        )
    for warning in result.warnings:
        console.print(f"warning: {warning}")
    stop = result.stop
    if stop.reached:
        console.print("the target width is met: no more labels needed")
    elif stop.labels_done and stop.limited_by != "miner":
        console.print(
            f"more labels would barely help: extend the pool by {stop.samples_to_go} samples"
        )
    elif not stop.labels_done:
        console.print(
            f"about {stop.labels_to_go} more labels to go "
            f"({result.candidate_pairs} candidate pairs): provisional"
        )
    if stop.reached or stop.labels_done:
        console.print(
            f"the interval assumes every label right: birthday second-look {audit_id} lists the "
            "judgements whose slip would move N_eff most"
        )
    if stop.limited_by == "miner":
        floor = stop.miner_relative_half_width or 0.0
        console.print(
            f"limited by the miner: the duplicates it missed leave +-{floor:.0%} on their own at "
            "any pool size; audit the same source and seed with more neighbours per sample "
            f"(--neighbours) and carry these labels over: birthday import-labels NEW --from "
            f"{audit_id}"
        )


def _batch_count(text: str) -> dict[str, int]:
    """SIZE:HITS/BATCHES, e.g. 400:6/10 (6 of 10 batches of 400 held a duplicate)."""
    size, sep, rest = text.partition(":")
    hits, slash, total = rest.partition("/")
    if not (sep and slash and size.strip().isdigit() and hits.strip().isdigit()):
        raise ValueError(f"{text!r}: write SIZE:HITS/BATCHES, e.g. 400:6/10")
    if not total.strip().isdigit():
        raise ValueError(f"{text!r}: write SIZE:HITS/BATCHES, e.g. 400:6/10")
    return {"size": int(size), "with_duplicate": int(hits), "batches": int(total)}


@cli.command("paper-protocol")
def paper_protocol_command(
    batches: Annotated[
        list[str],
        typer.Argument(
            metavar="SIZE:HITS/BATCHES...",
            help="Per batch size: HITS of BATCHES fresh batches of SIZE held a near-duplicate.",
        ),
    ],
    level: LevelOption = 0.95,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
) -> None:
    """The paper's protocol from batches you drew and inspected (POST /api/paper-protocol):
    shares with exact intervals, s50 and s50^2, the uniform MLE and a test of the uniform model."""
    from rich.table import Table

    from app.services.paper_protocol import BatchCount, PaperProtocolCreate, paper_protocol

    try:
        counts = [BatchCount(**_batch_count(b)) for b in batches]
        body = PaperProtocolCreate(batches=counts, level=level)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        errors = exc.errors() if isinstance(exc, ValidationError) else None
        _fail("; ".join(e["msg"] for e in errors) if errors else str(exc))
        return
    result = paper_protocol(body)
    if as_json:
        console.print_json(result.model_dump_json())
        return
    table = Table(
        "batch size", "batches", "with a duplicate", f"share [{level:.0%}]", "uniform fit"
    )
    for row in result.sizes:
        fit = "–" if row.uniform_share is None else f"{row.uniform_share:.2f}"
        table.add_row(
            str(row.size),
            str(row.batches),
            str(row.with_duplicate),
            f"{row.share:.2f} [{row.share_low:.2f}, {row.share_high:.2f}]",
            fit,
        )
    console.print(table)
    if result.s50 is None:
        console.print("no batch size reaches a share of 1/2: try larger batches")
    else:
        console.print(f"s50 = {result.s50}: the paper's support ~ s50^2 = {result.paper_support:,}")
    high = "inf" if result.n_high is None else f"{result.n_high:,.0f}"
    low = "0" if result.n_low is None else f"{result.n_low:,.0f}"
    if result.n_hat is not None:
        console.print(
            f"uniform-model MLE N = {result.n_hat:,.0f}, {level:.0%} interval [{low}, {high}]"
        )
    else:
        console.print(f"uniform model: N in [{low}, {high}] ({level:.0%}), no interior maximum")
    if result.uniform_fit_p is not None:
        verdict = (
            "far from uniform: s50^2 and the MLE misread its support"
            if result.uniform_fit_p < 0.05
            else "consistent with a uniform generator"
        )
        console.print(f"uniform model fit: p = {result.uniform_fit_p:.3g} ({verdict})")
    console.print(result.note, style="dim", soft_wrap=True)


@cli.command()
def compare(
    audit_ids: Annotated[
        list[str], typer.Argument(metavar="AUDIT...", help="Ids, or a comma list.")
    ],
    level: LevelOption = 0.95,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
) -> None:
    """Print several audits' support-size estimates side by side (GET /api/compare)."""
    from app.api.deps import MAX_ID
    from app.services.compare import compare_items, parse_ids

    if not 0.5 < level < 1:
        _fail(f"--level must be between 0.5 and 1 (exclusive), not {level}")
        return
    db = _open(_settings(data_dir))
    try:
        _, items = compare_items(db, parse_ids(audit_ids, MAX_ID), level=level)
    except (ValueError, NotFound) as exc:
        _fail(str(exc))
        return
    if as_json:
        console.print_json(json.dumps([item.model_dump(mode="json") for item in items]))
        return
    from rich import box
    from rich.table import Table

    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    table = Table(title=f"N_eff (inverse Simpson), {level:.0%} intervals", box=box.SIMPLE)
    table.add_column("audit", justify="right")
    table.add_column("source", no_wrap=True)
    table.add_column("embedder")
    for column in ("n", "labelled", "D", "N_eff", "interval", "s50", "known"):
        table.add_column(column, justify="right", no_wrap=True)
    if items:
        table.add_column(f"x #{items[0].audit.id}", justify="right", no_wrap=True)
    for item in items:
        a, e = item.audit, item.estimate
        source = (
            f"synthetic K={a.synthetic.get('support')}"
            if a.synthetic
            else (a.generator_name or f"generator #{a.generator_id}")
        )
        known = "" if item.known_n_eff is None else str(item.known_n_eff)
        r = item.ratio_to_first
        ratio = "" if r is None else f"{r.value:.3g} [{r.low:.3g}, {r.high:.3g}]"
        if e is None:
            table.add_row(
                str(a.id), source, a.embedder, str(a.n), "", "", f"no estimate ({a.status})",
                "", "", known, ratio,
            )  # fmt: skip
            continue
        n_eff = figure(e.n_eff) if e.n_eff is not None else f">= {figure(e.n_eff_low)}"
        high = "inf" if e.n_eff_high is None else figure(e.n_eff_high)
        table.add_row(
            str(a.id),
            source,
            a.embedder,
            str(e.n),
            f"{e.labelled_pairs} / {e.candidate_pairs}",
            str(e.duplicate_pairs),
            n_eff,
            f"{figure(e.n_eff_low)} - {high}",
            figure(e.s50),
            known,
            ratio,
        )
    Console(width=max(console.width, 180)).print(table)


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
        _fail(f"--level must be between 0.5 and 1 (exclusive), not {level}")
        return
    settings = _settings(data_dir)
    db = _open(settings)
    try:
        result = sweep_support(
            db, describe_sweep(db, sweep_id, settings.models_dir), level, embedder
        )
    except (ValueError, NotFound) as exc:
        _fail(str(exc))
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
    else:
        out.print(f"sweep {sweep_id}: no generator's audit is reviewed yet")
    for t in result.trends:
        group = t.loss if t.latent_dim is None else f"{t.loss}, latent {t.latent_dim}"
        out.print(
            f"{group}: N_eff ~ width^{t.exponent:.2f} ({level:.0%} interval "
            f"{t.exponent_low:.2f} to {t.exponent_high:.2f}, p = {t.p_value:.2g} for no change "
            f"with width; {t.runs} runs at {t.widths} widths)"
        )
    for r in result.runs:
        if not r.used:
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

    settings = _settings(data_dir)
    try:
        body = SweepExtend(n_more=n_more, embedder=embedder)
    except ValidationError as exc:
        _fail("; ".join(e["msg"] for e in exc.errors()))
        return
    db = _open(settings)
    try:
        sweep = describe_sweep(db, sweep_id, settings.models_dir)
        support = sweep_support(db, sweep, embedder=body.embedder)
        extended = extend_empty_pools(db, settings, support, body.n_more)
    except (ValueError, NotFound, Conflict) as exc:
        _fail(str(exc))
        return
    for audit, job in extended:
        _run_audit_job(db, settings, audit.id, job.id, audit.n)
    console.print(f"label their new pairs, then: birthday sweep-support {sweep_id}", markup=False)


@cli.command("second-look")
def second_look(
    audit_id: Annotated[int, typer.Argument(metavar="AUDIT")],
    limit: Annotated[int, typer.Option(min=1, max=50, help="At most this many.")] = 10,
    data_dir: DataDir = None,
) -> None:
    """List the judgements whose slip would move N_eff most (judge them again on the page
    /audits/AUDIT/second-look, or over REST)."""
    from rich import box
    from rich.table import Table

    from app.estimate.leverage import SLIP_RATE
    from app.services.second_look import second_looks

    db = _open(_settings(data_dir))
    try:
        assessment, looks = second_looks(db, audit_id, limit)
    except (ValueError, NotFound) as exc:
        _fail(str(exc))
        return
    e = assessment.estimate
    if not e.labelled_pairs:
        console.print(f"audit {audit_id}: nothing judged yet, nothing to doubt")
        return
    high = "inf" if e.n_eff_high is None else f"{e.n_eff_high:.4g}"
    n_eff = "-" if e.n_eff is None else f"{e.n_eff:.4g}"
    console.print(
        f"audit {audit_id}: N_eff {n_eff} [{e.n_eff_low:.4g}, {high}], D_hat {e.d_hat:.4g}"
    )
    if not looks:
        console.print("no single judgement's slip would move D_hat beyond the interval's noise")
        return
    table = Table(
        "pair",
        "origin",
        "i, j",
        "distance",
        "label",
        "looks",
        "P(slip)",
        "N_eff if wrong",
        box=box.SIMPLE_HEAD,
    )
    for s in looks:
        flipped = "-" if s.flip.n_eff is None else f"{s.flip.n_eff:.4g}"
        where = f"cand. #{s.rank}" if s.rank is not None else "random"
        table.add_row(
            str(s.pair.id),
            where,
            f"{s.pair.i}, {s.pair.j}",
            f"{s.pair.distance:.4f}",
            str(s.pair.label),
            str(s.looks),
            f"{s.flip.slip:.2f}",
            flipped,
        )
    console.print(table)
    console.print(
        f"P(slip): the chance the label is a wrong key, at a {SLIP_RATE:.0%} rate of them. Judge "
        f"them again, blind: /audits/{audit_id}/second-look"
    )


@cli.command()
def export(
    audit_id: Annotated[int, typer.Argument(metavar="AUDIT")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="CSV file to write ('-' for stdout).")
    ] = Path("-"),
    origin: Annotated[
        ExportOriginChoice,
        typer.Option(help="candidate: the miner's pairs; random: the miner check; all: both."),
    ] = ExportOriginChoice.all,
    judgements: Annotated[
        bool,
        typer.Option(
            "--judgements",
            help="Every judgement (annotator, label, time, undone) instead of the pairs.",
        ),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Export an audit's pairs with their labels (or every judgement) as CSV."""
    from app.services.export import write_judgements, write_pairs
    from app.store import audits as audit_store

    db = _open(_settings(data_dir))
    with db.read() as session:  # before a file is opened: a typo must not truncate one
        try:
            audit_store.get_audit(session, audit_id)
        except NotFound as exc:
            _fail(str(exc))
    handle = sys.stdout if str(out) == "-" else out.open("w", newline="")
    try:
        if judgements:
            rows = write_judgements(db, audit_id, handle)
        else:
            rows = write_pairs(db, audit_id, handle, origin.value)
    finally:
        if handle is not sys.stdout:
            handle.close()
    if handle is not sys.stdout:
        what = "judgements" if judgements else "pairs"
        console.print(json.dumps({"audit": audit_id, what: rows, "file": str(out)}))


annotators_cli = typer.Typer(no_args_is_help=True, help="Annotators and their API tokens.")
cli.add_typer(annotators_cli, name="annotator")


@annotators_cli.command("add")
def annotator_add(
    name: Annotated[str, typer.Argument(help="The annotator's name, as judgements record it.")],
    role: Annotated[str, typer.Option(help="annotator | admin")] = "annotator",
    data_dir: DataDir = None,
) -> None:
    """Create an annotator and print their token (shown once; only its hash is stored)."""
    from app.store.annotators import create_annotator

    db = _open(_settings(data_dir))
    try:
        with db.write() as session:
            annotator, token = create_annotator(session, name, role)
    except (ValueError, Conflict) as exc:
        _fail(str(exc))
        return
    err.print(f"annotator {annotator.name!r} ({annotator.role}); token:")
    console.print(token)


@annotators_cli.command("revoke")
def annotator_revoke(
    name: Annotated[str, typer.Argument()],
    data_dir: DataDir = None,
) -> None:
    """Revoke an annotator's token; their judgements stay."""
    from app.store.annotators import revoke_token

    db = _open(_settings(data_dir))
    with db.write() as session:
        revoke_token(session, name)
    console.print(f"token of {name!r} revoked")


def main() -> None:
    cli()
