"""Read shard folders: exact-once evaluation slices, seeded training shuffle, torch glue.

Evaluation (``shuffle=False``): the global sample range ``[0, total)`` in key
order is cut into ``world_size * num_workers`` contiguous slices whose sizes
differ by at most one; slice ``rank * num_workers + worker`` belongs to that
rank/worker.  Every sample is read exactly once, with no padding.

Training (``shuffle=True``): the shard order is permuted from ``(seed,
epoch)`` (the same permutation on every rank); in that order each rank takes
a contiguous run of ``total // world_size`` samples (the last ``total %
world_size`` samples of the permuted order are dropped this epoch), split
between its workers as above.  Each worker visits its pieces of shards in an
order seeded from ``(seed, epoch, rank, worker)`` and passes the samples
through a shuffle buffer seeded the same way.
"""

from __future__ import annotations

import mmap
import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.utils.data

from humanbench.shards.manifest import Manifest
from humanbench.shards.tario import ShardError, iter_samples

EncodedSample = dict[str, Any]


class Segment(NamedTuple):
    """Samples ``[start, stop)`` (indices local to the shard) of shard number ``shard``."""

    shard: int
    start: int
    stop: int


def slice_bounds(total: int, parts: int, part: int) -> tuple[int, int]:
    """Bounds of contiguous slice ``part`` of ``[0, total)`` cut into ``parts`` near-equal slices."""
    return part * total // parts, (part + 1) * total // parts


def samples_per_rank(total: int, rank: int, world_size: int, shuffle: bool) -> int:
    """How many samples one rank reads per epoch (all its workers together)."""
    if shuffle:
        return total // world_size
    start, stop = slice_bounds(total, world_size, rank)
    return stop - start


def _segments(counts: Sequence[int], order: Iterable[int], start: int, stop: int) -> list[Segment]:
    """Pieces of shards covering positions ``[start, stop)`` of the shards concatenated in ``order``."""
    out = []
    offset = 0
    for shard in order:
        lo, hi = max(start - offset, 0), min(stop - offset, counts[shard])
        if lo < hi:
            out.append(Segment(shard, lo, hi))
        offset += counts[shard]
        if offset >= stop:
            break
    return out


def plan(
    manifest: Manifest,
    *,
    rank: int,
    world_size: int,
    worker: int,
    num_workers: int,
    shuffle: bool,
    seed: int,
    epoch: int,
) -> list[Segment]:
    """The shard pieces one rank/worker reads, in reading order (see the module docstring)."""
    counts = [s.count for s in manifest.shards]
    if not shuffle:
        start, stop = slice_bounds(manifest.total_count, world_size * num_workers, rank * num_workers + worker)
        return _segments(counts, range(len(counts)), start, stop)
    order = list(range(len(counts)))
    random.Random(f"humanbench-shards:{seed}:{epoch}").shuffle(order)
    per_rank = manifest.total_count // world_size
    lo, hi = slice_bounds(per_rank, num_workers, worker)
    segments = _segments(counts, order, rank * per_rank + lo, rank * per_rank + hi)
    _worker_rng(seed, epoch, rank, worker).shuffle(segments)
    return segments


def _worker_rng(seed: int, epoch: int, rank: int, worker: int) -> random.Random:
    return random.Random(f"humanbench-shards:{seed}:{epoch}:{rank}:{worker}")


def read_segment(path: str | os.PathLike, start: int, stop: int) -> Iterator[EncodedSample]:
    """Yield samples ``[start, stop)`` of one shard file (earlier members are skipped unread)."""
    shard = os.fspath(path)
    try:
        with open(shard, "rb") as f:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise ShardError(shard, None, "shard file is missing") from None
    except ValueError:
        raise ShardError(shard, None, "shard file is empty") from None
    try:
        if hasattr(buf, "madvise"):
            buf.madvise(mmap.MADV_SEQUENTIAL)
        yield from iter_samples(buf, shard, start, stop)
    finally:
        buf.close()


def _shuffled(samples: Iterable[EncodedSample], size: int, rng: random.Random) -> Iterator[EncodedSample]:
    buffer: list[EncodedSample] = []
    for sample in samples:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        i = rng.randrange(size)
        yield buffer[i]
        buffer[i] = sample
    rng.shuffle(buffer)
    yield from buffer


def _worker_slot(worker: int | None, num_workers: int | None) -> tuple[int, int]:
    if worker is None and num_workers is None:
        info = torch.utils.data.get_worker_info()
        return (info.id, info.num_workers) if info is not None else (0, 1)
    if worker is None or num_workers is None:
        raise ValueError("pass worker and num_workers together (or neither, to detect them)")
    return worker, num_workers


