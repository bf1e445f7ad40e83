"""Uploading a generator: stream the file to disk under a size cap, then load and probe it.

Only formats with no code in them are loaded here (safetensors, weights-only state_dicts, .npz
and .zip-of-PNG sample archives). TorchScript (code, where the server allows code uploads) and
ONNX (a graph, accepted everywhere) are run only in a child process (sources/isolated.py).
"""

from __future__ import annotations

import functools
import json
import uuid
from pathlib import Path
from typing import Any, BinaryIO

import torch

from app.gan.checkpoint import (
    METADATA_ARCHITECTURE,
    METADATA_OPTIONS,
    load_generator_safetensors,
    load_generator_state_dict,
    read_safetensors_header,
)
from app.gan.registry import canonical_options
from app.settings import Settings
from app.sources.archive import describe_npz, sample_archive_kind
from app.sources.factory import archive_size
from app.sources.isolated import probe_isolated
from app.sources.onnx_graph import inspect_onnx_isolated
from app.sources.zip_archive import inspect_zip
from app.store.db import Database
from app.store.errors import Conflict
from app.store.models import Generator

FORMATS = ("safetensors", "state_dict", "onnx", "torchscript", "samples")
LOADABLE = {
    "safetensors": ".safetensors",
    "state_dict": ".pt",
    "samples": ".npz",
    "torchscript": ".torchscript.pt",
    "onnx": ".onnx",
}
COPY_BLOCK = 1 << 20


class PayloadTooLarge(Conflict):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the file exceeds the upload limit of {limit} bytes", 413)


def parse_options(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"options must be a JSON object: {exc.msg}") from exc
    if not isinstance(options, dict):
        raise ValueError("options must be a JSON object")
    return options


def save_upload(stream: BinaryIO, destination: Path, limit: int) -> int:
    """Copy in blocks with a byte counter; a file over the limit is deleted, never kept half."""
    written = 0
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with destination.open("wb") as out:
            while block := stream.read(COPY_BLOCK):
                written += len(block)
                if written > limit:
                    raise PayloadTooLarge(limit)
                out.write(block)
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    return written


@torch.no_grad()
def probe_generator(module: torch.nn.Module, latent_dim: int) -> tuple[int, int, int]:
    """Run a few latents through the network: image output, finite values, within [-1, 1] after tanh."""
    z = torch.randn(4, latent_dim, generator=torch.Generator().manual_seed(0))
    out = module(z)
    if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[0] != 4:
        raise ValueError("the generator must map (B, latent_dim) to images (B, C, H, W)")
    if out.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {out.shape[1]}")
    if not torch.isfinite(out).all():
        raise ValueError("the generator produced NaN or infinite values")
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])


def register_upload(
    db: Database,
    settings: Settings,
    *,
    name: str,
    fmt: str,
    architecture: str | None,
    options_text: str | None,
    latent_dim: int | None,
    stream: BinaryIO,
) -> Generator:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if fmt == "torchscript" and not settings.code_uploads_allowed:
        raise Conflict(
            "TorchScript is executable code and this shared server does not accept code "
            "uploads: export the generator to ONNX (a graph with no code in it), or upload "
            "safetensors or a weights-only state_dict for a built-in architecture (an admin "
            "can allow code uploads with BIRTHDAY_ALLOW_CODE_UPLOADS)",
            422,
        )
    if fmt == "torchscript" and latent_dim is None:
        raise ValueError("a TorchScript generator needs its latent_dim")
    options = parse_options(options_text)
    if latent_dim is not None:
        options.setdefault("latent_dim", latent_dim)
    relative = Path("uploads") / f"{uuid.uuid4().hex}{LOADABLE[fmt]}"
    path = settings.models_dir / relative
    save_upload(stream, path, settings.upload_limit_bytes)
    try:
        if fmt == "samples" and sample_archive_kind(path) == "zip":
            relative = relative.with_suffix(".zip")
            path = path.rename(settings.models_dir / relative)
        image_shape, latent, architecture, options = _inspect(path, fmt, architecture, options)
    except (ValueError, RuntimeError, OSError) as exc:
        path.unlink(missing_ok=True)
        raise ValueError(f"the {fmt} file was refused: {exc}") from exc
    except BaseException:
        path.unlink(missing_ok=True)  # whatever went wrong, no upload is left without its row
        raise
    with db.write() as session:
        generator = Generator(
            name=name,
            format=fmt,
            architecture=architecture,
            options=options,
            latent_dim=latent,
            image_shape=list(image_shape),
            path=str(relative),
            status="ready",
        )
        session.add(generator)
        session.flush()
        return generator


