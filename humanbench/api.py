"""The Python API: one function per ``humanbench`` command, returning the objects the CLI prints."""

from __future__ import annotations

from pathlib import Path

from humanbench.bodymodels import ModelReport, format_report, inspect_body_model_folder
from humanbench.demo import DemoResult, run_demo
from humanbench.inspection import InspectReport, inspect_shards
from humanbench.shards import Manifest, VerifyReport, verify_shards


def convert(dataset: str, root: str | Path, out: str | Path, *, split: str, workers: int = 1, skip_bad: bool = False,
            body_models: str | Path | None = None, max_count: int = 1000, progress: bool = True) -> Manifest:
    """Convert raw dataset ``dataset`` at ``root`` into shards under ``out``; see :func:`humanbench.convert.convert`."""
    from humanbench.convert import convert as run_convert

    return run_convert(dataset, root, out, split=split, workers=workers, skip_bad=skip_bad, body_models=body_models,
                       max_count=max_count, progress=progress)


def info(body_models: str | Path | None = None) -> list[ModelReport]:
    """Load every body model, kid template and index set found (or the synthetic ones) and report each."""
    return inspect_body_model_folder(body_models)


def format_info(reports: list[ModelReport]) -> str:
    """The table ``humanbench info`` prints."""
    return format_report(reports)


def inspect(shards: str | Path, *, contact_sheet: str | Path | None = None, num_images: int = 16,
            max_samples: int | None = None) -> InspectReport:
    """Counts, per-field statistics (a DataFrame) and a contact-sheet PNG of a shard folder."""
    return inspect_shards(shards, contact_sheet=contact_sheet, num_images=num_images, max_samples=max_samples)


def verify(shards: str | Path, *, deep: bool = True) -> VerifyReport:
    """Check a shard folder against its manifest; ``report.ok`` is False on any problem."""
    return verify_shards(shards, deep=deep)


def demo(out: str | Path = "humanbench-demo", *, body_models: str | Path | None = None, frames: int = 48,
         seed: int = 0, progress: bool = True) -> DemoResult:
    """Synthesize, write, verify and inspect a small dataset; see :func:`humanbench.demo.run_demo`."""
    return run_demo(out, body_models=body_models, frames=frames, seed=seed, progress=progress)
