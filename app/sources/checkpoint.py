"""Samples from a generator checkpoint of a built-in architecture: z_i ~ N(0, I) is a pure function of
(seed, i), and the network runs in eval mode, so sample i does not depend on its batch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from app.gan.checkpoint import load_generator_safetensors, load_generator_state_dict
from app.sources.base import SampleChunk, check_indices, sample_rng

_LATENT_STREAM = 3


@contextmanager
def full_precision(device: str) -> Iterator[None]:
    """float32 convolutions on a GPU: cuDNN uses TF32 by default (about 3 significant digits),
    which would move a GPU-drawn pool by more than rounding from the same samples drawn again
    on the server's CPU to be shown (app/services/sample_images.py)."""
    if not device.startswith("cuda"):
        yield
        return
    cudnn = torch.backends.cudnn
    with cudnn.flags(
        enabled=cudnn.enabled,
        benchmark=cudnn.benchmark,
        deterministic=cudnn.deterministic,
        allow_tf32=False,
    ):
        yield


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class CheckpointSource:
    max_samples: int | None = None

    def __init__(
        self,
        path: Path,
        fmt: str,
        architecture: str | None,
        options: dict[str, Any] | None,
        seed: int,
        device: str | None = None,
        batch_size: int = 256,
    ) -> None:
        if fmt == "safetensors":
            module, spec = load_generator_safetensors(path, architecture, options)
        elif fmt == "state_dict":
            if architecture is None or options is None:
                raise ValueError("a state_dict needs its architecture and options")
            module, spec = load_generator_state_dict(path, architecture, options)
        else:
            raise ValueError(f"format {fmt!r} is not a built-in checkpoint format")
        if len(spec.output_shape) != 3:
            raise ValueError("only image generators (C, H, W) can be audited")
        self.device = device or default_device()
        self.module = module.to(self.device).eval()
        self.latent_dim = spec.latent_dim
        c, h, w = spec.output_shape
        self.image_shape = (int(c), int(h), int(w))
        self.seed = seed
        self.batch_size = batch_size

    def latents(self, indices: NDArray[np.int64]) -> torch.Tensor:
        rows = [
            sample_rng(self.seed, _LATENT_STREAM, i).standard_normal(self.latent_dim)
            for i in indices.tolist()
        ]
        return torch.from_numpy(np.asarray(rows, dtype=np.float32).reshape(-1, self.latent_dim))

    @torch.no_grad()
    def generate(self, indices: NDArray[np.int64]) -> SampleChunk:
        check_indices(indices, self.max_samples)
        z = self.latents(indices)
        outputs = []
        with full_precision(self.device):
            for start in range(0, len(z), self.batch_size):
                batch = z[start : start + self.batch_size].to(self.device)
                outputs.append(self.module(batch).float().clamp(-1, 1).cpu())
        images = torch.cat(outputs) if outputs else torch.empty((0, *self.image_shape))
        return SampleChunk(images=images.reshape(-1, *self.image_shape), identities=None)
