"""Small CNNs that label digits, the "pretrained classifier" of stacked-MNIST mode counts.

Unrolled GAN, VEEGAN and PacGAN count the modes of a stacked-MNIST generator by classifying each
channel with an MNIST classifier. Ours are trained here, one per digit set (`DIGIT_SETS`: the
sklearn digits, or MNIST), on a fixed stratified split, in seconds on CPU, and cached as
safetensors at a path the caller chooses, with the held-out accuracy in the file's metadata.
MNIST's can also learn from a digits file (a keras-style mnist.npz: all 60,000, where the
packaged 5,000 reach 98% held out); each file gets a cache of its own, named by its content.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from app.gan.digits import DIGIT_CLASSES, DIGIT_SIZE, digit_arrays
from app.gan.image_data import resize_images
from app.gan.mnist import MNIST_PADDED_SIDE, MNIST_SIDE, mnist_arrays

CACHE_KIND = "birthday.digit_classifier"
CACHE_VERSION = "1"  # bump when the network or its training changes, so old caches are retrained
HELD_OUT_FRACTION = 0.25
MIN_PER_CLASS = 4  # a digit set with fewer of some class cannot train and check a classifier
MIN_EPOCHS = 5  # a large digits file trains for fewer epochs (DigitSet.presentations), never fewer
PACKAGED = "packaged"  # the `source` of a classifier trained on the digits a package ships

StrPath = str | os.PathLike[str]


class DigitClassifier(nn.Module):
    """Digits (B, 1, S, S) in [-1, 1], S a multiple of 8 -> logits (B, 10).

    Inputs larger than 8x8 are average-pooled to 8x8 first: that undoes the bilinear upsampling
    of `digit_arrays` closely, so one classifier serves every image size. Kept narrow (~0.45M
    multiply-adds a digit) because a stacked-digit audit classifies tens of thousands of digits.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),  # (B, 16, 8, 8)
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),  # (B, 32, 8, 8)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 4, 4)
            nn.Conv2d(32, 32, 3, padding=1),  # (B, 32, 4, 4)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 2, 2)
        )
        self.head = nn.Linear(32 * 2 * 2, DIGIT_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (DIGIT_SIZE, DIGIT_SIZE):
            x = F.adaptive_avg_pool2d(x, DIGIT_SIZE)
        return self.head(self.features(x).flatten(1))


class MnistClassifier(nn.Module):
    """Digits (B, 1, S, S) in [-1, 1] -> logits (B, 10), read at 32x32 (MNIST padded).

    A 28x28 digit is padded with background, as the MNIST datasets are; any other (H, W) is
    resized to 32x32. It pools early (~1.9M multiply-adds a digit): a stacked-MNIST audit classifies three
    digits a sample.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),  # (B, 16, 32, 32)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 16, 16, 16)
            nn.Conv2d(16, 32, 3, padding=1),  # (B, 32, 16, 16)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 8, 8)
            nn.Conv2d(32, 32, 3, padding=1),  # (B, 32, 8, 8)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 4, 4)
            nn.Conv2d(32, 32, 3, padding=1),  # (B, 32, 4, 4)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 2, 2)
        )
        self.head = nn.Linear(32 * 2 * 2, DIGIT_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (MNIST_SIDE, MNIST_SIDE):  # a digit as MNIST stores it
            pad = (MNIST_PADDED_SIDE - MNIST_SIDE) // 2
            x = F.pad(x, (pad,) * 4, value=-1.0)
        elif x.shape[-2:] != (MNIST_PADDED_SIDE, MNIST_PADDED_SIDE):
            x = resize_images(x, MNIST_PADDED_SIDE)
        return self.head(self.features(x).flatten(1))


@dataclass(frozen=True)
class DigitSet:
    """Digits a classifier is trained on, and how: what a mode count or embedding names."""

    name: str  # key in DIGIT_SETS
    network: Callable[[], nn.Module]  # an untrained classifier; it reads digits of any (H, W)
    # every digit, and its class: the packaged ones (None) or a digits file's (None: no file taken)
    arrays: Callable[[StrPath | None], tuple[torch.Tensor, torch.Tensor]]
    epochs: int
    shift: int  # pixels of random shift in training (generated digits are rarely centred)
    cache_file: str  # default cache, relative to the models directory
    # digits shown in training, the packaged split's epochs x its size: a larger file gets as
    # many (as many gradient steps), in at least MIN_EPOCHS epochs; None: no file is taken
    presentations: int | None = None

    def epochs_for(self, train_digits: int) -> int:
        """Epochs over a training split of `train_digits`: the set's own for its packaged digits."""
        if self.presentations is None:
            return self.epochs
        return min(self.epochs, max(MIN_EPOCHS, math.ceil(self.presentations / train_digits)))

    def cache_file_for(self, source: str = PACKAGED) -> str:
        """The default cache of the classifier trained on `source` (PACKAGED, or the
        source_digest of a digits file), relative to the models directory."""
        if source == PACKAGED:
            return self.cache_file
        if len(source) != 16 or not all(c in "0123456789abcdef" for c in source):
            raise ValueError(f"not a digits file's digest: {source!r}")
        stem, dot, suffix = self.cache_file.rpartition(".")
        return f"{stem}.{source}{dot}{suffix}"


def _sklearn_arrays(source: StrPath | None) -> tuple[torch.Tensor, torch.Tensor]:
    if source is not None:
        raise ValueError(
            "the sklearn digit classifier learns from sklearn's digits only, not a file"
        )
    return digit_arrays()


def _mnist_arrays(source: StrPath | None) -> tuple[torch.Tensor, torch.Tensor]:
    return mnist_arrays(MNIST_PADDED_SIDE, source)


def source_digest(source: StrPath) -> str:
    """The first 16 hex digits of the file's SHA-256: what a classifier trained on it names."""
    path = Path(source)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror})") from exc
    return _digest(os.fspath(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _digest(path: str, _mtime_ns: int, _size: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


DIGIT_SETS: dict[str, DigitSet] = {
    # 60 epochs: the confident fraction of real digits keeps rising after the accuracy settles
    # (measured: 0.99 accuracy, ~0.95 of held-out digits at p >= 0.9)
    "sklearn": DigitSet(
        "sklearn", DigitClassifier, _sklearn_arrays, 60, 1, "builtin/digit_classifier.pt"
    ),
    "mnist": DigitSet(
        "mnist",
        MnistClassifier,
        _mnist_arrays,
        40,  # 20 reach the same accuracy (0.98), but only 0.94 of real digits at p >= 0.9, not 0.97
        2,
        "builtin/mnist_classifier.pt",
        presentations=40 * 3750,  # 40 epochs of the packaged 5,000's 75% split
    ),
}
DATASET_DIGITS = {
    "digits": "sklearn",
    "stacked_digits": "sklearn",
    "mnist": "mnist",
    "stacked_mnist": "mnist",
}  # training datasets whose modes a digit set's classifier counts


def digit_set(name: str) -> DigitSet:
    """The digit set called `name`, or a ValueError naming the known ones."""
    try:
        return DIGIT_SETS[name]
    except (KeyError, TypeError):
        known = ", ".join(DIGIT_SETS)
        raise ValueError(f"unknown digit set {name!r}; known: {known}") from None


@dataclass(frozen=True)
class TrainedClassifier:
    """A classifier in eval mode and how well it does on digits it never saw."""

    model: nn.Module
    held_out_accuracy: float  # share of the 25% held-out split classified correctly
    seed: int  # seed of the split, the init and the batch order
    digits: str = "sklearn"  # the digit set it was trained on
    source: str = PACKAGED  # the packaged digits, or the digest of the file it learnt from
    train_digits: int | None = None  # size of its training split (None: a cache from before)

    def summary(self) -> dict[str, object]:
        """What a report says of the classifier behind its figures (JSON-ready)."""
        return {
            "digits": self.digits,
            "source": self.source,
            "train_digits": self.train_digits,
            "held_out_accuracy": self.held_out_accuracy,
        }


def split_digits(
    seed: int = 0, digits: str = "sklearn", source: StrPath | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, held_out) of a stratified 75/25 split of the digit set's digits (those of
    the file `source`, when given)."""
    _, classes = digit_set(digits).arrays(source)
    return _split(classes, seed)


def _split(classes: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(seed)
    train, held_out = [], []
    for c in range(DIGIT_CLASSES):
        members = torch.nonzero(classes == c).flatten()
        members = members[torch.randperm(len(members), generator=rng)]
        n_held = round(len(members) * HELD_OUT_FRACTION)
        held_out.append(members[:n_held])
        train.append(members[n_held:])
    return torch.cat(train).sort().values, torch.cat(held_out).sort().values


def train_digit_classifier(
    seed: int = 0,
    epochs: int | None = None,
    digits: str = "sklearn",
    source: StrPath | None = None,
) -> TrainedClassifier:
    """Train on the 75% split with small random shifts; deterministic given the seed on CPU;
    5-15 seconds on one core for the sklearn digits, ~25 s on two for MNIST's 5,000 (all 60,000
    of a keras mnist.npz: the same number of gradient steps in MIN_EPOCHS epochs, ~40 s).

    `epochs` defaults to the digit set's own for the size of its training split (DigitSet).
    """
    spec = digit_set(digits)
    images, classes = spec.arrays(source)
    per_class = torch.bincount(classes, minlength=DIGIT_CLASSES)
    if int(per_class.min()) < MIN_PER_CLASS:
        raise ValueError(
            f"a classifier needs at least {MIN_PER_CLASS} digits of every class (some to learn "
            f"from, one to check it on); these have {per_class.tolist()} of 0..9"
        )
    train_index, held_index = _split(classes, seed)
    rng = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.network()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = images[train_index], classes[train_index]
    model.train()
    for _ in range(spec.epochs_for(len(x)) if epochs is None else epochs):
        order = torch.randperm(len(x), generator=rng)
        for batch in order.split(64):
            logits = model(random_shift(x[batch], rng, spec.shift))
            loss = F.cross_entropy(logits, y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    accuracy = accuracy_on(model, images[held_index], classes[held_index])
    named = PACKAGED if source is None else source_digest(source)
    return TrainedClassifier(model, accuracy, seed, spec.name, named, len(train_index))


def random_shift(x: torch.Tensor, rng: torch.Generator, pixels: int = 1) -> torch.Tensor:
    """Each image moved by up to `pixels` in each direction, background (-1) filling in."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pixels,) * 4, value=-1.0)
    dy = torch.randint(0, 2 * pixels + 1, (n,), generator=rng)
    dx = torch.randint(0, 2 * pixels + 1, (n,), generator=rng)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, 1, h, w + 2 * pixels)
    shifted = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, 1, h, w)
    return shifted.gather(3, cols)


