"""The plug-in interface every trainable method implements (see ``docs/adding-a-method.md``).

A method is a :class:`Method` subclass: it builds its model, turns a decoded sample into a
training item, computes a loss dict for a batch and predicts on evaluation shards. The harness
(:mod:`humanbench.training.harness`) owns processes, data order, optimisation, precision,
checkpoints, logging and evaluation, identically for every method.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from humanbench.predictions import Predictions
from humanbench.schema import Sample, decode_sample
from humanbench.shards import ShardDataset, collate
from humanbench.training.config import TrainConfig, TrainingError

Parallel = Literal["ddp", "allreduce", "independent"]

METHODS: dict[str, str] = {"hmr": "humanbench.baselines.hmr.method:HMRMethod"}
"""Short names of the built-in methods -> ``module:Class``."""


@dataclass
class StepContext:
    """What a training step may need besides the model and the batch.

    ``module`` is the bare model even when ``model`` is wrapped in DistributedDataParallel: use
    it for functional calls (``torch.func.functional_call(ctx.module, params, args)``) inside an
    inner update, but run the one forward that produces the loss through ``model``.
    """

    step: int  # optimizer step being computed, 0-based
    micro_step: int  # micro-batch within gradient accumulation, 0-based
    total_steps: int
    rank: int
    world_size: int
    device: torch.device
    module: nn.Module
    config: TrainConfig


class Method:
    """Base class of trainable methods; override the methods marked *required*.

    Class attributes:
        name: short name, used in logs, records and predictions.
        parallel: how processes cooperate. ``"ddp"``: the model is wrapped in
            DistributedDataParallel (one forward/backward through the wrapper per micro-batch).
            ``"allreduce"``: no wrapper; the harness averages gradients after the backward passes,
            so a step may run any number of forwards, functional calls or second-order gradients
            (Meta-HMR). ``"independent"``: every process trains its own model on its own data
            (HUGS, one scene per rank; parameter sets may change shape) and checkpoints keep one
            state per rank.
        find_unused_parameters: passed to DistributedDataParallel (MonoHuman has parameters that
            take no part in the loss).
        default_options: the method's options and their defaults; ``--set KEY=VALUE`` overrides them.
    """

    name: ClassVar[str] = "method"
    parallel: ClassVar[Parallel] = "ddp"
    find_unused_parameters: ClassVar[bool] = False
    default_options: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        unknown = sorted(set(options or {}) - set(self.default_options))
        if unknown:
            raise TrainingError(f"method {self.name!r} has no option(s) {unknown}; its options: "
                                f"{dict(self.default_options)}")
        self.options: dict[str, Any] = {**self.default_options, **(options or {})}

    def build_model(self, config: TrainConfig) -> nn.Module:
        """*Required.* A freshly initialised model (the harness seeds torch first and moves it to the device)."""
        raise NotImplementedError

    def train_datasets(self, config: TrainConfig, rank: int, world_size: int) -> Sequence[ShardDataset]:
        """The shard datasets this process draws training samples from (one per mixture component).

        The default reads every ``config.shards`` folder with the seeded training shuffle, split
        across ranks with equal per-rank counts. Override to give each rank its own data, e.g.
        ``[ShardDataset(config.shards[rank], decode_sample, rank=0, world_size=1, shuffle=True)]``
        for one scene per rank (use ``parallel = "independent"`` then).
        """
        return [ShardDataset(path, decode_sample, rank=rank, world_size=world_size, shuffle=True, seed=config.seed)
                for path in config.shards]

    def train_transform(self, sample: Sample, rng: np.random.Generator) -> Any:
        """*Required.* One training item from one decoded sample (runs in the data workers).

        ``rng`` is seeded from the run seed and the item's position in the data stream: use it
        (and no global RNG) for augmentation so that a resumed run sees the same items.
        """
        raise NotImplementedError

    def collate(self, items: Sequence[Any]) -> Any:
        """Batch training items (default: :func:`humanbench.shards.collate`)."""
        return collate(items)

    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> dict[str, Tensor]:
        """*Required.* Loss terms of one micro-batch; ``"loss"`` is the one minimised, the rest are logged."""
        raise NotImplementedError

    def predict(self, model: nn.Module, dataset: ShardDataset) -> Predictions:
        """*Required for evaluation.* Predictions for every person of every sample ``dataset`` yields.

        ``dataset`` yields decoded :class:`~humanbench.schema.Sample` s of this process's
        exact-once slice; the model is in eval mode under ``torch.no_grad``.
        """
        raise NotImplementedError

    def configure_optimizers(self, model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
        """The optimizer (default: AdamW with ``config.lr`` and ``config.weight_decay``); the harness adds the schedule."""
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def load_method(spec: str, options: Mapping[str, Any] | None = None) -> Method:
    """The method named ``spec`` (a key of :data:`METHODS` or ``package.module:Class``) with ``options``."""
    target = METHODS.get(spec, spec)
    module_name, sep, class_name = target.partition(":")
    if not sep:
        raise TrainingError(f"unknown method {spec!r}: use one of {sorted(METHODS)} or 'package.module:Class'")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise TrainingError(f"cannot load method {spec!r} ({target}): {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TrainingError(f"{target} is not a humanbench.training.Method subclass")
    return cls(options)
