"""Generators: upload, list, get."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from app.api.auth import AdminDep
from app.api.deps import GeneratorId, StateDep
from app.schemas import GeneratorPublic
from app.services import generators as generator_service
from app.services.generators import register_upload
from app.store import generators as generator_store
from app.store.models import Generator

router = APIRouter(prefix="/generators", tags=["generators"])


def generator_public(generator: Generator, models_dir: Path) -> GeneratorPublic:
    return GeneratorPublic(
        id=generator.id,
        name=generator.name,
        format=generator.format,
        architecture=generator.architecture,
        options=generator.options or {},
        latent_dim=generator.latent_dim,
        image_shape=generator.image_shape,
        status=generator.status,
        error=generator.error,
        samples=generator_service.archive_samples(generator, models_dir),
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=GeneratorPublic)
def create_generator(
    state: StateDep,
    _: AdminDep,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    format: Annotated[
        str, Form(description="safetensors | state_dict | onnx | torchscript | samples")
    ],
    file: Annotated[UploadFile, File()],
    architecture: Annotated[str | None, Form()] = None,
    options: Annotated[str | None, Form(description="JSON object of architecture options")] = None,
    latent_dim: Annotated[int | None, Form(ge=1, le=512)] = None,
) -> GeneratorPublic:
    """Upload a generator checkpoint or a sample archive; it is loaded and probed before it is listed."""
    generator = register_upload(
        state.db,
        state.settings,
        name=name,
        fmt=format,
        architecture=architecture or None,
        options_text=options,
        latent_dim=latent_dim,
        stream=file.file,
    )
    return generator_public(generator, state.settings.models_dir)


@router.get("", response_model=list[GeneratorPublic])
def list_generators(state: StateDep) -> list[GeneratorPublic]:
    """All generators, newest first."""
    with state.db.read() as session:
        models = state.settings.models_dir
        return [generator_public(g, models) for g in generator_store.list_generators(session)]


@router.get("/{generator_id}", response_model=GeneratorPublic)
def get_generator(state: StateDep, generator_id: GeneratorId) -> GeneratorPublic:
    """One generator."""
    with state.db.read() as session:
        generator = generator_store.get_generator(session, generator_id)
        return generator_public(generator, state.settings.models_dir)


@router.delete("/{generator_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_generator(state: StateDep, _: AdminDep, generator_id: GeneratorId) -> Response:
    """Delete a generator that no audit uses (admins only)."""
    generator_service.delete_generator(state.db, state.settings, generator_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
