"""`birthday upload`: a generator file or a folder of samples, checked as an upload."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    DataDir,
    cli,
    console,
    fail,
    open_store,
    settings_for,
)
from app.settings import Settings
from app.store.errors import Conflict


class UploadFormat(StrEnum):
    safetensors = "safetensors"
    state_dict = "state_dict"
    onnx = "onnx"
    torchscript = "torchscript"
    samples = "samples"


@cli.command()
def upload(
    file: Annotated[
        Path,
        typer.Argument(
            help="The generator or sample archive; with --format samples also a folder of "
            "same-size PNGs (sample i is the i-th file by name)."
        ),
    ],
    fmt: Annotated[UploadFormat, typer.Option("--format", help="What the file holds.")],
    name: Annotated[str | None, typer.Option(help="Name (default: the file's name).")] = None,
    architecture: Annotated[
        str | None, typer.Option(help="Built-in architecture, for safetensors or state_dict.")
    ] = None,
    options: Annotated[
        str | None, typer.Option(help="The architecture's options, a JSON object.")
    ] = None,
    latent_dim: Annotated[
        int | None,
        typer.Option(help="Latent size (TorchScript; ONNX where the graph leaves it open)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Register a generator: the file is checked and probed as an upload; prints its id."""
    settings = settings_for(data_dir)
    if fmt is UploadFormat.samples and file.is_dir():
        try:
            archive = _zip_folder(file)
        except ValueError as exc:
            fail(str(exc))
            return
        try:
            _register(settings, archive, fmt, name or file.name, architecture, options, latent_dim)
        finally:
            archive.unlink(missing_ok=True)
        return
    if file.is_dir():
        fail(
            f"{file} is a folder: a folder is uploaded only as a sample archive, with "
            "--format samples (its PNGs, sample i the i-th by name)"
        )
    if not file.is_file():
        fail(f"no such file: {file}")
        return
    _register(settings, file, fmt, name or file.name, architecture, options, latent_dim)


def _zip_folder(folder: Path) -> Path:
    """The folder's PNGs, sorted by name, stored (PNG is compressed already) in a temporary zip."""
    import tempfile
    import zipfile

    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    if not images:
        raise ValueError(f"{folder} holds no .png files")
    handle, name = tempfile.mkstemp(suffix=".zip")
    os.close(handle)
    with zipfile.ZipFile(name, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for image in images:
            archive.write(image, arcname=image.name)
    return Path(name)


def _register(
    settings: Settings,
    file: Path,
    fmt: UploadFormat,
    name: str,
    architecture: str | None,
    options: str | None,
    latent_dim: int | None,
) -> None:
    from app.services.generators import register_upload

    db = open_store(settings)
    try:
        with file.open("rb") as stream:
            generator = register_upload(
                db,
                settings,
                name=name,
                fmt=fmt.value,
                architecture=architecture,
                options_text=options,
                latent_dim=latent_dim,
                stream=stream,
            )
    except (ValueError, Conflict) as exc:
        fail(str(exc))
        return
    shape = "x".join(str(x) for x in generator.image_shape or [])
    latent = f", latent size {generator.latent_dim}" if generator.latent_dim else ""
    console.print(f"generator {generator.id}: {generator.format}, images {shape}{latent}")
