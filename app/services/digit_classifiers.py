"""A digit classifier on demand: the packaged digits' or one learnt from a digits file of the
user's, in the models directory where the `digits` embedder's `weights` option finds it.

Training runs on MNIST files get theirs when they count their modes; this is for a generator
trained elsewhere on all of MNIST and uploaded, whose audit should read digits as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.gan.digit_classifier import (
    PACKAGED,
    TrainedClassifier,
    digit_set,
    load_or_train_digit_classifier,
    source_digest,
)
from app.services.training import local_dataset_path
from app.settings import Settings


@dataclass(frozen=True)
class ClassifierFile:
    weights: str  # relative to the models directory: the digits embedder's `weights` option
    trained: TrainedClassifier


def ensure_digit_classifier(
    settings: Settings, digits: str = "mnist", data: str | None = None
) -> ClassifierFile:
    """The classifier of digit set `digits`, trained on `data` (a digits file under the data
    directory's datasets/; None: the packaged digits) and cached first if need be."""
    spec = digit_set(digits)
    source = None if data is None else local_dataset_path(settings.data_dir, data)
    weights = spec.cache_file_for(PACKAGED if source is None else source_digest(source))
    trained = load_or_train_digit_classifier(
        settings.models_dir / weights, digits=spec.name, source=source
    )
    return ClassifierFile(weights, trained)
