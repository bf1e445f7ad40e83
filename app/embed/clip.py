"""CLIP image features (open_clip) from a local weights file: semantic near-duplicates.

Nothing here downloads: weights come only from a file the operator put on disk, a model whose
config would fetch anything (Hugging Face text towers, hub schemas) is refused, and a pretrained
tag is used only to look up how its weights expect images to be preprocessed.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from numpy.typing import NDArray
from open_clip.convert import convert_state_dict
from open_clip.model import convert_to_custom_text_state_dict
from safetensors import SafetensorError
from safetensors.torch import load_file

from app.embed.base import check_images, embed_in_batches, resolve_device
from app.embed.transforms import Interpolation, ResizeMode, network_input

TINY_CLIP_MODEL = "birthday-tiny-vit"
"""A 2-layer, width-64 ViT on 32x32 inputs: seconds on CPU, for tests and demos, not for audits."""

_CONFIG_DIR = Path(__file__).parent / "model_configs"


def register_model_configs() -> None:
    """Make this package's model configs (the tiny ViT) known to open_clip; safe to repeat."""
    if TINY_CLIP_MODEL not in open_clip.list_models():
        open_clip.add_model_config(_CONFIG_DIR)


class ClipEmbedder:
    """L2-normalised CLIP image features of generator samples.

    `weights_path` is a full open_clip checkpoint (`.safetensors`, or a state_dict `.bin`/`.pth`
    read with `torch.load(weights_only=True)`), e.g. `open_clip_model.safetensors` from the
    model's Hugging Face repository. OpenAI's original TorchScript `.pt` files are refused (they
    hold code), and so is any file whose tensors differ in shape from the model's: open_clip
    would interpolate positional embeddings trained at another input size without a word. With
    `weights_path=None` the model is randomly initialised from `seed`: useful only for tests,
    and its name says "untrained".

    `pretrained_tag` names the open_clip tag the file was published under (e.g. "openai",
    "laion2b_s34b_b79k"); it selects that tag's normalisation, resize rule and QuickGELU setting.
    Without it the model config's defaults apply (OpenAI mean/std, bicubic, shortest side). The
    tag is part of the embedder's name: the same file under another tag gives other features.
    """

    def __init__(
        self,
        model_name: str,
        weights_path: Path | None,
        device: str | torch.device | None = None,
        *,
        pretrained_tag: str | None = None,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if weights_path is not None and not Path(weights_path).is_file():
            raise FileNotFoundError(
                f"CLIP weights file not found: {weights_path}. Put the model's open_clip "
                "checkpoint (.safetensors or .bin) there; nothing is downloaded."
            )
        register_model_configs()
        _check_model_name(model_name)
        tag_cfg = _tag_config(model_name, pretrained_tag)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.model_name = model_name
        self.trained = weights_path is not None
        self.model = _create_model(model_name, weights_path, tag_cfg, self.device, seed)

        preprocess = open_clip.get_model_preprocess_cfg(self.model)
        self._size, self._interpolation, self._resize_mode = _input_geometry(preprocess)
        self._mean = _three(preprocess["mean"], "mean")
        self._std = _three(preprocess["std"], "std")

        with torch.inference_mode():
            probe = torch.zeros(1, 3, self._size, self._size, device=self.device)
            self.dim = int(self._rows(probe).shape[1])
        if weights_path is not None:
            self.name = f"clip:{model_name}:{Path(weights_path).name}"
        else:
            self.name = f"clip:{model_name} (untrained, random init seed {seed})"
        if pretrained_tag is not None:
            self.name += f" [tag {pretrained_tag}]"

    def embed(self, images: torch.Tensor) -> NDArray[np.float32]:
        """Unit-length rows (B, dim) for images (B, 1 or 3, H, W) in [-1, 1] of any size."""
        check_images(images, channels=(1, 3))
        return embed_in_batches(images, self.dim, self.batch_size, self.device, self._rows)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """The model's input for images in [-1, 1]: RGB at its size, with its normalisation."""
        return network_input(
            images, self._size, self._interpolation, self._resize_mode, self._mean, self._std
        )

    def _rows(self, batch: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.model.encode_image(self.preprocess(batch), normalize=True)
        return features


def _check_model_name(model_name: str) -> None:
    if model_name.startswith(("hf-hub:", "local-dir:")):
        raise ValueError(
            f"model {model_name!r}: hub and directory schemas are not supported; give a built-in "
            "open_clip model name and a weights file"
        )
    config = open_clip.get_model_config(model_name)
    if config is None:
        raise ValueError(
            f"unknown CLIP model {model_name!r}; known open_clip models include "
            f"{', '.join(open_clip.list_models()[:12])}, ..."
        )
    if "hf_model_name" in config.get("text_cfg", {}):
        raise ValueError(
            f"model {model_name!r} has a Hugging Face text tower whose config would be "
            "downloaded; choose a model with a built-in text tower (e.g. ViT-B-32)"
        )


def _tag_config(model_name: str, pretrained_tag: str | None) -> dict[str, Any]:
    if pretrained_tag is None:
        return {}
    tag_cfg: dict[str, Any] = open_clip.get_pretrained_cfg(model_name, pretrained_tag)
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise ValueError(
            f"unknown pretrained tag {pretrained_tag!r} for {model_name!r}; "
            f"known tags: {', '.join(tags) or 'none'}"
        )
    return tag_cfg


def _create_model(
    model_name: str,
    weights_path: Path | None,
    tag_cfg: dict[str, Any],
    device: torch.device,
    seed: int,
) -> Any:
    # Weights are read here, not by open_clip (pretrained=None): its loader lets malformed files
    # through as StopIteration or AttributeError and resizes mismatched positional embeddings.
    # fork_rng makes an untrained model the same on every construction.
    state = _read_checkpoint(Path(weights_path)) if weights_path is not None else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(
            model_name,
            pretrained=None,
            device=device,
            force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
            force_preprocess_cfg=tag_cfg or None,
            pretrained_image=False,
            pretrained_text=False,
        )
    if state is not None:
        assert weights_path is not None
        _load_weights(
            model, state, f"could not load CLIP weights {weights_path} into {model_name!r}"
        )
    model.eval()
    return model


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors by parameter name ('state_dict' and 'module.' unwrapped), or ValueError."""
    what = f"could not load CLIP weights {path}"
    if path.suffix.lower() in (".npz", ".npy"):
        raise ValueError(
            f"{what}: numpy (big_vision) weights are not supported; give an open_clip "
            "checkpoint (.safetensors, or a state_dict .bin/.pth/.pt)"
        )
    try:
        if path.suffix.lower() == ".safetensors":
            checkpoint: Any = load_file(str(path), device="cpu")
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, SafetensorError) as error:
        raise ValueError(
            f"{what}: {error}. The file must be an open_clip checkpoint (TorchScript archives "
            "such as OpenAI's original .pt are refused)."
        ) from error
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint:
        found = "an empty mapping" if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{what}: expected a mapping of parameter names to tensors, got {found}")
    for key, value in checkpoint.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(
                f"{what}: expected a mapping of parameter names to tensors, got "
                f"{type(value).__name__} under {key!r}"
            )
    if all(key.startswith("module.") for key in checkpoint):
        checkpoint = {key.removeprefix("module."): value for key, value in checkpoint.items()}
    return checkpoint


def _load_weights(model: Any, state: dict[str, torch.Tensor], what: str) -> None:
    """Load a checkpoint into a fresh model, refusing any tensor whose shape differs."""
    # open_clip's load_checkpoint without its interpolation: the layout conversions it applies
    # (MobileCLIP, old custom-text checkpoints, a logit scale saved as [] or [1], stale ids).
    state = convert_state_dict(model, state)
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    expected = model.state_dict()
    for key in ("logit_scale", "logit_bias"):
        if key in state and key in expected and state[key].numel() == expected[key].numel():
            state[key] = state[key].reshape(expected[key].shape)
    if "text.transformer.embeddings.position_ids" not in expected:
        state.pop("text.transformer.embeddings.position_ids", None)
    differ = [
        f"{key} {tuple(value.shape)} in the file, {tuple(expected[key].shape)} in the model"
        for key, value in state.items()
        if key in expected and value.shape != expected[key].shape
    ]
    if differ:
        raise ValueError(
            f"{what}: {len(differ)} tensors differ in shape ({'; '.join(differ[:3])}): the file "
            "was trained for another model or input size; choose the model it was trained as"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"{what}: {error}. The file must be an open_clip checkpoint for exactly this model."
        ) from error


def _input_geometry(preprocess: dict[str, Any]) -> tuple[int, Interpolation, ResizeMode]:
    size = preprocess["size"]
    if isinstance(size, list | tuple):
        if len(size) != 2 or size[0] != size[1]:
            raise ValueError(f"only square CLIP inputs are supported, got {size}")
        size = size[0]
    interpolations: dict[str, Interpolation] = {"bilinear": "bilinear", "bicubic": "bicubic"}
    resize_modes: dict[str, ResizeMode] = {"shortest": "shortest", "squash": "squash"}
    interpolation = preprocess.get("interpolation", "bicubic")
    resize_mode = preprocess.get("resize_mode", "shortest")
    if interpolation not in interpolations:
        raise ValueError(f"unsupported CLIP interpolation {interpolation!r}")
    if resize_mode not in resize_modes:
        raise ValueError(f"unsupported CLIP resize mode {resize_mode!r}")
    return int(size), interpolations[interpolation], resize_modes[resize_mode]


def _three(values: Any, what: str) -> tuple[float, float, float]:
    floats = tuple(float(v) for v in values)
    if len(floats) == 1:
        floats = floats * 3
    if len(floats) != 3:
        raise ValueError(f"CLIP {what} must have 1 or 3 values, got {values}")
    return floats[0], floats[1], floats[2]
