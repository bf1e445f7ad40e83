"""The training job: run a GAN training loop and turn its events into plain results.

Like the audit job it never touches the store: it yields progress, loss rows, sample-grid PNGs and,
at the end, the path of the saved checkpoint with the mode metrics; the runner writes them.

An interrupted run goes on from its last resumable state: every `sample_every` steps (or every
CHECKPOINT_EVERY when the run draws no grids) the job writes the loop's whole state next to where
the generator will go, atomically, and a later attempt of the same run starts after that step.
The steps between that state and the interruption are trained again (on CPU, identically), and
their loss rows and grids are written again over the lost attempt's (`store/training.py`).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from app.gan.checkpoint import save_discriminator, save_generator
from app.gan.datasets import Dataset, make_dataset
from app.gan.digit_classifier import DATASET_DIGITS, TrainedClassifier, cached_digit_classifier
from app.gan.evaluation import generated_modes
from app.gan.registry import generator_spec
from app.gan.resume import load_train_state, save_train_state
from app.gan.training import (
    TrainCheckpoint,
    TrainConfig,
    TrainEvent,
    TrainFinished,
    TrainProgress,
    TrainSamples,
    check_config,
    train,
)

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 500  # steps between resumable states of a run with sample_every = 0


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def train_config(fields: dict[str, Any], datasets: dict[str, Dataset] | None = None) -> TrainConfig:
    """A validated TrainConfig from JSON-like fields; unknown names are refused. `datasets`:
    data read already (see `check_config`)."""
    allowed = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValueError(f"unknown training option(s) {', '.join(unknown)}")
    values = dict(fields)
    if "betas" in values and values["betas"] is not None:
        values["betas"] = tuple(values["betas"])
    config = TrainConfig(**values)
    # data, architecture, options and size together, on the meta device: no network is built
    check_config(dataclasses.replace(config, device="cpu"), datasets=datasets)
    return config


@dataclass(frozen=True)
class TrainTask:
    run_id: int
    config: dict[str, Any]
    models_dir: str


@dataclass(frozen=True)
class TrainStep:
    step: int
    steps: int
    losses: dict[str, float] | None = None
    grid_png: bytes | None = None
    checkpoint: str | None = None  # relative to the models dir, when finished
    architecture: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    latent_dim: int | None = None
    output_shape: tuple[int, ...] | None = None
    modes: dict[str, Any] | None = None


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    array = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _jsonable(report: Any) -> dict[str, Any]:
    result = {}
    for key, value in dataclasses.asdict(report).items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None  # JSON has no inf: "no sample near any mode"
        result[key] = list(value) if isinstance(value, tuple) else value
    return result


def mode_metrics(config: TrainConfig, finished: TrainFinished, models_dir: Path) -> dict | None:
    """Mode coverage of the trained generator on data with known modes; None for other data."""
    dataset = make_dataset(config.dataset, **dict(config.dataset_options))
    spec = generator_spec(finished.architecture, finished.options)
    trained = None
    if config.dataset in DATASET_DIGITS:
        trained = digit_classifier_of(config, models_dir)
    try:
        report = generated_modes(
            dataset,
            finished.generator,
            spec.latent_dim,
            seed=config.seed,
            classifier=trained.model if trained else None,
        )
    except ValueError:
        return None  # no known modes (image folders, archives)
    metrics = {"kind": type(report).__name__, **_jsonable(report)}
    if trained is not None:
        metrics["classifier"] = trained.summary()
    return metrics


def digit_classifier_of(config: TrainConfig, models_dir: Path) -> TrainedClassifier:
    """The classifier that counts a digit run's modes: its digit set's, trained on the run's own
    digits file when it names one (all of MNIST, not the packaged 5,000), cached per file; the
    packaged digits' when the file has too few of some class (the report's `source` says which)."""
    digits = DATASET_DIGITS[config.dataset]
    source = config.dataset_options.get("path")  # only MNIST's datasets take one
    if source is not None:
        try:
            return cached_digit_classifier(models_dir, digits, source)[1]
        except ValueError:
            pass  # too few digits of some class to learn from: the packaged digits' classifier
    return cached_digit_classifier(models_dir, digits)[1]


def discriminator_file(run_id: int) -> str:
    """Where run `run_id` leaves its trained discriminator, relative to the models directory:
    the `weights` of the discriminator embedder (app.embed.discriminator)."""
    return f"trained/run_{run_id}.discriminator.safetensors"


def state_path(models_dir: Path, run_id: int) -> Path:
    """Where run `run_id` keeps its resumable state until it finishes."""
    return models_dir / "trained" / f"run_{run_id}.state.safetensors"


def _resumed(
    path: Path, config: TrainConfig, checkpoint_every: int
) -> tuple[Iterator[TrainEvent], int] | None:
    """The loop going on from the state an earlier attempt of this run left, if that state
    fits, and the step it goes on from."""
    if not path.exists():
        return None
    try:
        state = load_train_state(path, config)
        return train(config, resume=state, checkpoint_every=checkpoint_every), state.step
    except ValueError as exc:
        log.warning("training state %s not used, starting from step 0: %s", path, exc)
        return None


def run_training(task: TrainTask) -> Iterator[TrainStep]:
    """Train, or go on from the state an interrupted attempt of the same run saved."""
    config = dataclasses.replace(
        train_config(task.config), device=task.config.get("device") or default_device()
    )
    models_dir = Path(task.models_dir)
    saved = state_path(models_dir, task.run_id)
    checkpoint_every = config.sample_every or CHECKPOINT_EVERY
    resumed = _resumed(saved, config, checkpoint_every)
    if resumed is None:
        events = train(config, checkpoint_every=checkpoint_every)
    else:
        events, start = resumed
        yield TrainStep(start, config.steps)  # progress at once: where this attempt starts
    for event in events:
        if isinstance(event, TrainCheckpoint):
            save_train_state(saved, config, event.state)
        elif isinstance(event, TrainProgress):
            yield TrainStep(event.step, event.steps, losses=dict(event.losses))
        elif isinstance(event, TrainSamples):
            png = _png(event.image) if event.image is not None else None
            yield TrainStep(event.step, config.steps, grid_png=png)
        elif isinstance(event, TrainFinished):
            relative = f"trained/run_{task.run_id}.safetensors"
            (models_dir / "trained").mkdir(parents=True, exist_ok=True)
            spec = generator_spec(event.architecture, event.options)
            if event.discriminator is not None and event.architecture == "dcgan":
                # Saved before the generator is recorded: a finished run always has it. Only a
                # DCGAN's embeds images (app.embed.discriminator); an MLP's sees flat pixels.
                save_discriminator(
                    models_dir / discriminator_file(task.run_id),
                    event.discriminator.cpu(),
                    event.architecture,
                    event.options,
                )
            save_generator(
                models_dir / relative, event.generator.cpu(), event.architecture, event.options
            )
            yield TrainStep(
                event.step,
                config.steps,
                checkpoint=relative,
                architecture=event.architecture,
                options=dict(event.options),
                latent_dim=spec.latent_dim,
                output_shape=tuple(spec.output_shape),
                modes=mode_metrics(config, event, models_dir),
            )
            saved.unlink(missing_ok=True)  # the runner has recorded the generator
