"""The training job: run a GAN training loop and turn its events into plain results.

Like the audit job it never touches the store: it yields progress, loss rows, sample-grid PNGs and,
at the end, the path of the saved checkpoint with the mode metrics; the runner writes them.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from app.gan.checkpoint import save_generator
from app.gan.datasets import make_dataset
from app.gan.digit_classifier import load_or_train_digit_classifier
from app.gan.evaluation import generate, measure_modes
from app.gan.registry import generator_spec
from app.gan.training import TrainConfig, TrainFinished, TrainProgress, TrainSamples, train

MODE_SAMPLES = 2500  # samples drawn to count modes (VEEGAN's tables use 2,500 on 2D data)
CLASSIFIER_FILE = "builtin/digit_classifier.pt"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def train_config(fields: dict[str, Any]) -> TrainConfig:
    """A validated TrainConfig from JSON-like fields; unknown names are refused."""
    allowed = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValueError(f"unknown training option(s) {', '.join(unknown)}")
    values = dict(fields)
    if "betas" in values and values["betas"] is not None:
        values["betas"] = tuple(values["betas"])
    config = TrainConfig(**values)
    # Building the loop (without running it) checks data, architecture and options together.
    train(dataclasses.replace(config, device="cpu"))
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
    samples = generate(finished.generator, spec.latent_dim, MODE_SAMPLES, seed=config.seed)
    classifier = None
    if config.dataset in ("digits", "stacked_digits"):
        classifier = load_or_train_digit_classifier(models_dir / CLASSIFIER_FILE).model
    try:
        report = measure_modes(dataset, samples, classifier)
    except ValueError:
        return None  # no known modes (image folders, archives)
    return {"kind": type(report).__name__, **_jsonable(report)}


def run_training(task: TrainTask) -> Iterator[TrainStep]:
    config = dataclasses.replace(
        train_config(task.config), device=task.config.get("device") or default_device()
    )
    models_dir = Path(task.models_dir)
    for event in train(config):
        if isinstance(event, TrainProgress):
            yield TrainStep(event.step, event.steps, losses=dict(event.losses))
        elif isinstance(event, TrainSamples):
            png = _png(event.image) if event.image is not None else None
            yield TrainStep(event.step, config.steps, grid_png=png)
        elif isinstance(event, TrainFinished):
            relative = f"trained/run_{task.run_id}.safetensors"
            (models_dir / "trained").mkdir(parents=True, exist_ok=True)
            save_generator(
                models_dir / relative, event.generator.cpu(), event.architecture, event.options
            )
            spec = generator_spec(event.architecture, event.options)
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
