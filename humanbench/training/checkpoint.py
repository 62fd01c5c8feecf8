"""Checkpoints: atomic files, a ``latest`` pointer, pruning, and the RNG states of a process.

A checkpoint is one file ``step-<step>.pt`` in the run's ``checkpoints/`` folder, written by
rank 0 into a temporary name, flushed to disk and renamed, so a killed run leaves either the
complete file or none. ``latest`` (a one-line text file, replaced the same way) names the
newest complete checkpoint; without it the highest step found is used. Files load with
``torch.load(weights_only=True)``: they hold tensors, numbers, strings, lists and dicts only.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from humanbench.training.config import TrainingError

FORMAT_VERSION = 1
LATEST = "latest"
_NAME = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_name(step: int) -> str:
    """File name of the checkpoint after ``step`` optimizer steps."""
    return f"step-{step:08d}.pt"


def rng_state() -> dict[str, Any]:
    """This process's torch (CPU and CUDA), numpy and python RNG states, as weights-only-loadable values."""
    np_state = np.random.get_state(legacy=False)
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)), "pos": np_state["state"]["pos"],
                  "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"]},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937", "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"],
                         "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]}})
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))


def _replace_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _steps(directory: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in directory.glob("step-*.pt") if (m := _NAME.match(p.name)))


def save_checkpoint(directory: str | Path, step: int, state: dict[str, Any], *, keep: int) -> Path:
    """Write ``state`` as the checkpoint of ``step`` atomically, point ``latest`` at it, keep the newest ``keep``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / checkpoint_name(step)
    _replace_atomically(path, lambda f: torch.save({"format_version": FORMAT_VERSION, **state}, f))
    _replace_atomically(directory / LATEST, lambda f: f.write(f"{path.name}\n".encode()))
    for old in _steps(directory)[:-keep]:
        if old != step:
            (directory / checkpoint_name(old)).unlink(missing_ok=True)
    return path


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete checkpoint in ``directory`` (``latest`` first, else the highest step), or None."""
    directory = Path(directory)
    pointer = directory / LATEST
    if pointer.is_file():
        named = directory / pointer.read_text().strip()
        if named.is_file():
            return named
    steps = _steps(directory)
    return directory / checkpoint_name(steps[-1]) if steps else None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; refuses other files with a clear message."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable files
        raise TrainingError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise TrainingError(f"{path}: not a humanbench checkpoint of format {FORMAT_VERSION}")
    return state
