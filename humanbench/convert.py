"""``humanbench convert``: run a dataset converter over its units, in parallel, into resumable shards.

Units go to a process pool (``workers`` > 1), are converted and encoded there, and come back in
order, so the shards are identical whatever the number of workers. Finished units are journalled in ``_units.jsonl`` (sample count
and drops) next to the shard journal; a re-run skips every unit whose samples are already safely
in finished shards and re-collects their drops from the journal, so the manifest of a resumed run
equals that of an uninterrupted one. With ``skip_bad`` a unit that raises
:class:`~loaders.base.ConversionError` is listed in the manifest's ``dropped`` and the run goes on;
without it the run stops with the error and leaves no manifest (nothing looks complete).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from humanbench.conversion import write_shards
from humanbench.loaders import CONVERTERS
from humanbench.loaders.base import ConversionError, Converter, Unit
from humanbench.schema import encode_sample
from humanbench.shards import Manifest, fingerprint_files

UNIT_JOURNAL = "_units.jsonl"
EncodedSample = dict[str, Any]


def get_converter(name: str, root: str | Path, split: str, *, body_models: str | Path | None = None) -> Converter:
    """The converter registered as ``name`` for ``root``/``split``."""
    if name not in CONVERTERS:
        raise ConversionError(f"unknown dataset {name!r}; humanbench converts {sorted(CONVERTERS)}")
    return CONVERTERS[name](root, split, body_models=body_models)


@dataclass(frozen=True)
class _Job:
    """Convert and encode one unit (in a worker process when ``workers`` > 1)."""

    converter: Converter
    skip_bad: bool

    def __call__(self, unit: Unit) -> tuple[list[EncodedSample], list[dict[str, str]]]:
        try:
            result = self.converter.convert_unit(unit)
        except ConversionError as err:
            if not self.skip_bad:
                raise
            return [], [{"item": unit.describe(), "reason": str(err)}]
        return [encode_sample(sample) for sample in result.samples], result.dropped


def _read_unit_journal(path: Path) -> list[dict]:
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill: the journal ends before it
            break
    return entries


class _UnitSource:
    """The ``source(start)`` for :func:`write_shards`: skips journalled units, runs the rest, records drops."""

    def __init__(self, converter: Converter, units: list[Unit], journal: Path, workers: int, skip_bad: bool) -> None:
        self.converter, self.units, self.journal = converter, units, journal
        self.workers, self.skip_bad = workers, skip_bad
        self.dropped: list[dict[str, str]] = []

    def __call__(self, start: int) -> Iterator:
        done = 0
        entries = _read_unit_journal(self.journal)
        first = 0
        for entry in entries:  # whole units already in finished shards
            if first >= len(self.units) or done + entry["count"] > start:
                break
            done += entry["count"]
            self.dropped.extend(entry["dropped"])
            first += 1
        self.journal.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries[:first]))
        skip = start - done  # samples of the first remaining unit that are already written
        with self.journal.open("a") as journal:
            for samples, dropped in self._results(self.units[first:]):
                journal.write(json.dumps({"count": len(samples), "dropped": dropped}, sort_keys=True) + "\n")
                journal.flush()
                self.dropped.extend(dropped)
                yield from samples[skip:]
                skip = 0

    def _results(self, units: list[Unit]) -> Iterator[tuple[list[EncodedSample], list[dict[str, str]]]]:
        job = _Job(self.converter, self.skip_bad)
        if self.workers <= 1:
            yield from map(job, units)
            return
        context = multiprocessing.get_context("spawn")
        with context.Pool(self.workers) as pool:
            yield from pool.imap(job, units)


def convert(name: str, root: str | Path, out: str | Path, *, split: str, workers: int = 1, skip_bad: bool = False,
            body_models: str | Path | None = None, max_count: int = 1000, progress: bool = True,
            command: str | None = None) -> Manifest:
    """Convert raw dataset ``name`` at ``root`` (split ``split``) into shards under ``out``; returns the manifest."""
    converter = get_converter(name, root, split, body_models=body_models)
    units = converter.units()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = _UnitSource(converter, units, out / UNIT_JOURNAL, max(1, workers), skip_bad)
    manifest = write_shards(
        source, out, total=sum(max(u.stop - u.start, 1) for u in units), dataset=name, split=split,
        source_fingerprint=fingerprint_files(converter.source_files(), root=converter.root), max_count=max_count,
        progress=progress, command=command, finalize=lambda: {"dropped": source.dropped},
    )
    os.remove(out / UNIT_JOURNAL)
    return manifest