def _inspect(
    path: Path, fmt: str, architecture: str | None, options: dict[str, Any]
) -> tuple[tuple[int, int, int], int | None, str | None, dict[str, Any]]:
    """(image shape, latent size, architecture, full options) of a file that loaded and probed."""
    if fmt == "samples":
        shape = describe_npz(path)[1] if path.suffix == ".npz" else inspect_zip(path).image_shape
        return shape, None, None, {}
    if fmt == "torchscript":
        latent = int(options.pop("latent_dim"))
        # Loaded and run in a child process only: never in this (the API) process.
        return probe_isolated(path, "torchscript", latent), latent, None, {}
    if fmt == "onnx":
        latent = inspect_onnx_isolated(path, options.pop("latent_dim", None))
        return probe_isolated(path, "onnx", latent), latent, None, {}
    if fmt == "safetensors":
        module, spec = load_generator_safetensors(path, architecture, options or None)
        if architecture is None or not options:
            _, metadata = read_safetensors_header(path)
            architecture = architecture or metadata.get(METADATA_ARCHITECTURE)
            options = options or json.loads(metadata.get(METADATA_OPTIONS, "{}"))
    else:
        if architecture is None:
            raise ValueError("a state_dict needs its architecture (e.g. dcgan) and options")
        module, spec = load_generator_state_dict(path, architecture, options)
    assert architecture is not None
    if len(spec.output_shape) != 3:
        raise ValueError("only image generators can be audited")
    shape = probe_generator(module.eval(), spec.latent_dim)
    return shape, spec.latent_dim, architecture, canonical_options(architecture, options)


def archive_samples(generator: Generator, models_dir: Path) -> int | None:
    """A sample archive's image count (None for generators, or an archive gone unreadable)."""
    try:
        return read_archive_samples(generator, models_dir)
    except (OSError, ValueError):
        return None


def read_archive_samples(generator: Generator, models_dir: Path) -> int | None:
    """A sample archive's image count (None for generators), read from its headers once per
    version of the file; an unreadable archive raises OSError or ValueError."""
    if generator.format != "samples" or generator.path is None:
        return None
    path = models_dir / generator.path
    stat = path.stat()
    return _archive_size(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _archive_size(path: str, size: int, mtime_ns: int) -> int:
    del size, mtime_ns  # the cache key: a replaced file is read again
    return archive_size(Path(path))


def delete_generator(db: Database, settings: Settings, generator_id: int) -> None:
    """Remove a generator nobody audits; its uploaded or trained file goes with it."""
    from sqlalchemy import select, update

    from app.store.generators import get_generator
    from app.store.models import Audit, TrainingRun

    with db.write() as session:
        generator = get_generator(session, generator_id)
        used = session.scalars(select(Audit.id).where(Audit.generator_id == generator_id)).first()
        if used is not None:
            raise Conflict(f"generator {generator_id} is used by audit {used}; delete that first")
        session.execute(
            update(TrainingRun)
            .where(TrainingRun.generator_id == generator_id)
            .values(generator_id=None)
        )
        path = generator.path
        session.delete(generator)
    if path and path.split("/", 1)[0] in ("uploads", "trained"):
        (settings.models_dir / path).unlink(missing_ok=True)
