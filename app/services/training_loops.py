"""What a run or a sweep trains with, as its pages show it: the optimiser loop, the penalty
and the network sizes, with what a stored config leaves out filled in as it trained."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.gan.losses import LOSSES, PENALISED
from app.gan.training import LOOP_FIELDS, TrainConfig, loop_defaults


@dataclass(frozen=True)
class LossLoop:
    """The Adam loop a group of a sweep's losses trains with (each its paper's)."""

    losses: list[str]
    lr: float
    betas: tuple[float, float]
    d_steps: int


@dataclass(frozen=True)
class LoopView:
    """lr, betas and d_steps are None only where `by_loss` says them per group of losses;
    `gp_losses` names whose lambda `gp_weight` is when a grid also has unpenalised losses."""

    batch_size: int
    lr: float | None
    betas: tuple[float, float] | None
    d_steps: int | None
    gp_weight: float | None
    architecture_options: Mapping[str, Any]
    gp_losses: list[str] = field(default_factory=list)
    by_loss: list[LossLoop] = field(default_factory=list)


def _stored(config: Mapping[str, Any], name: str) -> Any:
    """A run stored before `name` was a field of a request trained with the loop's default;
    betas come back from JSON as a list."""
    value = config.get(name, getattr(TrainConfig(), name))
    return tuple(value) if isinstance(value, list) else value


def run_loop(config: Mapping[str, Any]) -> LoopView:
    """One run's loop; a penalised loss without a lambda of its own trained with its loss's."""
    loss = str(config.get("loss"))
    weight = _stored(config, "gp_weight")
    if weight is None and loss in PENALISED:
        weight = LOSSES[loss].gradient_penalty_weight
    return LoopView(
        batch_size=_stored(config, "batch_size"),
        lr=_stored(config, "lr"),
        betas=_stored(config, "betas"),
        d_steps=_stored(config, "d_steps"),
        gp_weight=weight,
        architecture_options=_stored(config, "architecture_options"),
    )


def _grid_penalty(grid: Mapping[str, Any], losses: Sequence[str]) -> tuple[float | None, list[str]]:
    """The grid's lambda and, when it also has unpenalised losses, whose it is."""
    penalised = [name for name in losses if name in PENALISED]
    weight = _stored(grid, "gp_weight")
    if weight is None and penalised:
        weights = {LOSSES[name].gradient_penalty_weight for name in penalised}
        weight = weights.pop() if len(weights) == 1 else None
    return weight, penalised if len(penalised) < len(losses) else []


def _loops_by_loss(grid: Mapping[str, Any], losses: Sequence[str]) -> list[LossLoop]:
    """The grid's losses grouped by the loop each trains with: a field the grid left null
    (each loss's paper) is its loss's, a field it gave is the same for all."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name in losses:
        paper = loop_defaults(name)
        given = {f: _stored(grid, f) for f in LOOP_FIELDS}
        loop = tuple(paper[f] if given[f] is None else given[f] for f in LOOP_FIELDS)
        groups.setdefault(loop, []).append(name)
    return [LossLoop(names, *loop) for loop, names in groups.items()]


def sweep_loop(grid: Mapping[str, Any]) -> LoopView:
    """A sweep's loop: one line when its losses train alike, else one per group of losses."""
    losses = list(grid.get("losses", []))
    weight, gp_losses = _grid_penalty(grid, losses)
    groups = _loops_by_loss(grid, losses)
    common = groups[0] if len(groups) == 1 else None
    return LoopView(
        batch_size=_stored(grid, "batch_size"),
        lr=common.lr if common else None,
        betas=common.betas if common else None,
        d_steps=common.d_steps if common else None,
        gp_weight=weight,
        architecture_options=_stored(grid, "architecture_options"),
        gp_losses=gp_losses,
        by_loss=groups if len(groups) > 1 else [],
    )
