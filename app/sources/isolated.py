"""Samples from an uploaded TorchScript or ONNX generator, run in a child process
(generator_worker): the API process never loads either.

What the child answers is bounded before it is read: a 269-byte ONNX graph can answer with
3x4096x4096 images (805 MB for the probe's 4 latents), so every frame may hold at most the
images asked for at their known shape (at the probe, MAX_SIDE a side with 3 channels).
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from app.sources.base import MAX_SIDE, SampleChunk, check_indices, check_sides, sample_rng
from app.sources.generator_worker import (
    FrameTooLarge,
    array_bytes,
    bytes_array,
    read_frame,
    write_frame,
)

_LATENT_STREAM = 3  # the same latents as a built-in checkpoint with the same seed
BATCH = 256
BATCH_BYTES = 256 * 2**20  # float32 images a batch may answer with: fewer latents for big images
PROBE_LATENTS = 4
FRAME_SLACK = 4096  # the .npy header of a frame
# An uploaded graph can loop for ever (an ONNX Loop with a huge trip count): the probe (the
# upload request waits for it) and every batch of an audit get a deadline, then the process dies.
PROBE_TIMEOUT_S = 120.0  # includes loading the file in the child
BATCH_TIMEOUT_S = 900.0


class GeneratorProcess:
    """One child process holding the module; closed with the source."""

    def __init__(self, path: Path, kind: str, timeout: float = BATCH_TIMEOUT_S) -> None:
        self.kind = kind
        self.timeout = timeout
        self._process = subprocess.Popen(
            [sys.executable, "-m", "app.sources.generator_worker", str(path), kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def run(self, latents: NDArray[np.float32], image_bytes: int) -> NDArray[np.float32]:
        """The images for `latents`; an answer over `image_bytes` per latent is refused unread."""
        assert self._process.stdin is not None and self._process.stdout is not None
        limit = len(latents) * image_bytes + FRAME_SLACK
        try:
            write_frame(self._process.stdin, b"A", array_bytes(latents))
            ready, _, _ = select.select([self._process.stdout], [], [], self.timeout)
            if not ready:
                self.close()
                raise ValueError(
                    f"the {self.kind} generator gave no answer within {self.timeout:g} s "
                    f"for {len(latents)} latents"
                )
            kind, payload = read_frame(self._process.stdout, limit)
        except (BrokenPipeError, EOFError) as exc:
            raise ValueError(f"the {self.kind} generator process died") from exc
        except FrameTooLarge as exc:
            self.close()
            raise ValueError(
                f"the {self.kind} generator answered {len(latents)} latents with {exc.size:,} "
                f"bytes, more than {limit:,}: images must be at most {MAX_SIDE} pixels a side"
            ) from exc
        if kind == b"E":
            raise ValueError(json.loads(payload)["error"])
        return bytes_array(payload).astype(np.float32, copy=False)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)

    def __del__(self) -> None:
        self.close()


def probe_isolated(path: Path, kind: str, latent_dim: int) -> tuple[int, int, int]:
    """Output shape of a TorchScript or ONNX generator, checked in a child process."""
    process = GeneratorProcess(path, kind, timeout=PROBE_TIMEOUT_S)
    try:
        z = np.random.default_rng(0).standard_normal((PROBE_LATENTS, latent_dim))
        out = process.run(z.astype(np.float32), 3 * MAX_SIDE**2 * 4)
    finally:
        process.close()
    if out.ndim != 4 or out.shape[0] != PROBE_LATENTS or out.shape[1] not in (1, 3):
        raise ValueError(
            f"the generator must map (B, {latent_dim}) to images (B, C, H, W), got {out.shape}"
        )
    check_sides(int(out.shape[2]), int(out.shape[3]), "the generator's images")
    if not np.isfinite(out).all():
        raise ValueError("the generator produced NaN or infinite values")
    low, high = float(out.min()), float(out.max())
    if low < -1.0001 or high > 1.0001:
        hint = (
            "pixel values in [0, 255]? map them with x / 127.5 - 1"
            if low >= 0 and high > 2
            else "end the generator with tanh"
        )
        raise ValueError(
            f"samples must lie in [-1, 1], got values from {low:.3g} to {high:.3g} ({hint})"
        )
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])


class IsolatedSource:
    max_samples: int | None = None

    def __init__(
        self,
        path: Path,
        kind: str,
        latent_dim: int,
        image_shape: tuple[int, int, int],
        seed: int,
    ) -> None:
        self.latent_dim = latent_dim
        self.image_shape = image_shape
        self.seed = seed
        self._process = GeneratorProcess(path, kind)

    def generate(self, indices: NDArray[np.int64]) -> SampleChunk:
        check_indices(indices, self.max_samples)
        latents = np.asarray(
            [
                sample_rng(self.seed, _LATENT_STREAM, i).standard_normal(self.latent_dim)
                for i in indices.tolist()
            ],
            dtype=np.float32,
        ).reshape(-1, self.latent_dim)
        image_bytes = 4 * int(np.prod(self.image_shape))
        batch = max(1, min(BATCH, BATCH_BYTES // image_bytes))
        outputs = [
            self._process.run(latents[s : s + batch], image_bytes)
            for s in range(0, len(latents), batch)
        ]
        images = (
            np.concatenate(outputs) if outputs else np.empty((0, *self.image_shape), np.float32)
        )
        if images.shape[1:] != self.image_shape:
            raise ValueError(f"the generator changed its output shape to {images.shape[1:]}")
        return SampleChunk(images=torch.from_numpy(images).clamp(-1, 1), identities=None)
