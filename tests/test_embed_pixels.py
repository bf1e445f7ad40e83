"""Pixel embedder: exact rows on hand-made tensors, and distances that find near-duplicates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.embed.pixels import PixelEmbedder


def ramp(height: int = 4, width: int = 4) -> torch.Tensor:
    """One grey image whose pixel (r, c) holds r * width + c."""
    return torch.arange(height * width, dtype=torch.float32).reshape(1, 1, height, width)


def test_flatten_keeps_every_pixel_in_row_major_order() -> None:
    rows = PixelEmbedder((1, 4, 4), device="cpu").embed(ramp())
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, np.arange(16, dtype=np.float32)[None])


def test_center_crop_takes_the_middle_window() -> None:
    rows = PixelEmbedder((1, 4, 4), crop=2, device="cpu").embed(ramp())
    np.testing.assert_array_equal(rows, [[5, 6, 9, 10]])


def test_odd_margin_crop_leaves_the_extra_pixel_at_bottom_right() -> None:
    rows = PixelEmbedder((1, 5, 5), crop=2, device="cpu").embed(ramp(5, 5))
    np.testing.assert_array_equal(rows, [[6, 7, 11, 12]])


def test_downsizing_averages_blocks() -> None:
    rows = PixelEmbedder((1, 4, 4), resize=2, device="cpu").embed(ramp())
    np.testing.assert_allclose(rows, [[2.5, 4.5, 10.5, 12.5]])


def test_crop_happens_before_resize() -> None:
    embedder = PixelEmbedder((1, 4, 4), crop=2, resize=1, device="cpu")
    assert embedder.dim == 1
    np.testing.assert_allclose(embedder.embed(ramp()), [[7.5]])


def test_resize_only_shrinks() -> None:
    """Upscaling adds nothing to a distance but rows: resize 6,000 of 8x8 images took 6.7 GB for
    a pool of 4. The side it may not pass is the cropped one."""
    with pytest.raises(ValueError, match="resize shrinks"):
        PixelEmbedder((1, 2, 2), resize=4, device="cpu")
    with pytest.raises(ValueError, match="image side 6"):
        PixelEmbedder((3, 16, 16), crop=6, resize=8, device="cpu")
    assert PixelEmbedder((3, 16, 12), resize=12, device="cpu").dim == 3 * 12 * 12


def test_channels_stay_separate_and_come_first() -> None:
    image = torch.stack([torch.full((3, 3), float(c)) for c in (1, 2, 3)])[None]
    image[0, :, 1, 1] = torch.tensor([10.0, 20.0, 30.0])
    embedder = PixelEmbedder((3, 3, 3), crop=1, device="cpu")
    assert embedder.dim == 3
    np.testing.assert_array_equal(embedder.embed(image), [[10, 20, 30]])


def test_l2_makes_rows_unit_length_and_leaves_zero_rows_zero() -> None:
    images = torch.tensor([[[[3.0, 4.0]]], [[[0.0, 0.0]]]])
    rows = PixelEmbedder((1, 1, 2), normalize="l2", device="cpu").embed(images)
    np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, 0.0]])


def test_dim_matches_the_rows() -> None:
    images = torch.rand(2, 3, 12, 10) * 2 - 1
    for crop, resize, dim in [(None, None, 360), (8, None, 192), (None, 5, 75), (8, 4, 48)]:
        embedder = PixelEmbedder((3, 12, 10), crop=crop, resize=resize, device="cpu")
        assert embedder.dim == dim
        assert embedder.embed(images).shape == (2, dim)


def test_batching_does_not_change_rows() -> None:
    images = torch.rand(7, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    small = PixelEmbedder((3, 8, 8), resize=4, normalize="l2", batch_size=3, device="cpu")
    large = PixelEmbedder((3, 8, 8), resize=4, normalize="l2", device="cpu")
    np.testing.assert_array_equal(small.embed(images), large.embed(images))


def test_empty_batch_gives_no_rows() -> None:
    rows = PixelEmbedder((3, 8, 8), resize=4, device="cpu").embed(torch.zeros(0, 3, 8, 8))
    assert rows.shape == (0, 48)


def test_identical_images_give_identical_rows() -> None:
    base = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    images = torch.cat([base, base[[1]], base[[0]]])
    rows = PixelEmbedder((3, 16, 16), crop=12, resize=6, normalize="l2", device="cpu").embed(images)
    np.testing.assert_array_equal(rows[3], rows[1])
    np.testing.assert_array_equal(rows[4], rows[0])
    assert not np.array_equal(rows[0], rows[1])


def test_near_duplicates_are_closer_than_different_images() -> None:
    gen = torch.Generator().manual_seed(2)
    originals = torch.rand(4, 3, 16, 16, generator=gen) * 2 - 1
    noisy = (originals + 0.05 * torch.randn(originals.shape, generator=gen)).clamp(-1, 1)
    embedder = PixelEmbedder((3, 16, 16), resize=8, normalize="l2", device="cpu")
    a, b = embedder.embed(originals), embedder.embed(noisy)
    distances = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    # Each noisy copy is nearer its own original than any other image is.
    assert distances.diagonal().max() < (distances + np.eye(4) * 1e9).min()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_shape": (2, 8, 8)},
        {"image_shape": (3, 0, 8)},
        {"image_shape": (3, 8, 8), "crop": 9},
        {"image_shape": (3, 8, 8), "crop": 0},
        {"image_shape": (3, 8, 8), "resize": 0},
        {"image_shape": (3, 8, 8), "normalize": "l1"},
        {"image_shape": (3, 8, 8), "batch_size": 0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PixelEmbedder(device="cpu", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "images",
    [
        torch.zeros(2, 3, 8, 9),
        torch.zeros(2, 1, 8, 8),
        torch.zeros(3, 8, 8),
        torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
    ],
)
def test_images_of_another_shape_or_type_are_refused(images: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        PixelEmbedder((3, 8, 8), device="cpu").embed(images)
