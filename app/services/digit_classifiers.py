"""A digit classifier on demand: the packaged digits' or one learnt from a digits file of the
user's, in the models directory where the `digits` embedder's `weights` option finds it.

Training runs on MNIST files get theirs when they count their modes; this is for a generator
trained elsewhere on all of MNIST and uploaded, whose audit should read digits as well.
"""

from __future__ import annotations

from app.gan.digit_classifier import TrainedClassifier, cached_digit_classifier
from app.services.training import local_dataset_path
from app.settings import Settings


def ensure_digit_classifier(
    settings: Settings, digits: str = "mnist", data: str | None = None
) -> tuple[str, TrainedClassifier]:
    """The classifier of digit set `digits`, trained on `data` (a digits file under the data
    directory's datasets/; None: the packaged digits) and cached first if need be, with its
    weights path relative to the models directory."""
    source = None if data is None else local_dataset_path(settings.data_dir, data)
    return cached_digit_classifier(settings.models_dir, digits, source)
