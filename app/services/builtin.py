"""Built-in generators: checkpoints shipped under models/builtin, registered at start-up."""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.gan.checkpoint import (
    METADATA_ARCHITECTURE,
    load_generator_safetensors,
    read_safetensors_header,
)
from app.services.generators import probe_generator
from app.settings import Settings
from app.store.db import Database
from app.store.models import Generator

log = logging.getLogger(__name__)

BUILTIN_DIR = "builtin"


def register_builtin_generators(db: Database, settings: Settings) -> list[int]:
    """Register each models/builtin/*.safetensors once; returns the ids registered now."""
    directory = settings.models_dir / BUILTIN_DIR
    registered: list[int] = []
    for path in sorted(directory.glob("*.safetensors")):
        relative = f"{BUILTIN_DIR}/{path.name}"
        with db.read() as session:
            known = session.scalars(select(Generator.id).where(Generator.path == relative)).first()
        if known is not None:
            continue
        try:
            module, spec = load_generator_safetensors(path)
            shape = probe_generator(module, spec.latent_dim)
        except (ValueError, RuntimeError, OSError) as exc:
            log.warning("built-in generator %s skipped: %s", path.name, exc)
            continue
        _, metadata = read_safetensors_header(path)
        with db.write() as session:
            generator = Generator(
                name=f"built-in: {path.stem}",
                format="safetensors",
                architecture=metadata.get(METADATA_ARCHITECTURE),
                options={},
                latent_dim=spec.latent_dim,
                image_shape=list(shape),
                path=relative,
                status="ready",
            )
            session.add(generator)
            session.flush()
            registered.append(generator.id)
    return registered