def iter_encoded(
    dir_or_manifest: str | os.PathLike | Manifest,
    *,
    rank: int = 0,
    world_size: int = 1,
    worker: int | None = None,
    num_workers: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    buffer_size: int = 1000,
) -> Iterator[EncodedSample]:
    """Iterate this rank/worker's encoded samples ``{"__key__": key, field: bytes}``.

    ``worker``/``num_workers`` default to the current DataLoader worker
    (``torch.utils.data.get_worker_info()``), or a single worker outside one.
    Raises :class:`ShardError` naming the shard and member on a missing,
    truncated or corrupted shard.
    """
    manifest = dir_or_manifest if isinstance(dir_or_manifest, Manifest) else Manifest.load(dir_or_manifest)
    worker, num_workers = _worker_slot(worker, num_workers)
    if not (0 <= rank < world_size and 0 <= worker < num_workers):
        raise ValueError(f"need 0 <= rank < world_size and 0 <= worker < num_workers, got "
                         f"rank={rank} world_size={world_size} worker={worker} num_workers={num_workers}")
    segments = plan(manifest, rank=rank, world_size=world_size, worker=worker, num_workers=num_workers,
                    shuffle=shuffle, seed=seed, epoch=epoch)
    samples = (s for seg in segments for s in read_segment(manifest.shard_path(seg.shard), seg.start, seg.stop))
    if shuffle and buffer_size > 1:
        return _shuffled(samples, buffer_size, _worker_rng(seed, epoch, rank, worker))
    return samples


def _dist_rank_world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardDataset(torch.utils.data.IterableDataset):
    """A shard folder as an ``IterableDataset`` of ``decode(encoded_sample)``.

    ``rank``/``world_size`` default to ``torch.distributed`` when it is
    initialised (else 0/1); DataLoader workers are detected automatically.
    ``len()`` is this rank's sample count per epoch.  Call ``set_epoch`` before
    each epoch; it reaches the workers because :func:`make_loader` does not
    keep workers alive between epochs.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        decode: Callable[[EncodedSample], Any],
        *,
        rank: int | None = None,
        world_size: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        buffer_size: int = 1000,
    ) -> None:
        super().__init__()
        self.manifest = Manifest.load(directory)
        self.decode = decode
        dist_rank, dist_world = _dist_rank_world()
        self.rank = dist_rank if rank is None else rank
        self.world_size = dist_world if world_size is None else world_size
        self.shuffle = shuffle
        self.seed = seed
        self.buffer_size = buffer_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that seeds the training shuffle."""
        self.epoch = epoch

    def __len__(self) -> int:
        return samples_per_rank(self.manifest.total_count, self.rank, self.world_size, self.shuffle)

    def __iter__(self) -> Iterator[Any]:
        samples = iter_encoded(self.manifest, rank=self.rank, world_size=self.world_size, shuffle=self.shuffle,
                               seed=self.seed, epoch=self.epoch, buffer_size=self.buffer_size)
        return map(self.decode, samples)


def _is_number(x: Any) -> bool:
    return isinstance(x, (bool, int, float, np.number, np.bool_))


def collate(batch: Sequence[Any]) -> Any:
    """Batch decoded samples.

    Dicts with equal keys are collated per key; numeric numpy arrays (or
    tensors) of one shape and dtype are stacked into a tensor, numbers become
    a 1-D tensor; anything else (strings, ragged shapes) stays a list.
    """
    if not batch:
        return []
    first = batch[0]
    if isinstance(first, Mapping):
        if all(isinstance(b, Mapping) and b.keys() == first.keys() for b in batch):
            return {k: collate([b[k] for b in batch]) for k in first}
    elif isinstance(first, np.ndarray):
        if first.dtype.kind in "biufc" and all(
            isinstance(b, np.ndarray) and b.shape == first.shape and b.dtype == first.dtype for b in batch
        ):
            return torch.from_numpy(np.stack(batch))
    elif isinstance(first, torch.Tensor):
        if all(isinstance(b, torch.Tensor) and b.shape == first.shape and b.dtype == first.dtype for b in batch):
            return torch.stack(list(batch))
    elif all(_is_number(b) for b in batch):
        return torch.from_numpy(np.asarray(batch))
    return list(batch)


def make_loader(
    dataset: ShardDataset,
    batch_size: int,
    num_workers: int = 0,
    collate_fn: Callable[[Sequence[Any]], Any] = collate,
) -> torch.utils.data.DataLoader:
    """A DataLoader over a :class:`ShardDataset` (workers restart each epoch so ``set_epoch`` applies)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_fn,
        persistent_workers=False,
    )
