"""Start the processes of a run on this machine (``humanbench train --nproc N``).

Each process is ``python -m humanbench.training --config <out>/train_config.json`` with the
environment ``torchrun`` would give it (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), so a run behaves the same whichever
started it. When one process fails the others are stopped and the failure is reported.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from humanbench.training.config import TrainConfig, TrainingError
from humanbench.training.harness import TrainResult, train

CONFIG_FILE = "train_config.json"


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(procs: list[subprocess.Popen]) -> tuple[int, int] | None:
    """Wait until every process succeeded (None) or one failed: (rank, exit status)."""
    while True:
        codes = [p.poll() for p in procs]
        failed = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            return failed[0]
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.1)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch(config: TrainConfig, nproc: int) -> TrainResult:
    """Run ``config`` in ``nproc`` local processes (one thread each by default on the CPU) and return rank 0's summary."""
    if "WORLD_SIZE" in os.environ:
        raise TrainingError("already inside a distributed run (WORLD_SIZE is set): start 'python -m humanbench.training' "
                            "under torchrun without --nproc")
    config.out_path.mkdir(parents=True, exist_ok=True)
    path = config.out_path / CONFIG_FILE
    path.write_text(config.to_json())
    threads = config.threads or max(1, (os.cpu_count() or 1) // nproc)
    base = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": str(nproc),
            "LOCAL_WORLD_SIZE": str(nproc), "OMP_NUM_THREADS": str(threads)}
    procs: list[subprocess.Popen] = []
    try:
        for rank in range(nproc):
            env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}
            procs.append(subprocess.Popen([sys.executable, "-m", "humanbench.training", "--config", str(path)], env=env))
        failed = _wait(procs)
    finally:
        _stop(procs)
    if failed is not None:
        raise TrainingError(f"process {failed[0]} of {nproc} exited with status {failed[1]} (its messages are above)")
    return TrainResult.read(config.out_path)


def run_training(config: TrainConfig, nproc: int = 1) -> TrainResult:
    """Train ``config`` in this process (``nproc == 1``) or in ``nproc`` local processes."""
    if nproc < 1:
        raise TrainingError(f"nproc must be >= 1, got {nproc}")
    return launch(config, nproc) if nproc > 1 else train(config)
