"""Drive a sample source into a shard folder: encode, write, show progress, resume.

Every dataset converter (and the synthetic world) ends here, so resumability and the manifest
are the same for all of them.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from tqdm import tqdm

from humanbench import __version__
from humanbench.schema import SCHEMA_VERSION, Sample, encode_sample
from humanbench.shards import Manifest, ShardWriter

SampleSource = Callable[[int], Iterator[Sample | dict[str, Any]]]
"""``source(start)`` yields the samples of a conversion in key order, skipping the first ``start``;
a sample may come already encoded (:func:`~humanbench.schema.encode_sample`, e.g. by a worker)."""


def current_command() -> str:
    """The command line of this process, for the manifest's provenance."""
    return shlex.join(["humanbench" if Path(sys.argv[0]).name == "humanbench" else Path(sys.argv[0]).name, *sys.argv[1:]])


def write_shards(source: SampleSource, out: str | Path, *, total: int, dataset: str, split: str,
                 source_fingerprint: str, max_count: int = 1000, max_bytes: int = 256 * 2**20,
                 extra: dict[str, Any] | None = None, progress: bool = True, command: str | None = None,
                 finalize: Callable[[], dict[str, Any]] | None = None) -> Manifest:
    """Encode and write every sample of ``source`` to ``out``; resumes a killed run where it stopped.

    ``total`` is the expected number of samples (for the progress bar); the manifest records the
    real count. ``finalize()``, called after the last sample, returns manifest fields known only at
    the end (``dropped``, stats for ``extra``). Returns the written :class:`~humanbench.shards.Manifest`.
    """
    fields = {
        "schema_version": SCHEMA_VERSION, "dataset": dataset, "split": split,
        "source_fingerprint": source_fingerprint, "humanbench_version": __version__,
        "command": command if command is not None else current_command(),
        "dropped": [], "extra": dict(extra or {}),
    }
    with ShardWriter(out, max_count=max_count, max_bytes=max_bytes, manifest_fields=fields) as writer:
        start = writer.resume_count
        bar = tqdm(total=total, initial=start, desc=f"{dataset}/{split}", unit="sample", disable=not progress,
                   dynamic_ncols=True)
        with bar:
            for sample in source(start):
                writer.write(sample if isinstance(sample, dict) else encode_sample(sample))
                bar.update(1)
        if finalize is not None:
            writer.manifest_fields.update(finalize())
    return Manifest.load(out)
