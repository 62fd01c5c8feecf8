"""The training run's configuration: one dataclass, its JSON file and its command-line options.

The same options serve ``humanbench train`` and ``python -m humanbench.training`` (the entry that
``torchrun`` starts); this module imports no torch so that ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from humanbench.errors import HumanbenchError

AMP_MODES = ("none", "bf16", "fp16")
SCHEDULES = ("cosine", "constant")


class TrainingError(HumanbenchError):
    """A training run that cannot start or go on; the message says what to change."""


@dataclass
class TrainConfig:
    """Everything one training run depends on (all processes of a run share it).

    Steps count optimizer updates; one update consumes ``accumulate`` batches of ``batch_size``
    samples on every process, so the global batch is ``batch_size * accumulate * world_size``.
    """

    method: str
    shards: list[str]
    out: str
    weights: list[float] | None = None  # mixture sampling weights, one per shard folder (None: by size)
    steps: int = 1000
    batch_size: int = 32
    accumulate: int = 1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.01
    grad_clip: float | None = None
    amp: str = "none"
    seed: int = 0
    workers: int = 0
    threads: int | None = None
    device: str | None = None
    eval_shards: str | None = None
    protocol: str = "3dpw/spin"
    eval_every: int = 0
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    resume: bool = True
    body_models: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not self.shards:
            problems.append("give at least one training shard folder")
        if self.weights is not None and (len(self.weights) != len(self.shards) or min(self.weights) < 0
                                         or sum(self.weights) <= 0):
            problems.append(f"weights: need {len(self.shards)} non-negative number(s) with a positive sum, got {self.weights}")
        for name in ("steps", "batch_size", "accumulate", "checkpoint_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.amp not in AMP_MODES:
            problems.append(f"amp must be one of {list(AMP_MODES)}, got {self.amp!r}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.eval_every and not self.eval_shards:
            problems.append("eval_every needs eval_shards")
        if problems:
            raise TrainingError("; ".join(problems))

    @property
    def out_path(self) -> Path:
        """The run folder: checkpoints/, logs, eval/, summary.json."""
        return Path(self.out)

    def to_json(self) -> str:
        """The configuration as canonical JSON."""
        return json.dumps(asdict(self), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        """Inverse of :meth:`to_json`; unknown keys are refused."""
        data = json.loads(text)
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise TrainingError(f"unknown training config key(s) {unknown}")
        return cls(**data)


def _option(text: str) -> tuple[str, Any]:
    """``key=value`` with value parsed as JSON when it is JSON, else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options shared by ``humanbench train`` and ``python -m humanbench.training``."""
    d = TrainConfig(method="-", shards=["-"], out="-")
    parser.add_argument("method", metavar="METHOD", help="method to train: 'hmr' or a 'package.module:Class' plug-in")
    parser.add_argument("--shards", nargs="+", required=True, metavar="DIR", help="training shard folder(s)")
    parser.add_argument("--weights", nargs="+", type=float, default=None, metavar="W",
                        help="sampling weight of each shard folder in the mixture (default: proportional to size)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run folder (checkpoints, logs, evaluation); a run found there is resumed")
    parser.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps (default {d.steps})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, metavar="N",
                        help=f"samples per process per micro-batch (default {d.batch_size})")
    parser.add_argument("--accumulate", type=int, default=d.accumulate, metavar="N",
                        help="micro-batches accumulated per optimizer step (default 1)")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"AdamW weight decay (default {d.weight_decay})")
    parser.add_argument("--schedule", choices=SCHEDULES, default=d.schedule, help="LR schedule after warmup (default cosine)")
    parser.add_argument("--warmup-steps", type=int, default=d.warmup_steps, metavar="N", help="linear warmup steps (default 0)")
    parser.add_argument("--min-lr-ratio", type=float, default=d.min_lr_ratio, metavar="R",
                        help=f"final LR of the cosine schedule as a fraction of --lr (default {d.min_lr_ratio})")
    parser.add_argument("--grad-clip", type=float, default=None, metavar="NORM", help="clip the gradient norm (default off)")
    parser.add_argument("--amp", choices=AMP_MODES, default=d.amp,
                        help="mixed precision on CUDA (bf16 or fp16 with loss scaling); ignored on the CPU (default none)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the model init, data order and RNGs (default 0)")
    parser.add_argument("--workers", type=int, default=d.workers, metavar="N", help="data-loading workers per process (default 0)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads per process (default: CPU cores / local processes)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--eval-shards", default=None, metavar="DIR", help="GT shards evaluated during and after training")
    parser.add_argument("--protocol", default=d.protocol, metavar="ID", help=f"evaluation protocol (default {d.protocol})")
    parser.add_argument("--eval-every", type=int, default=d.eval_every, metavar="N",
                        help="evaluate every N steps (default 0: only at the end, when --eval-shards is given)")
    parser.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, metavar="N",
                        help=f"write a checkpoint every N steps (default {d.checkpoint_every})")
    parser.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints, metavar="N",
                        help=f"newest checkpoints kept (default {d.keep_checkpoints})")
    parser.add_argument("--log-every", type=int, default=d.log_every, metavar="N", help=f"log every N steps (default {d.log_every})")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="start from scratch even when the run folder holds checkpoints")
    parser.add_argument("--body-models", default=None, metavar="DIR", help="SMPL/SMPL-X folder (default: synthetic models)")
    parser.add_argument("--set", dest="options", action="append", type=_option, default=[], metavar="KEY=VALUE",
                        help="method option (repeatable; VALUE is JSON or a string), e.g. --set crop_size=96")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed :func:`add_arguments` options."""
    names = {f.name for f in fields(TrainConfig)}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    values["options"] = dict(args.options)
    return TrainConfig(**values)
