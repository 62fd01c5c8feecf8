"""The Python API: one function per ``humanbench`` command, returning the objects the CLI prints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from humanbench.bodymodels import ModelReport, format_report, inspect_body_model_folder
from humanbench.demo import DemoResult, run_demo
from humanbench.inspection import InspectReport, inspect_shards
from humanbench.records import ResultRecord
from humanbench.shards import Manifest, VerifyReport, verify_shards

if TYPE_CHECKING:
    from humanbench.training import TrainConfig, TrainResult


def convert(dataset: str, root: str | Path, out: str | Path, *, split: str, workers: int = 1, skip_bad: bool = False,
            body_models: str | Path | None = None, max_count: int = 1000, progress: bool = True) -> Manifest:
    """Convert raw dataset ``dataset`` at ``root`` into shards under ``out``; see :func:`humanbench.convert.convert`."""
    from humanbench.convert import convert as run_convert

    return run_convert(dataset, root, out, split=split, workers=workers, skip_bad=skip_bad, body_models=body_models,
                       max_count=max_count, progress=progress)


def evaluate(protocol: str, shards: str | Path, pred: str | Path, *, out: str | Path | None = "results",
             method: str | None = None, body_models: str | Path | None = None, device: str | None = None,
             batch_size: int = 64, progress: bool = True) -> ResultRecord:
    """Evaluate predictions on GT shards under ``protocol``; writes the record to ``out`` (None: don't write)."""
    from humanbench.evaluation import evaluate as run_evaluate

    return run_evaluate(protocol, shards, pred, out=out, method=method, body_models=body_models, device=device,
                        batch_size=batch_size, progress=progress)


def evaluate_renders(protocol: str, shards: str | Path, renders: str | Path, *, out: str | Path | None = "results",
                     method: str | None = None, body_models: str | Path | None = None, device: str | None = None,
                     batch_size: int | None = None, progress: bool = True) -> ResultRecord:
    """Score rendered images (``<sample key>.png``/``.jpg`` in ``renders``) against GT shards under avatar protocol
    ``protocol`` (``humanbench eval --renders``); writes the record to ``out`` (None: don't write). See
    :func:`humanbench.render_evaluation.evaluate_renders`; :func:`humanbench.render_evaluation.format_render_record`
    gives the summary the CLI prints. ``batch_size``: images per batch (None: 8)."""
    from humanbench.render_evaluation import DEFAULT_BATCH_SIZE, evaluate_renders as run_evaluate_renders

    return run_evaluate_renders(protocol, shards, renders, out=out, method=method, body_models=body_models,
                                device=device, batch_size=batch_size or DEFAULT_BATCH_SIZE, progress=progress)


def train(config: TrainConfig, *, nproc: int = 1) -> TrainResult:
    """Train ``config.method`` with the shared harness in ``nproc`` local processes; see :mod:`humanbench.training`."""
    from humanbench.training.launch import run_training

    return run_training(config, nproc)


def export_wild(shards: str | Path, out: str | Path, *, variant: str = "humannerf", person: int = 0) -> list:
    """HumanNeRF / MonoHuman input folders from shards; see :func:`humanbench.wild_export.export_wild`."""
    from humanbench.wild_export import export_wild as run_export

    return run_export(shards, out, variant=variant, person=person)


def format_record(record: ResultRecord) -> str:
    """The summary ``humanbench eval`` prints: protocol, metrics with the protocol's decimals, counts, paths."""
    decimals = {m["name"]: m["decimals"] for m in record.protocol["metrics"]}
    units = {m["name"]: m["unit"] for m in record.protocol["metrics"]}
    lines = [f"{record.method} under {record.protocol_id} v{record.protocol['version']}"
             + (" [synthetic]" if record.synthetic else "")]
    lines += [f"  {name}: {value:.{decimals[name]}f} {units[name]} ({record.counts[name]} people)"
              for name, value in record.metrics.items()]
    if record.path is not None:
        lines.append(f"  record: {record.path} (+ {record.path.with_suffix('.parquet').name})")
    return "\n".join(lines)


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


def leaderboard(results: list[str | Path], *, protocol: str | None = None, published: bool = False,
                fmt: str = "md", template: str | None = None) -> str:
    """One table per protocol from the records under ``results``; see :func:`humanbench.leaderboards.leaderboard`."""
    from humanbench.leaderboards import leaderboard as render

    return render(results, protocol=protocol, published=published, fmt=fmt, template=template)


def plot(kind: str, records: list[str | Path], *, out: str | Path = ".", metric: str | None = None,
         steps: list[int] | None = None) -> list[Path]:
    """Draw ``kind`` from result records as PNG and PDF into ``out``; see :func:`humanbench.leaderboards.plots.plot`."""
    from humanbench.leaderboards.plots import plot as draw

    return draw(kind, records, out=out, metric=metric, steps=steps)
