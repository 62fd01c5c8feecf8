"""What a run reports while it trains: CSV files, TensorBoard events (when installed) and a progress bar.

Only rank 0 writes. ``train.csv`` has one row per logged step (``step`` first, then the values in
the order of the first row); ``eval.csv`` one row per evaluation (``step``, ``protocol``,
metrics). A resumed run first drops the rows written after the checkpoint it resumes from, so
the files read as if the run had never stopped; TensorBoard is told the same (``purge_step``).
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

from tqdm import tqdm

TRAIN_CSV = "train.csv"
EVAL_CSV = "eval.csv"


def _truncate(path: Path, after_step: int) -> list[str] | None:
    """Drop the rows of ``path`` whose step is beyond ``after_step``; returns its header (None if absent)."""
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return None
    header, body = rows[0], [r for r in rows[1:] if r and int(r[0]) <= after_step]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *body])
    return header


class _CsvLog:
    """Append-only CSV whose header is fixed by the first row (or by the existing file)."""

    def __init__(self, path: Path, after_step: int) -> None:
        self.path = path
        self.header = _truncate(path, after_step)

    def write(self, row: dict[str, Any]) -> None:
        new = self.header is None
        if new:
            self.header = list(row)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, self.header, restval="", extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


class RunLogger:
    """Rank 0's logs of one run; on other ranks (``enabled=False``) every call does nothing."""

    def __init__(self, out: Path, *, enabled: bool, start_step: int, total_steps: int, progress: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.tensorboard = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        self.train_csv = _CsvLog(out / TRAIN_CSV, start_step)
        self.eval_csv = _CsvLog(out / EVAL_CSV, start_step)
        if importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(out / "tensorboard"), purge_step=start_step or None)
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", disable=not progress,
                        dynamic_ncols=True)

    def step_done(self) -> None:
        """One more optimizer step finished."""
        if self.bar is not None:
            self.bar.update(1)

    def train(self, step: int, values: dict[str, float]) -> None:
        """Log training values (loss terms, lr, epoch) after ``step`` optimizer steps."""
        if not self.enabled:
            return
        self.train_csv.write({"step": step, **values})
        if self.tensorboard is not None:
            for name, value in values.items():
                self.tensorboard.add_scalar(f"train/{name}", value, step)
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k in ("loss", "lr")}, refresh=False)

    def eval(self, step: int, protocol: str, metrics: dict[str, float]) -> None:
        """Log the metrics of an evaluation after ``step`` optimizer steps."""
        if not self.enabled:
            return
        self.eval_csv.write({"step": step, "protocol": protocol, **metrics})
        if self.tensorboard is not None:
            for name, value in metrics.items():
                self.tensorboard.add_scalar(f"eval/{protocol}/{name}", value, step)
        self.message(f"step {step}: {protocol} " + ", ".join(f"{k} {v:.1f}" for k, v in metrics.items()))

    def message(self, text: str) -> None:
        """A line of text above the progress bar."""
        if self.enabled:
            tqdm.write(text)

    def close(self) -> None:
        """Flush and close the files and the bar."""
        if self.bar is not None:
            self.bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
