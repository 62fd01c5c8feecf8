"""Training throughput of the shared harness with the reference HMR regressor.

CPU: samples/s with 1 and 2 processes (one torch thread each, gloo DDP) and the scaling ratio.
CUDA (when present): mean step time without and with mixed precision (bf16, fp16).

    python benchmarks/bench_training.py [--steps 60] [--batch-size 32] [--frames 64]

Throughput is measured by the harness after each process's first step (``summary.json``), so
process start-up, data synthesis and evaluation are not counted. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from humanbench.conversion import write_shards
from humanbench.synthetic.world import SyntheticWorld, WorldConfig
from humanbench.training import TrainConfig, run_training


def synthesize(out: Path, frames: int) -> Path:
    """``frames`` one-frame synthetic sequences of 128 x 128 pixels."""
    config = WorldConfig(sequences=frames, frames=1, width=128, height=128, seed=7)
    write_shards(SyntheticWorld(config).samples, out, total=config.total, dataset=config.dataset, split=config.split,
                 source_fingerprint="bench", max_count=32, progress=False)
    return out


def run(shards: Path, out: Path, nproc: int, steps: int, batch_size: int, device: str, amp: str = "none") -> float:
    """Training samples per second (all processes) of one run."""
    config = TrainConfig(method="hmr", shards=[str(shards)], out=str(out), steps=steps, batch_size=batch_size,
                         threads=1 if device == "cpu" else None, device=device, amp=amp, checkpoint_every=steps,
                         log_every=steps, resume=False, progress=False)
    return run_training(config, nproc=nproc).samples_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=64, help="synthetic training frames")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        shards = synthesize(root / "shards", args.frames)
        print(f"synthesized {args.frames} frames in {time.perf_counter() - start:.1f} s")
        cpu = {n: run(shards, root / f"cpu{n}", n, args.steps, args.batch_size, "cpu") for n in (1, 2)}
        for n, rate in cpu.items():
            print(f"cpu, {n} process(es) x 1 thread, batch {args.batch_size}/process: {rate:.1f} samples/s")
        print(f"scaling 1 -> 2 processes: {cpu[2] / cpu[1]:.2f}x (ideal 2.00x)")
        if torch.cuda.is_available():
            for amp in ("none", "bf16", "fp16"):
                rate = run(shards, root / f"cuda-{amp}", 1, args.steps, args.batch_size, "cuda", amp)
                print(f"cuda ({torch.cuda.get_device_name()}), amp={amp}: {1000 * args.batch_size / rate:.2f} ms/step, "
                      f"{rate:.0f} samples/s")


if __name__ == "__main__":
    main()
