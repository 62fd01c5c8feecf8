"""Benchmark the shard layer against a pure JPEG-decoding bound.

Generates ``--n`` distinct natural-looking JPEGs (smooth random colour
fields with texture and grain, 256x256, quality 90) plus a small json and
npz per sample, then measures in one run:

* shard write samples/s (``ShardWriter``, samples already encoded in memory);
* shard read + JPEG decode samples/s (``iter_encoded``);
* loose-file read + JPEG decode samples/s (one ``.jpg`` file per sample);
* JPEG decode of the same bytes already in memory (the bound).

Reads are from the page cache (one warm-up round).  The read paths are timed
sample by sample, interleaved (each path advances one sample in turn), and
each figure sums every sample's best time over ``--repeats`` rounds, so load
from other processes hits all paths alike and bursts of it are filtered out.
All decoding uses PIL.  Usage::

    python benchmarks/bench_shards.py --n 2000
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from humanbench.shards.reader import iter_encoded
from humanbench.shards.writer import ShardWriter

MANIFEST_FIELDS = {
    "dataset": "bench",
    "split": "test",
    "schema_version": 1,
    "source_fingerprint": "synthetic",
    "command": "benchmarks/bench_shards.py",
}


def natural_image(rng: np.random.Generator, size: int) -> Image.Image:
    """Smooth random colour fields plus finer texture and grain (~22 KiB at q90, like a photo crop)."""
    coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
    detail = Image.fromarray(rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)).resize(
        (size, size), Image.BICUBIC
    )
    mixed = 0.7 * np.asarray(coarse, np.float32) + 0.3 * np.asarray(detail, np.float32)
    mixed += rng.normal(0.0, 5.0, mixed.shape)
    return Image.fromarray(np.clip(mixed, 0, 255).astype(np.uint8))


def make_samples(n: int, size: int, quality: int) -> list[dict[str, object]]:
    """Encoded samples: ``jpg`` + ``json`` + ``npz`` per key."""
    samples = []
    for i in range(n):
        rng = np.random.default_rng(i)
        jpg = io.BytesIO()
        natural_image(rng, size).save(jpg, "JPEG", quality=quality)
        npz = io.BytesIO()
        np.savez(npz, pose=rng.normal(size=72).astype(np.float32), betas=rng.normal(size=10).astype(np.float32))
        meta = {"index": i, "subject": f"s{i % 17:02d}", "bbox": [0, 0, size, size]}
        samples.append({"__key__": f"{i:08d}", "jpg": jpg.getvalue(), "json": json.dumps(meta).encode(),
                        "npz": npz.getvalue()})
    return samples


def decode_jpeg(data: bytes) -> np.ndarray:
    """The one decoder used by every path."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def best_rates(n: int, runs: dict[str, Callable[[], Iterator[object]]], repeats: int) -> dict[str, float]:
    """Samples/s of each run, timed sample by sample with the runs interleaved.

    Each round advances every run by one sample in turn, so background load
    hits all runs alike; each sample's time is its best over ``repeats``
    rounds (after a warm-up round), and a run's rate is ``n`` over the sum.
    """
    best = {name: [float("inf")] * n for name in runs}
    for round_ in range(repeats + 1):
        iterators = {name: make() for name, make in runs.items()}
        for i in range(n):
            for name, iterator in iterators.items():
                start = time.perf_counter()
                next(iterator)
                elapsed = time.perf_counter() - start
                if round_ and elapsed < best[name][i]:
                    best[name][i] = elapsed
        if any(next(iterator, None) is not None for iterator in iterators.values()):
            raise RuntimeError(f"a run yielded more than {n} samples")
    return {name: n / sum(times) for name, times in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="number of samples")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    parser.add_argument("--max-count", type=int, default=500, help="samples per shard")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (best per sample is kept)")
    parser.add_argument("--workdir", type=Path, help="where to write (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        samples = make_samples(args.n, args.size, args.quality)
        jpegs = [s["jpg"] for s in samples]
        mib = sum(len(v) for s in samples for k, v in s.items() if k != "__key__") / 2**20
        print(f"{args.n} samples, {args.size}x{args.size} JPEG q{args.quality}, "
              f"{mib:.1f} MiB encoded ({mib * 2**20 / args.n / 1024:.1f} KiB/sample)")

        start = time.perf_counter()
        with ShardWriter(work / "shards", max_count=args.max_count, manifest_fields=MANIFEST_FIELDS) as writer:
            for sample in samples:
                writer.write(sample)
        write_rate = args.n / (time.perf_counter() - start)

        loose = work / "loose"
        loose.mkdir()
        paths = [loose / f"{s['__key__']}.jpg" for s in samples]
        for path, data in zip(paths, jpegs):
            path.write_bytes(data)

        shards = work / "shards"
        rates = best_rates(args.n, {
            "bound": lambda: map(decode_jpeg, jpegs),
            "shard_only": lambda: iter_encoded(shards),
            "shard": lambda: (decode_jpeg(s["jpg"]) for s in iter_encoded(shards)),
            "files": lambda: (decode_jpeg(p.read_bytes()) for p in paths),
        }, args.repeats)

    bound, shard, files = rates["bound"], rates["shard"], rates["files"]
    print(f"shard write                  {write_rate:10.0f} samples/s  "
          f"({write_rate * mib / args.n:.0f} MiB/s, fsync per shard)")
    print(f"shard read only              {rates['shard_only']:10.0f} samples/s")
    print(f"shard read + JPEG decode     {shard:10.0f} samples/s")
    print(f"loose files + JPEG decode    {files:10.0f} samples/s")
    print(f"JPEG decode from memory      {bound:10.0f} samples/s  (bound)")
    print(f"ratio shard / bound          {shard / bound:10.3f}  (target >= 0.9)")
    print(f"ratio loose / bound          {files / bound:10.3f}")


if __name__ == "__main__":
    main()
