"""CLIP embedder on the tiny ViT config: shapes, determinism, loading weights from a file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file

from app.embed.clip import TINY_CLIP_MODEL, ClipEmbedder
from app.settings import Settings
from tests.conftest import assert_problem


def images(count: int, channels: int = 3, side: int = 32, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(count, channels, side, side, generator=gen) * 2 - 1


@pytest.fixture(scope="module")
def tiny() -> ClipEmbedder:
    return ClipEmbedder(TINY_CLIP_MODEL, None, "cpu")


def test_rows_are_unit_length_float32_of_the_model_width(tiny: ClipEmbedder) -> None:
    rows = tiny.embed(images(5))
    assert tiny.dim == 32
    assert rows.shape == (5, 32)
    assert rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)


def test_untrained_model_says_so(tiny: ClipEmbedder) -> None:
    assert not tiny.trained
    assert "untrained" in tiny.name


def test_same_seed_same_rows_other_seed_other_rows(tiny: ClipEmbedder) -> None:
    batch = images(4)
    again = ClipEmbedder(TINY_CLIP_MODEL, None, "cpu")
    np.testing.assert_array_equal(again.embed(batch), tiny.embed(batch))
    other = ClipEmbedder(TINY_CLIP_MODEL, None, "cpu", seed=1)
    assert np.abs(other.embed(batch) - tiny.embed(batch)).max() > 1e-3


def test_batching_does_not_change_rows(tiny: ClipEmbedder) -> None:
    batch = images(5)
    small = ClipEmbedder(TINY_CLIP_MODEL, None, "cpu", batch_size=2)
    np.testing.assert_allclose(small.embed(batch), tiny.embed(batch), atol=1e-6)


def test_grey_images_read_as_three_equal_channels(tiny: ClipEmbedder) -> None:
    grey = images(3, channels=1)
    np.testing.assert_array_equal(tiny.embed(grey), tiny.embed(grey.repeat(1, 3, 1, 1)))


def test_non_square_images_are_center_cropped_after_fitting_the_short_side(
    tiny: ClipEmbedder,
) -> None:
    wide = images(2, side=48)[:, :, :32, :]  # (2, 3, 32, 48): short side already 32
    np.testing.assert_allclose(tiny.embed(wide), tiny.embed(wide[:, :, :, 8:40]), atol=1e-6)


def test_other_sizes_are_resized_to_the_model_input(tiny: ClipEmbedder) -> None:
    rows = tiny.embed(images(2, side=20))
    assert rows.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)


def test_near_duplicates_are_closer_than_different_images(tiny: ClipEmbedder) -> None:
    originals = images(4, seed=3)
    gen = torch.Generator().manual_seed(4)
    noisy = (originals + 0.02 * torch.randn(originals.shape, generator=gen)).clamp(-1, 1)
    a, b = tiny.embed(originals), tiny.embed(noisy)
    distances = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    assert distances.diagonal().max() < (distances + np.eye(4) * 1e9).min()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_weights_saved_then_loaded_from_a_local_file_give_the_same_rows(
    tiny: ClipEmbedder, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"tiny{suffix}"
    state = {key: value.contiguous() for key, value in tiny.model.state_dict().items()}
    if suffix == ".pt":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    # A different seed proves the rows come from the file, not from the random init.
    loaded = ClipEmbedder(TINY_CLIP_MODEL, path, "cpu", seed=7)
    batch = images(3)
    np.testing.assert_array_equal(loaded.embed(batch), tiny.embed(batch))
    assert loaded.trained
    assert loaded.name == f"clip:{TINY_CLIP_MODEL}:tiny{suffix}"


def test_a_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        ClipEmbedder(TINY_CLIP_MODEL, tmp_path / "absent.safetensors", "cpu")


def test_weights_for_another_model_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"linear.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="could not load CLIP weights"):
        ClipEmbedder(TINY_CLIP_MODEL, path, "cpu")


class _RunsCode:
    """A pickle that would create a directory if it were ever unpickled with full pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_a_pickle_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"visual.proj": _RunsCode(marker)}, path)
    with pytest.raises(ValueError, match="could not load CLIP weights"):
        ClipEmbedder(TINY_CLIP_MODEL, path, "cpu")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("model", "tag", "message"),
    [
        ("no-such-model", None, "unknown CLIP model"),
        ("hf-hub:org/repo", None, "not supported"),
        (TINY_CLIP_MODEL, "openai", "unknown pretrained tag"),
    ],
)
def test_models_that_would_download_or_do_not_exist_are_refused(
    model: str, tag: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ClipEmbedder(model, None, "cpu", pretrained_tag=tag)


def test_bad_input_is_refused(tiny: ClipEmbedder) -> None:
    with pytest.raises(ValueError, match="channels"):
        tiny.embed(torch.zeros(1, 2, 32, 32))
    with pytest.raises(ValueError, match="float"):
        tiny.embed(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def _write_bad_weights(path: Path) -> None:
    """Each file name says what is wrong with it."""
    kind = path.stem
    if kind == "empty":
        torch.save({}, path)
    elif kind == "empty_wrapped":
        torch.save({"state_dict": {}}, path)
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "list":
        torch.save([1, 2], path)
    elif kind == "not_tensors":
        torch.save({"visual.proj": 3}, path)
    elif kind == "truncated":
        torch.save({"visual.proj": torch.zeros(8, 8)}, path)
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "corrupt":
        path.write_bytes(b"\x00" * 100)
    elif kind == "weights":
        np.savez(path, a=np.zeros(3))
    else:
        raise AssertionError(kind)


BAD_WEIGHTS = [
    ("empty.pt", "empty mapping"),
    ("empty_wrapped.pt", "empty mapping"),
    ("tensor.pt", "got Tensor"),
    ("list.pt", "got list"),
    ("not_tensors.pt", "got int under 'visual.proj'"),
    ("truncated.pt", "could not load CLIP weights"),
    ("corrupt.safetensors", "could not load CLIP weights"),
    ("weights.npz", "numpy"),
]


@pytest.mark.parametrize(("name", "message"), BAD_WEIGHTS)
def test_malformed_weight_files_are_a_clear_value_error(
    tmp_path: Path, name: str, message: str
) -> None:
    path = tmp_path / name
    _write_bad_weights(path)
    with pytest.raises(ValueError, match=message):
        ClipEmbedder(TINY_CLIP_MODEL, path, "cpu")


def test_malformed_weights_make_the_audit_request_a_422(
    client: TestClient, settings: Settings
) -> None:
    (settings.models_dir / "clip").mkdir(parents=True)
    for name, message in BAD_WEIGHTS:
        _write_bad_weights(settings.models_dir / "clip" / name)
        body = {
            "synthetic": {"support": 5, "channels": 3},
            "n": 20,
            "embedder": "clip",
            "embedder_options": {"model": TINY_CLIP_MODEL, "weights": f"clip/{name}"},
        }
        problem = assert_problem(client.post("/api/audits", json=body), 422)
        assert message in problem["detail"], name


def test_weights_for_another_input_size_are_refused_not_interpolated(
    tiny: ClipEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_clip would resize the positional embeddings of a 32px model to fit 64px inputs."""
    config = open_clip.get_model_config(TINY_CLIP_MODEL)
    config["vision_cfg"]["image_size"] = 64
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "birthday-tiny-vit-64px-test", config)
    path = tmp_path / "tiny32.safetensors"
    save_file(
        {key: value.contiguous() for key, value in tiny.model.state_dict().items()}, str(path)
    )
    shapes = r"visual.positional_embedding \(17, 64\) in the file, \(65, 64\) in the model"
    with pytest.raises(ValueError, match=shapes):
        ClipEmbedder("birthday-tiny-vit-64px-test", path, "cpu")
    assert ClipEmbedder("birthday-tiny-vit-64px-test", None, "cpu").dim == tiny.dim


def test_the_pretrained_tag_is_part_of_the_name() -> None:
    """The tag picks QuickGELU and the normalisation: the same file under two tags differs."""
    tagged = ClipEmbedder("RN50", None, "cpu", pretrained_tag="openai")
    assert tagged.name == "clip:RN50 (untrained, random init seed 0) [tag openai]"
