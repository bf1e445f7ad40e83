"""Saving and loading a training run's resumable state (a `TrainCheckpoint`'s `TrainState`).

One safetensors file holds every tensor; the step, loss bookkeeping and the run's config travel
as JSON in its metadata, so nothing is ever unpickled. A save writes a side file, flushes it to
disk and renames it over the old state (`os.replace` is atomic), so a process killed at any
moment leaves either the previous state or the new one, never half of one. A state is loaded
only into the config that wrote it (the device aside, and fields added since taking their
defaults): any other file is a ValueError.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from app.gan.checkpoint import read_safetensors_header
from app.gan.training import TrainConfig, TrainState

KIND = "birthday.train_state"
VERSION = "1"  # bump when the tensor names or the metadata change
METADATA_KIND = "birthday.kind"
METADATA_VERSION = "birthday.version"
METADATA_STATE = "birthday.state"  # JSON: step, loss_count, last_losses, device_type
METADATA_CONFIG = "birthday.config"  # JSON: the run's config without its device

StrPath = str | os.PathLike[str]


def save_train_state(path: StrPath, config: TrainConfig, state: TrainState) -> None:
    """Write `state` of a run of `config` to `path`, replacing any earlier state atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")  # one writer per run: a fixed name
    metadata = {
        METADATA_KIND: KIND,
        METADATA_VERSION: VERSION,
        METADATA_STATE: json.dumps(
            {
                "step": state.step,
                "loss_count": state.loss_count,
                "last_losses": state.last_losses,
                "device_type": state.device_type,
            }
        ),
        METADATA_CONFIG: _config_json(config),
    }
    try:
        save_file({k: v.contiguous() for k, v in state.tensors.items()}, partial, metadata)
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def load_train_state(path: StrPath, config: TrainConfig) -> TrainState:
    """The state saved at `path` by a run of `config`; a ValueError says why a file is not one.

    Only the format is checked here; `train(config, resume=state)` checks that every tensor fits.
    """
    _, metadata = read_safetensors_header(path)  # caps the header before the library reads it
    if metadata.get(METADATA_KIND) != KIND or metadata.get(METADATA_VERSION) != VERSION:
        raise ValueError(f"not a training state of this version ({KIND} {VERSION})")
    if not _saved_by(metadata.get(METADATA_CONFIG), config):
        raise ValueError("the training state was saved by a run with another config")
    try:
        fields = json.loads(metadata.get(METADATA_STATE, ""))
        step, loss_count = fields["step"], fields["loss_count"]
        last_losses, device_type = fields["last_losses"], fields["device_type"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"the training state's metadata is malformed: {exc}") from None
    if not (
        _is_count(step)
        and _is_count(loss_count)
        and isinstance(device_type, str)
        and isinstance(last_losses, dict)
        and all(isinstance(v, float | int) for v in last_losses.values())
    ):
        raise ValueError("the training state's metadata is malformed")
    try:
        tensors = load_file(os.fspath(path), device="cpu")
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ValueError(f"not a valid safetensors file: {exc}") from exc
    return TrainState(
        step=step,
        tensors=tensors,
        loss_count=loss_count,
        last_losses={str(k): float(v) for k, v in last_losses.items()},
        device_type=device_type,
    )


def _config_json(config: TrainConfig) -> str:
    # the device may change between attempts (the state is moved); nothing else may
    fields: dict[str, Any] = config.to_dict()
    fields.pop("device")
    return json.dumps(fields, sort_keys=True)


def _saved_by(saved: str | None, config: TrainConfig) -> bool:
    """Whether a state's stored config is `config`'s. A field added to TrainConfig since the
    state was saved takes its default, which by that field's contract does what runs did before
    it existed (gp_weight None: the loss's own lambda), so an upgrade does not send an
    interrupted run back to step 0; a field the state has and TrainConfig lacks never matches."""
    if saved is None:
        return False
    if saved == _config_json(config):
        return True
    try:
        fields = json.loads(saved)
        if not isinstance(fields, dict):
            return False
        older = TrainConfig.from_dict({**fields, "device": config.device})
    except (json.JSONDecodeError, TypeError, ValueError):
        return False
    return _config_json(older) == _config_json(config)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
