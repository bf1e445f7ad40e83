"""Progress pictures: the tiled image grid and the 2D scatter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.gan.sample_grids import image_grid, scatter_image, to_uint8


def test_to_uint8_maps_the_tanh_range() -> None:
    values = torch.tensor([-1.0, 0.0, 1.0, 1.5, -3.0])
    assert to_uint8(values).tolist() == [0, 128, 255, 255, 0]


def test_grid_places_tiles_row_by_row_with_padding() -> None:
    images = torch.stack([torch.full((3, 2, 2), v) for v in (-1.0, 1.0, 0.0)])
    grid = image_grid(images, nrow=2, padding=1)
    # 2 rows x 2 columns of 2x2 tiles, 1 pixel of padding around and between
    assert grid.shape == (7, 7, 3) and grid.dtype == np.uint8
    assert (grid[1:3, 1:3] == 0).all()  # image 0, black
    assert (grid[1:3, 4:6] == 255).all()  # image 1, white, to its right
    assert (grid[4:6, 1:3] == 128).all()  # image 2 starts the second row
    assert (grid[4:6, 4:6] == 0).all()  # no fourth image: left as padding
    # ceil(sqrt(10)) = 4 per row, so 3 rows
    assert image_grid(torch.zeros(10, 1, 4, 4)).shape == (3 * 6 + 2, 4 * 6 + 2, 1)
    with pytest.raises(ValueError, match="need images"):
        image_grid(torch.zeros(0, 1, 4, 4))


def test_scatter_draws_points_over_reference_with_y_up() -> None:
    picture = scatter_image(
        torch.tensor([[0.9, 0.9]]), torch.tensor([[-0.9, -0.9]]), extent=1.0, size=21
    )
    dark = np.argwhere((picture == (20, 40, 160)).all(axis=2))
    grey = np.argwhere((picture == (200, 200, 200)).all(axis=2))
    assert len(dark) == 4 and len(grey) == 4  # 2x2 dots
    # top right for (0.9, 0.9), bottom left for (-0.9, -0.9): rows count down from the top
    assert dark[:, 0].max() < 5 and dark[:, 1].min() > 15
    assert grey[:, 0].min() > 15 and grey[:, 1].max() < 5
    outside = scatter_image(torch.tensor([[5.0, 0.0]]), torch.zeros(0, 2), extent=1.0, size=21)
    assert (outside == 255).all()
