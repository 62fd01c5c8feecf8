"""Evaluation during training through the evaluation API.

Every rank predicts its exact-once slice of the evaluation shards with the method's
``predict``; rank 0 gathers the slices into one predictions file under
``<out>/eval/step-<step>/`` and then every rank runs :func:`humanbench.evaluation.evaluate`
(which splits the work across ranks again). The record is written next to the predictions.
With several nodes the run folder must be on a filesystem every node sees.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from humanbench.evaluation import evaluate
from humanbench.predictions import Predictions, save_predictions
from humanbench.records import ResultRecord
from humanbench.schema import decode_sample
from humanbench.shards import ShardDataset
from humanbench.training import distributed
from humanbench.training.config import TrainConfig, TrainingError
from humanbench.training.method import Method


def concat_predictions(parts: list[Predictions]) -> Predictions:
    """One :class:`Predictions` of the rows of ``parts`` (same fields and body model in every part)."""
    present = [p for p in parts if len(p)]
    if not present:
        return parts[0]
    fields = present[0].arrays().keys()
    if any(p.arrays().keys() != fields or p.body_model != present[0].body_model for p in present):
        raise TrainingError("predictions of different ranks hold different fields or body models")
    arrays = {name: np.concatenate([p.arrays()[name] for p in present]) for name in fields}
    return Predictions(body_model=present[0].body_model, **arrays)


def run_validation(method: Method, module: nn.Module, config: TrainConfig, step: int,
                   device: torch.device) -> ResultRecord:
    """Predict on ``config.eval_shards``, write the predictions and evaluate them under ``config.protocol``."""
    dataset = ShardDataset(config.eval_shards, decode_sample, shuffle=False)
    was_training = module.training
    module.eval()
    with torch.no_grad():
        local = method.predict(module, dataset)
    module.train(was_training)
    folder = config.out_path / "eval" / f"step-{step:08d}"
    path = folder / "predictions.npz"
    gathered = distributed.gather_to_main(local)
    if gathered is not None:
        save_predictions(concat_predictions(gathered), path)
    distributed.barrier()
    return evaluate(config.protocol, config.eval_shards, path, out=folder, method=f"{method.name}@{step}",
                    body_models=config.body_models, device=device.type, progress=False,
                    command=f"humanbench train {config.method} (step {step})")