@torch.no_grad()
def accuracy_on(
    model: nn.Module, images: torch.Tensor, classes: torch.Tensor, batch_size: int = 2048
) -> float:
    """Share classified correctly, in batches (15,000 held-out MNIST digits at once need ~1 GB)."""
    right = sum(
        int((model(chunk).argmax(dim=1) == target).sum())
        for chunk, target in zip(images.split(batch_size), classes.split(batch_size), strict=True)
    )
    return right / len(classes)


def load_or_train_digit_classifier(
    path: StrPath, seed: int = 0, digits: str = "sklearn", source: StrPath | None = None
) -> TrainedClassifier:
    """The classifier of digit set `digits` cached at `path`, trained on its packaged digits (or
    the digits file `source`) and written there first if absent or stale (another seed, version
    or source).

    A file at `path` that is not our cache is never overwritten: that raises a ValueError.
    """
    path = Path(path)
    spec = digit_set(digits)
    wanted = PACKAGED if source is None else source_digest(source)
    if path.exists():
        cached = _load(path, spec)
        if cached is not None and cached.seed == seed and cached.source == wanted:
            return cached
    trained = train_digit_classifier(seed, digits=spec.name, source=source)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    metadata = {
        "kind": CACHE_KIND,
        "version": CACHE_VERSION,
        "seed": str(seed),
        "digits": spec.name,
        "source": trained.source,
        "train_digits": str(trained.train_digits),
        "held_out_accuracy": repr(trained.held_out_accuracy),
    }
    save_file(trained.model.state_dict(), os.fspath(partial), metadata=metadata)
    os.replace(partial, path)  # atomic: a concurrent reader sees the old file or the new one
    return trained


