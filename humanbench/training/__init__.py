"""The shared training harness: one loop, many methods (see ``docs/training.md`` and ``docs/adding-a-method.md``).

A method subclasses :class:`Method`; :func:`run_training` trains it in one process or several
(DDP over gloo on the CPU, nccl on CUDA), with dataset mixtures, gradient accumulation, mixed
precision, LR schedules, atomic checkpoints with exact resume, logs and periodic evaluation.
Names are loaded lazily so that ``humanbench.training.config`` (the CLI options) imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "METHODS": "method", "Method": "method", "StepContext": "method", "load_method": "method",
    "MixtureStream": "mixture", "TrainConfig": "config", "TrainingError": "config",
    "TrainResult": "harness", "train": "harness", "launch": "launch", "run_training": "launch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"humanbench.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'humanbench.training' has no attribute {name!r}")
