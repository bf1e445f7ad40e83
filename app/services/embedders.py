"""What the audit form offers for an embedder: its options, and the checkpoints under the models
directory its `weights` option can name (so nobody types a path they have to look up)."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Literal

from app.embed.factory import EMBEDDER_KINDS, WEIGHTS_USE, embedder_option_names
from app.schemas import EmbedderChoice, EmbeddersPublic, WeightsFile

WEIGHTS_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
MAX_LISTED_FILES = 500
MAX_VISITED = 20_000  # entries looked at: a models directory holding a whole model hub stays quick
NOT_WEIGHTS_DIRS = ("uploads",)  # uploaded generators
GENERATOR_DIRS = ("trained", "builtin")  # generators and training state, beside weights
FileKind = Literal["weights", "discriminator", "digit_classifier"]


def embedder_choices(models_dir: Path) -> EmbeddersPublic:
    embedders = []
    for kind in EMBEDDER_KINDS:
        use = WEIGHTS_USE[kind]
        embedders.append(
            EmbedderChoice(
                name=kind,
                options=embedder_option_names(kind),
                weights=use[0] if use else "none",
                file_kind=use[1] if use else None,
            )
        )
    return EmbeddersPublic(embedders=embedders, files=weights_files(models_dir))


def weights_files(models_dir: Path) -> list[WeightsFile]:
    """Checkpoint files under `models_dir` with their kind, by path, hidden entries skipped."""
    found: list[WeightsFile] = []
    visited = 0
    for directory, subdirs, files in os.walk(models_dir):
        visited += len(subdirs) + len(files)
        if visited > MAX_VISITED:
            break
        relative = PurePosixPath(Path(directory).relative_to(models_dir).as_posix())
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not d.startswith(".") and not (relative.parts == () and d in NOT_WEIGHTS_DIRS)
        )
        for name in sorted(files):
            path = relative / name if relative.parts else PurePosixPath(name)
            kind = file_kind(path)
            if kind is not None:
                found.append(WeightsFile(path=str(path), kind=kind))
                if len(found) == MAX_LISTED_FILES:
                    return found
    return found


def file_kind(path: PurePosixPath) -> FileKind | None:
    """What a file under the models directory holds, by its place and name; None: no weights an
    embedder reads (a generator, a training run's state, anything else)."""
    name = path.name
    if name.startswith(".") or not name.endswith(WEIGHTS_SUFFIXES):
        return None
    top = path.parts[0] if len(path.parts) > 1 else ""
    if top == "trained":
        return "discriminator" if name.endswith(".discriminator.safetensors") else None
    if top == "builtin":
        return "digit_classifier" if "classifier" in name else None
    return "weights"
