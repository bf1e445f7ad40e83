"""`birthday train | sweep | digit-classifier`: GANs trained headless, and the digit
classifier that counts their modes."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from app.cli.common import (
    DataDir,
    JsonFlag,
    cli,
    console,
    err,
    fail,
    job_logs,
    json_object,
    open_store,
    problem,
    settings_for,
    steps_progress,
    validated,
)
from app.schemas import (
    MetricSummary,
    SweepPublic,
)

DatasetOptions = Annotated[
    str | None,
    typer.Option(
        help='Dataset options as JSON, e.g. \'{"path": "mnist.npz"}\' (a path under '
        "the data directory's datasets/)."
    ),
]

BatchSize = Annotated[int, typer.Option(help="Samples per batch, real and fake.")]
LearningRate = Annotated[
    float | None,
    typer.Option(
        help="Adam's learning rate, every network (default: the loss's paper's, wgan_gp 1e-4, "
        "DCGAN's 2e-4 for the others)."
    ),
]
Betas = Annotated[
    str | None,
    typer.Option(
        help="Adam's beta1,beta2 (default: the loss's paper's, wgan_gp 0,0.9, DCGAN's "
        "0.5,0.999 for the others)."
    ),
]
DSteps = Annotated[
    int | None,
    typer.Option(
        help="Discriminator updates per generator update (default: the loss's paper's, wgan_gp "
        "5, 1 for the others)."
    ),
]
GpWeight = Annotated[
    float | None,
    typer.Option(
        help="Lambda of the gradient penalty (wgan_gp, rsgan_gp, rasgan_gp); default the papers' "
        "10 (WGAN-GP's code uses 0.1 on toy 2-D data)."
    ),
]
ArchitectureOptions = Annotated[
    str | None,
    typer.Option(
        help='Network sizes as JSON: \'{"hidden": 256, "depth": 3}\' (mlp), \'{"base_width": '
        '32, "d_norm": "layer"}\' (dcgan; d_norm batch, layer or none, layer by default for '
        "the gradient-penalty losses)."
    ),
]


def _loop_knobs(
    batch_size: int,
    lr: float | None,
    betas: str | None,
    d_steps: int | None,
    architecture_options: str | None,
    gp_weight: float | None = None,
) -> dict[str, Any]:
    """The training loop's knobs as TrainingRunCreate and SweepCreate take them (None: the
    loss's paper's)."""
    pair: list[float] | None = None
    if betas is not None:
        try:
            pair = [float(b) for b in betas.split(",")]
        except ValueError:
            pair = []
        if len(pair) != 2:
            fail("--betas: two numbers, beta1,beta2, e.g. 0.5,0.999")
    return {
        "batch_size": batch_size,
        "lr": lr,
        "betas": None if pair is None else tuple(pair),
        "d_steps": d_steps,
        "gp_weight": gp_weight,
        "architecture_options": (
            json_object(architecture_options, "--architecture-options")
            if architecture_options
            else {}
        ),
    }


@cli.command()
def train(
    dataset: Annotated[
        str,
        typer.Option(
            help="ring8, grid25, spiral, digits, stacked_digits, mnist, stacked_mnist, ..."
        ),
    ],
    loss: Annotated[
        str, typer.Option(help="sgan_nonsaturating, rsgan, rasgan, veegan, bigan, ali, ...")
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
    batch_size: BatchSize = 64,
    lr: LearningRate = None,
    betas: Betas = None,
    d_steps: DSteps = None,
    gp_weight: GpWeight = None,
    architecture_options: ArchitectureOptions = None,
    data_dir: DataDir = None,
) -> None:
    """Train a GAN headless; prints its generator id (ready to audit) and its mode metrics."""
    from app.jobs.runner import JobRunner
    from app.schemas import TrainingRunCreate
    from app.services.training import create_run, run_public
    from app.store import training as training_store

    settings = settings_for(data_dir)
    body = validated(
        TrainingRunCreate,
        dataset=dataset,
        loss=loss,
        architecture=architecture,
        latent_dim=latent_dim,
        d_width=d_width,
        g_width=g_width,
        steps=steps,
        seed=seed,
        dataset_options=_dataset_options(image_size, dataset_options),
        **_loop_knobs(batch_size, lr, betas, d_steps, architecture_options, gp_weight),
    )
    db = open_store(settings)
    try:
        run, job = create_run(db, settings.data_dir, body)
    except ValueError as exc:
        fail(problem(exc))
    with steps_progress(f"training run {run.id}") as bar, job_logs():
        task = bar.add_task("steps", total=steps)
        outcome = JobRunner(db, settings).run_job(
            job.id, on_progress=lambda done, total, _: bar.update(task, completed=done)
        )
    if outcome.status != "done":
        fail(f"training run {run.id} {outcome.status}: {outcome.error}")
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
            # A count per mode (1,000 on stacked digits) would bury the figures: the API has them.
            shown = {k: v for k, v in finished.modes.items() if k != "counts"}
            console.print_json(data=shown)
            if "counts" in finished.modes:
                console.print(
                    f"samples per mode: GET /api/training-runs/{run.id} (modes.counts)",
                    markup=False,
                )


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

    settings = settings_for(data_dir)
    try:
        with err.status(f"the {digits} digit classifier"):
            weights, trained = ensure_digit_classifier(settings, digits, data)
    except ValueError as exc:
        fail(str(exc))
        return
    options = {"classifier": trained.digits, "weights": weights}
    if as_json:
        console.print_json(data={**trained.summary(), "embedder_options": options})
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


def _dataset_options(image_size: int | None, text: str | None) -> dict[str, Any]:
    """--dataset-options with --image-size folded in (the two must not disagree)."""
    options = json_object(text, "--dataset-options") if text else {}
    if image_size is not None:
        if options.get("image_size", image_size) != image_size:
            fail("--image-size and --dataset-options' image_size disagree")
        options["image_size"] = image_size
    return options


def _split(values: list[str] | None, cast: type[int] | type[float], option: str) -> list[Any]:
    """Repeated options and comma lists alike: --d-width 0.5 --d-width 1 or --d-width 0.5,1."""
    try:
        return [cast(v) for value in values or [] for v in value.split(",") if v.strip()]
    except ValueError:
        fail(f"{option}: numbers, separated by commas")
        return []


@cli.command()
def sweep(
    dataset: Annotated[str, typer.Option(help="ring8, grid25, digits, stacked_mnist, ...")],
    loss: Annotated[
        list[str], typer.Option(help="A loss to train; repeat it (or give a comma list).")
    ],
    architecture: Annotated[str, typer.Option(help="mlp | dcgan")] = "mlp",
    latent_dim: Annotated[
        list[str] | None,
        typer.Option(help="Latent sizes (default: the architecture's, mlp 2, dcgan 100)."),
    ] = None,
    d_width: Annotated[
        list[str] | None, typer.Option(help="Discriminator widths (default: 1).")
    ] = None,
    seed: Annotated[list[str] | None, typer.Option(help="Seeds (default: 0).")] = None,
    g_width: Annotated[float, typer.Option(help="Generator width, every run.")] = 1.0,
    steps: Annotated[int, typer.Option(help="Generator updates per run.")] = 2000,
    image_size: Annotated[int | None, typer.Option(help="Image datasets: side in pixels.")] = None,
    dataset_options: DatasetOptions = None,
    batch_size: BatchSize = 64,
    lr: LearningRate = None,
    betas: Betas = None,
    d_steps: DSteps = None,
    gp_weight: GpWeight = None,
    architecture_options: ArchitectureOptions = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the sweep as JSON.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Train a grid of GANs (every loss x latent size x discriminator width x seed) headless,
    then print its results per cell over seeds and its generators, ready to audit."""
    from app.jobs.runner import JobRunner
    from app.schemas import SweepCreate
    from app.services.sweeps import describe_sweep
    from app.services.training import create_sweep

    settings = settings_for(data_dir)
    grid: dict[str, Any] = {
        "dataset": dataset,
        "architecture": architecture,
        "losses": [name.strip() for value in loss for name in value.split(",") if name.strip()],
        "g_width": g_width,
        "steps": steps,
        "dataset_options": _dataset_options(image_size, dataset_options),
        **_loop_knobs(batch_size, lr, betas, d_steps, architecture_options, gp_weight),
    }
    for option, key, values, cast in (
        ("--latent-dim", "latent_dims", latent_dim, int),
        ("--d-width", "d_widths", d_width, float),
        ("--seed", "seeds", seed, int),
    ):
        if values:
            grid[key] = _split(values, cast, option)
    body = validated(SweepCreate, **grid)
    db = open_store(settings)
    try:
        sweep_id, job_ids = create_sweep(
            db, settings.data_dir, body, max_runs=settings.max_sweep_runs
        )
    except ValueError as exc:
        fail(problem(exc))
    runner = JobRunner(db, settings)
    with (
        steps_progress(f"sweep {sweep_id}: run {{task.fields[run]}} of {len(job_ids)}") as bar,
        job_logs(),
    ):
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
    else:
        _print_sweep(result)
    failed = [r for r in result.runs if r.status == "failed"]
    if failed:  # the table shows them; the exit status must too, for scripts
        first = failed[0]
        fail(
            f"{len(failed)} of {len(result.runs)} runs of sweep {sweep_id} failed "
            f"(run {first.id}: {first.error})"
        )


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
