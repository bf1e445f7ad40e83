"""Build the source an audit samples from, out of plain data that fits in the store and a job message."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.gan.zip_directory import zip_entry_names
from app.sources.archive import NpzSource, inspect_npz
from app.sources.base import Source
from app.sources.checkpoint import CheckpointSource
from app.sources.isolated import IsolatedSource
from app.sources.synthetic import SyntheticConfig, SyntheticSource
from app.sources.zip_archive import MAX_MEMBERS, ZipSource


@dataclass(frozen=True)
class SourceSpec:
    """Either synthetic parameters or a generator file; JSON-serialisable for jobs and Ray."""

    synthetic: dict[str, Any] | None = None
    path: str | None = None  # relative to the models dir
    format: str | None = None
    architecture: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    latent_dim: int | None = None  # TorchScript and ONNX generators declare theirs
    image_shape: tuple[int, int, int] | None = None


def synthetic_config(params: dict[str, Any]) -> SyntheticConfig:
    allowed = set(SyntheticConfig.__dataclass_fields__)
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"unknown synthetic options: {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    config = SyntheticConfig(**params)
    config.validate()
    return config


def build_source(
    spec: SourceSpec, seed: int, models_dir: Path, device: str | None = None
) -> Source:
    if spec.synthetic is not None:
        return SyntheticSource(synthetic_config(spec.synthetic), seed)
    if spec.path is None or spec.format is None:
        raise ValueError("a generator source needs a file and a format")
    path = models_dir / spec.path
    if spec.format == "samples":
        return NpzSource(path) if path.suffix == ".npz" else ZipSource(path)
    if spec.format in ("torchscript", "onnx"):
        if spec.latent_dim is None or spec.image_shape is None:
            raise ValueError(f"a {spec.format} generator needs its latent size and image shape")
        return IsolatedSource(path, spec.format, spec.latent_dim, spec.image_shape, seed)
    return CheckpointSource(
        path, spec.format, spec.architecture, spec.options or None, seed, device=device
    )


def archive_size(path: Path) -> int:
    """How many samples an uploaded archive holds, from its headers alone (an .npz's array
    header, a .zip's central directory walked entry by entry, never held whole), so that a
    request asking for more is refused at once rather than failing in its job."""
    if path.suffix == ".npz":
        return inspect_npz(path).count
    try:
        return sum(not name.endswith(b"/") for name in zip_entry_names(path, MAX_MEMBERS))
    except (ValueError, OSError) as exc:
        raise ValueError(f"not a readable .zip archive: {exc}") from exc


def cheap_to_regenerate(spec: SourceSpec, models_dir: Path) -> bool:
    """Whether the API process may draw sample i itself when it is shown, so that the audit need
    not store its PNG: synthetic sources, built-in architectures (weights only, no code) and
    archives with random access. TorchScript and ONNX run only in workers, and a compressed
    `.npz` would be read from its start for every image."""
    if spec.synthetic is not None:
        return True
    if spec.format in ("safetensors", "state_dict"):
        return True
    if spec.format == "samples" and spec.path is not None:
        path = models_dir / spec.path
        if path.suffix != ".npz":
            return True
        try:
            return inspect_npz(path).stored
        except (OSError, ValueError):
            return False
    return False
