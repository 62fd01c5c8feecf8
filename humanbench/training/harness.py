"""The training loop every method shares: processes, data, optimisation, precision, checkpoints, logs, evaluation.

One call of :func:`train` is one process of a run (rank ``RANK`` of ``WORLD_SIZE`` when started
by ``torchrun`` or :func:`humanbench.training.launch.launch`, else a run of its own). It

1. seeds torch/numpy/python with the run seed, builds the method's model (identical on every
   rank), then re-seeds per rank;
2. resumes from the newest checkpoint in ``<out>/checkpoints`` when there is one: model,
   optimizer, schedule, loss scaler, step, every rank's RNG states and the data position;
3. wraps the model for the method's ``parallel`` mode (DDP, gradient all-reduce, or independent);
4. draws batches from a :class:`~humanbench.training.mixture.MixtureStream` over the method's
   datasets, accumulates gradients over ``accumulate`` micro-batches (without DDP communication
   until the last), steps the optimizer and the per-step LR schedule;
5. logs, evaluates every ``eval_every`` steps and at the end, checkpoints every
   ``checkpoint_every`` steps and at the end, and writes ``summary.json``.

Mixed precision (``amp``) applies on CUDA only: autocast to bf16, or fp16 with a gradient scaler.
On the CPU it is a no-op (CPU autocast is slow on most CPUs and would change the numbers the CPU
tests compare), and the run says so once.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from humanbench.records import ResultRecord
from humanbench.training import distributed
from humanbench.training.checkpoint import (checkpoint_name, latest_checkpoint, load_checkpoint, rng_state,
                                            save_checkpoint, set_rng_state)
from humanbench.training.config import TrainConfig, TrainingError
from humanbench.training.distributed import DistInfo
from humanbench.training.logging import RunLogger
from humanbench.training.method import Method, StepContext, load_method
from humanbench.training.mixture import MixtureStream
from humanbench.training.schedule import build_scheduler
from humanbench.training.validation import run_validation

SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"


@dataclass
class TrainResult:
    """What a finished run reports (``<out>/summary.json``)."""

    out: str
    method: str
    steps: int
    world_size: int
    checkpoint: str
    resumed_from: int | None
    losses: dict[str, float] = field(default_factory=dict)  # last logged training values
    metrics: dict[str, float] = field(default_factory=dict)  # final evaluation
    record: str | None = None  # final evaluation's result record
    samples_per_s: float = float("nan")  # training samples per second, all ranks, after the first step

    def to_text(self) -> str:
        """Summary lines for the command line."""
        lines = [f"{self.method}: {self.steps} steps on {self.world_size} process(es)"
                 + (f", resumed from step {self.resumed_from}" if self.resumed_from is not None else "")
                 + f"; {self.samples_per_s:.1f} samples/s",
                 "  last losses: " + ", ".join(f"{k} {v:.4g}" for k, v in self.losses.items()),
                 f"  checkpoint: {self.checkpoint}"]
        if self.metrics:
            lines.append("  evaluation: " + ", ".join(f"{k} {v:.1f}" for k, v in self.metrics.items()))
            lines.append(f"  record: {self.record}")
        return "\n".join(lines)

    @classmethod
    def read(cls, out: str | Path) -> "TrainResult":
        """The summary a finished run wrote to ``out``."""
        path = Path(out) / SUMMARY
        if not path.is_file():
            raise TrainingError(f"{path} is missing: the run did not finish")
        return cls(**json.loads(path.read_text()))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _autocast(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if config.amp == "none" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if config.amp == "bf16" else torch.float16)


class _Run:
    """The state of one process of a run (see the module docstring)."""

    def __init__(self, config: TrainConfig, info: DistInfo) -> None:
        self.config, self.info = config, info
        self.method: Method = load_method(config.method, config.options)
        if self.method.parallel == "independent" and config.eval_shards:
            raise TrainingError(f"method {self.method.name!r} trains one model per rank: evaluate each rank's model "
                                f"on its own data instead of --eval-shards")
        if info.device.type == "cpu":
            torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // info.local_world_size))
        seed_everything(config.seed)
        self.module: nn.Module = self.method.build_model(config).to(info.device)
        seed_everything(config.seed + 7919 * (info.rank + 1))
        self.optimizer = self.method.configure_optimizers(self.module, config)
        self.scheduler = build_scheduler(self.optimizer, config)
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.amp == "fp16" and info.device.type == "cuda")
        self.step = 0
        self.stream_seed, self.stream_origin = config.seed, 0
        self.resumed_from = self._resume() if config.resume else None
        self.model = self._wrap()
        self.logger = RunLogger(config.out_path, enabled=info.is_main, start_step=self.step, total_steps=config.steps,
                                progress=config.progress)
        if config.amp != "none" and info.device.type != "cuda":
            self.logger.message(f"amp={config.amp} is ignored on {info.device.type}: training in float32")
        if self.resumed_from is not None:
            self.logger.message(f"resumed from step {self.resumed_from}")

    # ---------------------------------------------------------------- checkpoints

    @property
    def _independent(self) -> bool:
        return self.method.parallel == "independent"

    def _layout(self) -> list[int]:
        c = self.config
        return [self.info.world_size, c.workers, c.batch_size, c.accumulate]

    def _local_state(self) -> dict[str, Any]:
        return {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict()}

    def _save(self) -> Path:
        """Write the checkpoint of the current step (rank 0); every rank contributes its RNG states."""
        per_rank = distributed.gather_to_main({"rng": rng_state(), **(self._local_state() if self._independent else {})})
        directory = self.config.out_path / CHECKPOINTS
        if per_rank is not None:
            state = {"step": self.step, "epoch": self._epoch(), "method": self.method.name,
                     "config": asdict(self.config), "rng": [r.pop("rng") for r in per_rank],
                     "data": {"layout": self._layout(), "stream_seed": self.stream_seed,
                              "stream_origin": self.stream_origin}}
            state.update({k: [r[k] for r in per_rank] for k in per_rank[0]} if self._independent else self._local_state())
            save_checkpoint(directory, self.step, state, keep=self.config.keep_checkpoints)
        distributed.barrier()
        return directory / checkpoint_name(self.step)

    def _resume(self) -> int | None:
        path = latest_checkpoint(self.config.out_path / CHECKPOINTS)
        if path is None:
            return None
        state = load_checkpoint(path)  # on the CPU: RNG states must stay there; load_state_dict moves the rest
        if state["method"] != self.method.name:
            raise TrainingError(f"{path} was written by method {state['method']!r}, not {self.method.name!r}; "
                                f"use another --out or --no-resume")
        rank = self.info.rank
        pick = (lambda v: v[rank]) if self._independent else (lambda v: v)
        if self._independent and len(state["model"]) != self.info.world_size:
            raise TrainingError(f"{path} holds {len(state['model'])} per-rank models; resume it with as many processes")
        self.module.load_state_dict(pick(state["model"]))
        self.optimizer.load_state_dict(pick(state["optimizer"]))
        self.scheduler.load_state_dict(pick(state["scheduler"]))
        self.scaler.load_state_dict(pick(state["scaler"]))
        self.step = int(state["step"])
        data = state["data"]
        if data["layout"] == self._layout():
            self.stream_seed, self.stream_origin = int(data["stream_seed"]), int(data["stream_origin"])
            set_rng_state(state["rng"][rank])
        else:
            # Another process/worker/batch layout cannot replay the data order: continue on a fresh one.
            self.stream_seed, self.stream_origin = self.config.seed + 104729 * self.step, self.step
            seed_everything(self.stream_seed + 7919 * (rank + 1))
            if self.info.is_main:
                print(f"note: {path} was written with (processes, workers, batch, accumulate) = {data['layout']}, "
                      f"this run uses {self._layout()}: the data order and RNGs are re-seeded", flush=True)
        return self.step

    # ---------------------------------------------------------------- training

    def _wrap(self) -> nn.Module:
        if self.info.world_size == 1 or self.method.parallel == "independent":
            return self.module
        if self.method.parallel == "allreduce":
            distributed.broadcast_parameters(self.module)
            return self.module
        ids = [self.info.device.index] if self.info.device.type == "cuda" else None
        return DistributedDataParallel(self.module, device_ids=ids,
                                       find_unused_parameters=self.method.find_unused_parameters)

    def _batches(self) -> Iterator[Any]:
        """The endless batch iterator, positioned after the batches the run already consumed."""
        c = self.config
        datasets = self.method.train_datasets(c, self.info.rank, self.info.world_size)
        stream = MixtureStream(datasets, self.method.train_transform, weights=c.weights, rank=self.info.rank,
                               seed=self.stream_seed, batch_size=c.batch_size)
        stream.start_at((self.step - self.stream_origin) * c.accumulate)
        self.samples_per_epoch = stream.samples_per_epoch()
        loader = torch.utils.data.DataLoader(stream, batch_size=c.batch_size, num_workers=c.workers,
                                             collate_fn=self.method.collate, persistent_workers=False,
                                             generator=torch.Generator().manual_seed(c.seed))
        return iter(loader)

    def _epoch(self) -> float:
        c = self.config
        return self.step * c.accumulate * c.batch_size / max(1, self.samples_per_epoch)

    def _micro_step(self, batch: Any, micro: int) -> dict[str, Tensor]:
        c = self.config
        ctx = StepContext(step=self.step, micro_step=micro, total_steps=c.steps, rank=self.info.rank,
                          world_size=self.info.world_size, device=self.info.device, module=self.module, config=c)
        last = micro == c.accumulate - 1
        no_sync = isinstance(self.model, DistributedDataParallel) and not last
        with self.model.no_sync() if no_sync else contextlib.nullcontext():
            with _autocast(c, self.info.device):
                losses = self.method.training_step(self.model, batch, ctx)
            if "loss" not in losses:
                raise TrainingError(f"method {self.method.name!r}: training_step returned {sorted(losses)}, "
                                    f"without the 'loss' key")
            self.scaler.scale(losses["loss"] / c.accumulate).backward()
        return {k: v.detach().float() for k, v in losses.items()}

    def _train_step(self, batches: Iterator[Any]) -> dict[str, Tensor]:
        """One optimizer step over ``accumulate`` micro-batches; returns the loss terms averaged over them."""
        c = self.config
        sums: dict[str, Tensor] = {}
        for micro in range(c.accumulate):
            for name, value in self._micro_step(_to_device(next(batches), self.info.device), micro).items():
                sums[name] = sums.get(name, 0.0) + value / c.accumulate
        self._optimizer_step()
        self.step += 1
        return sums

    def _optimizer_step(self) -> None:
        if self.method.parallel == "allreduce":
            distributed.average_gradients(self.module)
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.module.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    def _sync(self) -> None:
        if self.info.device.type == "cuda":
            torch.cuda.synchronize()

    def _log(self, window: dict[str, Tensor], steps: int) -> dict[str, float]:
        """Log the loss terms of the last ``steps`` steps, averaged over them and over the ranks ("loss" first)."""
        self._sync()
        means = {k: float(v) / steps for k, v in sorted(window.items(), key=lambda kv: kv[0] != "loss")}
        logged = distributed.mean_over_ranks(means, self.info.device)
        logged.update(lr=self.scheduler.get_last_lr()[0], epoch=self._epoch())
        self.logger.train(self.step, logged)
        return logged

    def _evaluate(self) -> ResultRecord:
        record = run_validation(self.method, self.module, self.config, self.step, self.info.device)
        self.logger.eval(self.step, self.config.protocol, record.metrics)
        return record

    def run(self) -> TrainResult:
        """Train to ``config.steps`` (from wherever the run stands), evaluate, checkpoint and report."""
        c = self.config
        batches = self._batches()
        window: dict[str, Tensor] = {}
        window_steps, logged, record = 0, {}, None
        timed_steps, timed_s = 0, 0.0
        checkpoint = c.out_path / CHECKPOINTS / checkpoint_name(self.step)
        while self.step < c.steps:
            start = time.perf_counter()
            for name, value in self._train_step(batches).items():
                window[name] = window.get(name, 0.0) + value
            window_steps += 1
            if self.step % c.log_every == 0 or self.step == c.steps:
                logged, window, window_steps = self._log(window, window_steps), {}, 0
            self.logger.step_done()
            self._sync()
            if self.step > (self.resumed_from or 0) + 1:  # the first step of a process warms up
                timed_steps += 1
                timed_s += time.perf_counter() - start
            if c.eval_shards and ((c.eval_every and self.step % c.eval_every == 0) or self.step == c.steps):
                record = self._evaluate()
            if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                checkpoint = self._save()
        del batches
        if c.eval_shards and record is None:  # resumed at the last step
            record = self._evaluate()
        self.logger.close()
        samples = timed_steps * c.batch_size * c.accumulate * self.info.world_size
        result = TrainResult(out=str(c.out_path), method=self.method.name, steps=self.step,
                             world_size=self.info.world_size, checkpoint=str(checkpoint), resumed_from=self.resumed_from,
                             losses=logged, metrics=record.metrics if record is not None else {},
                             record=str(record.path) if record is not None and record.path else None,
                             samples_per_s=samples / timed_s if timed_s else float("nan"))
        if self.info.is_main:
            (c.out_path / SUMMARY).write_text(json.dumps(asdict(result), indent=1))
        return result


def train(config: TrainConfig) -> TrainResult:
    """Run this process's part of the training run ``config`` (see the module docstring).

    The process group (if this call joined it) and torch's CPU thread count are restored at the end.
    """
    owns_group = not (dist.is_available() and dist.is_initialized())
    threads = torch.get_num_threads()
    info = distributed.init_distributed(config.device)
    try:
        if info.is_main:
            config.out_path.mkdir(parents=True, exist_ok=True)
            (config.out_path / "train_config.json").write_text(config.to_json())
        return _Run(config, info).run()
    finally:
        torch.set_num_threads(threads)
        if owns_group:
            distributed.shutdown()
