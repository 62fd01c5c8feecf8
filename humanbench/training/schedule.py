"""Learning-rate schedules per optimizer step: linear warmup, then cosine decay or constant."""

from __future__ import annotations

import functools
import math

import torch

from humanbench.training.config import TrainConfig


def lr_factor(step: int, *, total: int, warmup: int, kind: str, min_ratio: float) -> float:
    """Multiplier of the peak LR at optimizer step ``step`` (0-based).

    Warmup rises linearly to 1 over ``warmup`` steps ((step + 1) / warmup, so step 0 already
    trains); ``cosine`` then falls to ``min_ratio`` at ``total``; ``constant`` stays at 1.
    """
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR of :func:`lr_factor` for ``config`` (its state_dict holds only numbers)."""
    factor = functools.partial(lr_factor, total=config.steps, warmup=config.warmup_steps, kind=config.schedule,
                               min_ratio=config.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
