"""Simultaneous gradient updates for models with several networks and objectives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


def set_grads(params: Sequence[nn.Parameter], loss: Tensor) -> None:
    """Store d loss / d params in `.grad`, touching no other parameter.

    VEEGAN and BiGAN give each network its own objective over one shared graph; taking every
    gradient this way before any optimizer step keeps one network's loss out of another's update.
    """
    grads: Any = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else g.detach()
