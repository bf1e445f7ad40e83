"""Resuming an interrupted training run: the loop goes on from its saved state exactly (on CPU,
bit for bit), the state file is written atomically and refused when it is not this run's, and a
training job killed mid-run resumes from its last state with its loss curve intact."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import app.gan.resume
import app.jobs.train
from app.gan.resume import load_train_state, save_train_state
from app.gan.training import (
    TrainCheckpoint,
    TrainConfig,
    TrainEvent,
    TrainFinished,
    TrainProgress,
    TrainSamples,
    TrainState,
    train,
)
from app.jobs.runner import JobRunner
from app.jobs.train import state_path
from app.schemas import TrainingRunCreate
from app.services.training import create_run
from app.settings import Settings
from app.store import generators as generator_store
from app.store import training as training_store
from app.store.db import Database
from app.store.migrate import upgrade

TINY_MLP: dict[str, Any] = {
    "dataset": "ring8",
    "architecture": "mlp",
    "architecture_options": {"hidden": 16},
    "batch_size": 16,
}
TINY_DCGAN: dict[str, Any] = {
    "dataset": "stacked_digits",
    "architecture": "dcgan",
    "latent_dim": 8,
    "architecture_options": {"base_width": 8},
    "batch_size": 8,
    "grid_size": 4,
}
# one run per kind of loop and of random draw: BatchNorm and a relativistic loss (G uses D(x)),
# the gradient penalty's own draws with several D steps, and the two joint models
CONFIGS = {
    "dcgan-rasgan": dict(TINY_DCGAN, loss="rasgan"),
    "mlp-wgan_gp": dict(TINY_MLP, loss="wgan_gp", d_steps=2),
    "mlp-veegan": dict(TINY_MLP, loss="veegan"),
    "mlp-bigan": dict(TINY_MLP, loss="bigan"),
    "dcgan-bigan": dict(TINY_DCGAN, loss="bigan"),
    "dcgan-ali": dict(TINY_DCGAN, loss="ali"),  # the encoder's draws come from the noise RNG
}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(fields: dict[str, Any]) -> TrainConfig:
    # checkpoint at 3: between two progress rows (2 and 4), so the partial loss sum must carry
    return TrainConfig(steps=7, log_every=2, sample_every=5, seed=4, **fields)


def _finished(events: list[TrainEvent]) -> TrainFinished:
    assert isinstance(events[-1], TrainFinished)
    return events[-1]


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _interrupted(config: TrainConfig, path: Path, after_step: int) -> list[TrainEvent]:
    """Train with checkpoints every 3 steps, saving each, and stop once `after_step` is logged."""
    seen: list[TrainEvent] = []
    for event in train(config, checkpoint_every=3):
        seen.append(event)
        if isinstance(event, TrainCheckpoint):
            save_train_state(path, config, event.state)
        if isinstance(event, TrainProgress) and event.step == after_step:
            break
    return seen


@pytest.mark.parametrize("name", CONFIGS)
def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_ends(
    name: str, tmp_path: Path
) -> None:
    config = _config(CONFIGS[name])
    reference = list(train(config))
    path = tmp_path / "state.safetensors"

    first = _interrupted(config, path, after_step=4)
    assert [e.step for e in first if isinstance(e, TrainCheckpoint)] == [3]
    state = load_train_state(path, config)
    assert state.step == 3 and state.loss_count == 1  # step 3's losses, not yet in a progress row
    networks = {k.split(".")[1] for k in state.tensors if k.startswith("network.")}
    expected = {"generator", "discriminator"} | (
        {"reconstructor"}
        if "veegan" in name
        else {"encoder"}
        if "bigan" in name or "ali" in name
        else set()
    )
    assert networks == expected
    assert {k.split(".")[1] for k in state.tensors if k.startswith("optimizer.")} == expected

    resumed = list(train(config, resume=state, checkpoint_every=3))
    assert min(e.step for e in resumed) == 4  # goes on after step 3, not from 0
    assert _finished(resumed).step == config.steps

    def progress(events: list[TrainEvent]) -> list[tuple[int, dict[str, float]]]:
        return [(e.step, e.losses) for e in events if isinstance(e, TrainProgress)]

    assert progress(resumed) == [p for p in progress(reference) if p[0] > 3]  # 4, 6, 7
    grids = [e for e in resumed if isinstance(e, TrainSamples)]
    reference_grids = [e for e in reference if isinstance(e, TrainSamples)]
    assert [g.step for g in grids] == [g.step for g in reference_grids] == [5, 7]
    assert all((a.samples == b.samples).all() for a, b in zip(grids, reference_grids, strict=True))
    after, expected_weights = (
        _weights(_finished(resumed).generator),
        _weights(_finished(reference).generator),
    )
    assert after.keys() == expected_weights.keys()
    assert all(torch.equal(after[k], expected_weights[k]) for k in after)
    assert _finished(resumed).losses == _finished(reference).losses


def test_one_state_resumes_twice_the_same_way(tmp_path: Path) -> None:
    """Training must not write into the state it started from (Adam updates moments in place)."""
    config = _config(CONFIGS["dcgan-rasgan"])
    _interrupted(config, tmp_path / "state.safetensors", after_step=4)
    state = load_train_state(tmp_path / "state.safetensors", config)
    a = _weights(_finished(list(train(config, resume=state))).generator)
    b = _weights(_finished(list(train(config, resume=state))).generator)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_no_checkpoint_at_the_last_step_and_none_by_default() -> None:
    config = TrainConfig(steps=6, log_every=3, sample_every=0, loss="rsgan", **TINY_MLP)
    assert not [e for e in train(config) if isinstance(e, TrainCheckpoint)]
    steps = [e.step for e in train(config, checkpoint_every=3) if isinstance(e, TrainCheckpoint)]
    assert steps == [3]  # 6 is the end: the finished generator is saved instead


def test_states_that_do_not_fit_the_run_are_refused(tmp_path: Path) -> None:
    config = _config(CONFIGS["mlp-wgan_gp"])
    path = tmp_path / "state.safetensors"
    _interrupted(config, path, after_step=4)
    state = load_train_state(path, config)

    with pytest.raises(ValueError, match="another config"):
        load_train_state(path, dataclasses.replace(config, seed=5))
    # the device is not part of what must match: a state moves with its run
    assert load_train_state(path, dataclasses.replace(config, device="cpu:0")).step == 3
    with pytest.raises(ValueError, match="does not fit a run of 3 steps"):
        train(dataclasses.replace(config, steps=3), resume=state)
    with pytest.raises(ValueError, match="cannot go on on cpu"):
        train(config, resume=dataclasses.replace(state, device_type="cuda"))
    with pytest.raises(ValueError, match="discriminator does not fit"):
        train(dataclasses.replace(config, d_width=2.0), resume=state)

    def without(prefix: str) -> TrainState:
        kept = {k: v for k, v in state.tensors.items() if not k.startswith(prefix)}
        return dataclasses.replace(state, tensors=kept)

    with pytest.raises(ValueError, match="RNG states"):
        train(config, resume=without("rng.noise"))
    extra = dict(state.tensors, **{"bogus.entry": torch.zeros(1)})
    with pytest.raises(ValueError, match="unexpected entries"):
        train(config, resume=dataclasses.replace(state, tensors=extra))
    moments = {k: torch.zeros(3) if k.endswith("exp_avg") else v for k, v in state.tensors.items()}
    with pytest.raises(ValueError, match="generator optimiser does not fit"):
        train(config, resume=dataclasses.replace(state, tensors=moments))

    (tmp_path / "junk.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ValueError, match="not a training state"):
        load_train_state(tmp_path / "junk.safetensors", config)


def test_a_state_saved_before_a_config_field_existed_still_resumes(tmp_path: Path) -> None:
    """A run interrupted before an upgrade added a field to its config (gp_weight, say) goes on
    after it: the missing field takes its default, which does what the old run did. A field
    the state has that this version lacks is still another config."""
    from safetensors.torch import save_file

    from app.gan.checkpoint import read_safetensors_header

    config = _config(CONFIGS["mlp-wgan_gp"])
    path = tmp_path / "state.safetensors"
    _interrupted(config, path, after_step=4)
    _, metadata = read_safetensors_header(path)
    tensors = load_file(path)

    def rewritten(edit: Any) -> Path:
        fields = json.loads(metadata[app.gan.resume.METADATA_CONFIG])
        edit(fields)
        out = tmp_path / f"edited{len(list(tmp_path.iterdir()))}.safetensors"
        meta = dict(metadata, **{app.gan.resume.METADATA_CONFIG: json.dumps(fields)})
        save_file(tensors, out, meta)
        return out

    older = rewritten(lambda f: f.pop("gp_weight"))
    assert load_train_state(older, config).step == 3
    with pytest.raises(ValueError, match="another config"):  # lambda 0.1 is not the default's
        load_train_state(older, dataclasses.replace(config, gp_weight=0.1))
    with pytest.raises(ValueError, match="another config"):
        load_train_state(rewritten(lambda f: f.update(from_the_future=1)), config)
    with pytest.raises(ValueError, match="another config"):
        load_train_state(rewritten(lambda f: f.update(seed=5)), config)


def test_a_failed_save_leaves_the_previous_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(CONFIGS["mlp-veegan"])
    path = tmp_path / "state.safetensors"
    _interrupted(config, path, after_step=4)
    state = load_train_state(path, config)

    def dies_half_way(tensors: Any, filename: Any, metadata: Any = None) -> None:
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(app.gan.resume, "save_file", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        save_train_state(path, config, dataclasses.replace(state, step=6))
    assert load_train_state(path, config).step == 3
    assert [p.name for p in tmp_path.iterdir()] == ["state.safetensors"]


class Crash(BaseException):
    """Stands for the process dying: nothing in the runner may catch it."""


def test_a_killed_training_job_resumes_from_its_last_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.jobs.train, "default_device", lambda: "cpu")  # bit-exact on CPU
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    settings.ensure_dirs()
    url = settings.resolved_database_url()
    upgrade(url)
    db = Database(url)
    body = TrainingRunCreate(
        dataset="ring8", loss="rsgan", steps=12, log_every=1, sample_every=4, batch_size=16
    )
    run, job = create_run(db, settings.data_dir, body)
    reference_run, reference_job = create_run(db, settings.data_dir, body)
    assert JobRunner(db, settings).run_job(reference_job.id).status == "done"

    first: list[int] = []

    def dies_at_step_6(step: int, steps: int, _: int) -> None:
        first.append(step)
        if step == 6:
            raise Crash

    with pytest.raises(Crash):
        JobRunner(db, settings).run_job(job.id, on_progress=dies_at_step_6)
    saved = state_path(settings.models_dir, run.id)
    with db.read() as session:
        assert [m.step for m in training_store.losses(session, run.id)] == [1, 2, 3, 4, 5, 6]
    assert load_file(saved)["rng.data"].dtype == torch.uint8  # the state after step 4

    second: list[int] = []
    outcome = JobRunner(db, settings).run_job(
        job.id, on_progress=lambda step, steps, _: second.append(step)
    )
    assert outcome.status == "done"
    assert second[0] == 4 and min(second) == 4  # from the saved step, not from 0
    assert second[-1] == 12
    assert not saved.exists()  # the finished run needs no state any more

    with db.read() as session:
        resumed = training_store.get_run(session, run.id)
        reference = training_store.get_run(session, reference_run.id)
        assert resumed.step == resumed.steps == 12 and resumed.status == "done"
        rows = [(m.step, m.losses) for m in training_store.losses(session, run.id)]
        expected = [(m.step, m.losses) for m in training_store.losses(session, reference_run.id)]
        assert [s for s, _ in rows] == list(range(1, 13))  # no step lost, none twice
        assert rows == expected
        assert training_store.grid_steps(session, run.id) == [4, 8, 12]
        assert resumed.generator_id is not None and reference.generator_id is not None
        paths = [
            settings.models_dir / generator_store.get_generator(session, r.generator_id).path
            for r in (resumed, reference)
        ]
    weights, reference_weights = (load_file(p) for p in paths)
    assert all(torch.equal(weights[k], reference_weights[k]) for k in reference_weights)
    db.dispose()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_run_on_the_gpu_resumes_on_the_gpu(tmp_path: Path) -> None:
    """The noise RNG lives on the device; its state and Adam's moments come back there."""
    config = dataclasses.replace(_config(CONFIGS["dcgan-rasgan"]), device="cuda")
    reference = _finished(list(train(config)))
    _interrupted(config, tmp_path / "state.safetensors", after_step=4)
    state = load_train_state(tmp_path / "state.safetensors", config)
    assert state.device_type == "cuda"
    resumed = list(train(config, resume=state))
    assert min(e.step for e in resumed) == 4
    done = _finished(resumed)
    assert next(done.generator.parameters()).is_cuda
    expected = _weights(reference.generator)
    for key, value in _weights(done.generator).items():
        # GPU kernels may sum in another order from run to run: close, not always equal
        torch.testing.assert_close(value, expected[key], rtol=1e-4, atol=1e-5)
