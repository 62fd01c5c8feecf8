"""An endless, seeded training stream drawn from several shard datasets with sampling weights.

Each draw picks a component dataset with probability proportional to its weight and takes that
component's next sample. A component reads its rank/worker share of the shards with the
seeded training shuffle of :class:`~humanbench.shards.ShardDataset` and starts its next epoch
when the share is used up, so every rank always has another batch (equal step counts on all
ranks) and small datasets are simply revisited more often (SMPLer-X's "balance" mixture is
equal weights).

Everything is a function of the seed, the rank, the DataLoader worker and the position in the
stream: the component choice (one RNG per rank/worker), the shard order (the reader's
``(seed, epoch)`` plans) and the ``rng`` handed to the transform (seeded by the draw index). A
DataLoader with W workers takes batch ``i`` from worker ``i % W``, starting again at worker 0 in a
new loader; after :meth:`MixtureStream.start_at` (``c`` consumed batches), worker ``w`` of the new
loader therefore plays the part of worker ``(w + c) % W`` of the old one and skips the samples
that part already delivered, without decoding them: the new loader yields exactly the batches
that followed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch.utils.data

from humanbench.schema import Sample
from humanbench.shards import ShardDataset, iter_encoded
from humanbench.shards.reader import EncodedSample
from humanbench.training.config import TrainingError

Transform = Callable[[Sample, np.random.Generator], Any]


def batches_before(consumed: int, worker: int, workers: int) -> int:
    """Batches worker ``worker`` of ``workers`` produced when a loader has yielded ``consumed`` batches (round-robin)."""
    return max(0, (consumed + workers - 1 - worker) // workers)


def _endless(dataset: ShardDataset, worker: int, workers: int, name: str) -> Iterator[EncodedSample]:
    """This rank/worker's encoded samples of ``dataset``, epoch after epoch."""
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        empty = True
        for encoded in iter_encoded(dataset.manifest, rank=dataset.rank, world_size=dataset.world_size,
                                    worker=worker, num_workers=workers, shuffle=dataset.shuffle, seed=dataset.seed,
                                    epoch=epoch, buffer_size=dataset.buffer_size):
            empty = False
            yield encoded
        if empty:
            raise TrainingError(f"{name}: rank {dataset.rank} worker {worker} gets no samples ({dataset.manifest.total_count} "
                                f"samples for {dataset.world_size} rank(s) x {workers} worker(s)); use fewer workers")
        epoch += 1


class MixtureStream(torch.utils.data.IterableDataset):
    """Endless stream of ``transform(sample, rng)`` items drawn from ``datasets`` with ``weights``.

    Args:
        datasets: one :class:`ShardDataset` per component (each already split by rank).
        transform: decoded sample and a per-item RNG -> training item.
        weights: sampling weight per component (default: the components' per-rank sizes).
        rank: this process's rank (seeds the component choice).
        seed: run seed.
        batch_size: items per batch, for :meth:`start_at`.
    """

    def __init__(self, datasets: Sequence[ShardDataset], transform: Transform, *, weights: Sequence[float] | None = None,
                 rank: int = 0, seed: int = 0, batch_size: int = 1) -> None:
        super().__init__()
        if not datasets:
            raise TrainingError("a mixture needs at least one dataset")
        self.datasets = list(datasets)
        self.weights = [float(w) for w in (weights if weights is not None else [len(d) for d in datasets])]
        if len(self.weights) != len(self.datasets) or sum(self.weights) <= 0:
            raise TrainingError(f"mixture weights {self.weights} do not fit {len(self.datasets)} dataset(s)")
        self.transform = transform
        self.rank = rank
        self.seed = seed
        self.batch_size = batch_size
        self.consumed_batches = 0

    def start_at(self, consumed_batches: int) -> None:
        """Make the next iteration continue after ``consumed_batches`` batches of a fresh one."""
        self.consumed_batches = consumed_batches

    def samples_per_epoch(self) -> int:
        """This rank's samples in one pass over every component (for epoch bookkeeping)."""
        return sum(len(d) for d in self.datasets)

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        workers = info.num_workers if info is not None else 1
        worker = ((info.id if info is not None else 0) + self.consumed_batches) % workers
        chooser = random.Random(f"humanbench-mixture:{self.seed}:{self.rank}:{worker}")
        streams = [_endless(d, worker, workers, str(d.manifest.root)) for d in self.datasets]
        components = range(len(streams))
        skip = batches_before(self.consumed_batches, worker, workers) * self.batch_size
        draw = 0
        while True:
            index = chooser.choices(components, self.weights)[0]
            encoded = next(streams[index])
            if draw >= skip:
                rng = np.random.default_rng([self.seed, self.rank, worker, draw])
                yield self.transform(self.datasets[index].decode(encoded), rng)
            draw += 1