def cached_digit_classifier(
    models_dir: StrPath, digits: str = "sklearn", source: StrPath | None = None
) -> tuple[str, TrainedClassifier]:
    """The classifier of digit set `digits` trained on `source` (None: its packaged digits) in its
    default cache under `models_dir`, trained there first if need be; with that cache's path
    relative to `models_dir` (the digits embedder's `weights`)."""
    spec = digit_set(digits)
    weights = spec.cache_file_for(PACKAGED if source is None else source_digest(source))
    trained = load_or_train_digit_classifier(
        Path(models_dir) / weights, digits=spec.name, source=source
    )
    return weights, trained


def load_digit_classifier(path: StrPath, digits: str = "sklearn") -> TrainedClassifier:
    """The classifier of digit set `digits` cached at `path`, never trained here: a ValueError
    when the file is no such cache (or one of an older version)."""
    path = Path(path)
    cached = _load(path, digit_set(digits))
    if cached is None:
        raise ValueError(
            f"{path} holds a classifier of another version (or damaged metadata): train it again"
        )
    return cached


def _load(path: Path, spec: DigitSet) -> TrainedClassifier | None:
    """The cached classifier, or None when the cache is of another version; another digit set's
    is a ValueError (caches written before MNIST name no set: the sklearn one)."""
    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(os.fspath(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} is not a digit-classifier cache; give another path") from exc
    if metadata.get("kind") != CACHE_KIND:
        raise ValueError(f"{path} is not a digit-classifier cache; give another path")
    if metadata.get("version") != CACHE_VERSION:
        return None
    if metadata.get("digits", "sklearn") != spec.name:
        held = metadata.get("digits")
        raise ValueError(f"{path} holds the {held} classifier, not the {spec.name} one")
    try:
        seed = int(metadata["seed"])
        accuracy = float(metadata["held_out_accuracy"])
        train_digits = int(metadata["train_digits"]) if "train_digits" in metadata else None
    except (KeyError, ValueError):
        return None  # a damaged cache: train it again
    if not math.isfinite(accuracy):
        return None
    model = spec.network()
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not hold the {spec.name} classifier's weights") from exc
    source = metadata.get("source", PACKAGED)
    return TrainedClassifier(model.eval(), accuracy, seed, spec.name, source, train_digits)


@torch.no_grad()
def digit_probabilities(
    model: nn.Module, images: torch.Tensor, batch_size: int = 4096
) -> torch.Tensor:
    """Class probabilities (n, k, 10) of each channel of images (n, k, S, S), on the model's device."""
    if images.dim() != 4:
        raise ValueError(f"expected images (n, channels, S, S), got shape {tuple(images.shape)}")
    model.eval()
    device = next(model.parameters()).device
    n, k = images.shape[:2]
    digits = images.reshape(n * k, 1, *images.shape[2:])
    chunks = [
        F.softmax(model(chunk.to(device, torch.float32)), dim=1).cpu()
        for chunk in digits.split(batch_size)
    ]
    probabilities = torch.cat(chunks) if chunks else torch.empty(0, DIGIT_CLASSES)
    return probabilities.reshape(n, k, DIGIT_CLASSES)
