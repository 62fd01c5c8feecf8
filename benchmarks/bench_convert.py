"""Benchmark ``humanbench convert`` on a generated miniature dataset: frames/s and peak memory, 1 vs 2 workers.

Datasets: ``3dpw`` (>= 5,000 frames by default), ``zju-mocap`` (one subject, all 23 cameras) and
``wild`` (one HumanNeRF-layout clip). The generators render only a few distinct frames and repeat
them, so generating is cheap; what is measured is the conversion. Each conversion runs in a fresh
Python process, timed from the call to ``convert`` to its return (body-model loading and worker
start-up included, interpreter start and imports not).

Memory is the peak PSS (proportional set size: shared pages such as libtorch split between the
processes sharing them) summed over the converting process and all its descendants, sampled every
50 ms from ``/proc/<pid>/smaps_rollup`` by this (separate) process. ``ru_maxrss`` is not used: on
Linux a child started by fork + exec inherits its parent's RSS high-water mark, so it would
charge every worker with its parent's memory. Linux only. Usage::

    python benchmarks/bench_convert.py 3dpw --frames 512      # 10 sequences x 512 frames
    python benchmarks/bench_convert.py zju-mocap --frames 30  # 30 frames x 23 cameras
    python benchmarks/bench_convert.py wild --frames 600
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE_SECONDS = 0.05
SPLITS = {"3dpw": "test", "zju-mocap": "all", "wild": "all"}


def generate(dataset: str, root: Path, frames: int, rendered: int, sequences: int) -> None:
    """Write the miniature raw dataset under ``root``."""
    if dataset == "3dpw":
        from humanbench.synthetic.raw.pw3d import SPLIT_SEQUENCES, write_miniature_3dpw

        names = SPLIT_SEQUENCES["test"][:sequences]
        write_miniature_3dpw(root, sequences={name: 1 + i % 2 for i, name in enumerate(names)}, frames=frames,
                             rendered_frames=rendered)
    elif dataset == "zju-mocap":
        from humanbench.synthetic.raw.zju_mocap import write_miniature_zju

        write_miniature_zju(root, ("CoreView_377",), frames=frames)
    else:
        from humanbench.synthetic.raw.wild import CLIP_LAYOUTS, write_miniature_wild

        write_miniature_wild(root, frames=frames, rendered_frames=rendered,
                             clips={"HumanNeRF": CLIP_LAYOUTS["HumanNeRF"]})


def measure(dataset: str, root: str, out: str, workers: int) -> None:
    """Child-process entry: convert, then print the seconds and the sample count as JSON."""
    from humanbench.convert import convert

    start = time.perf_counter()
    manifest = convert(dataset, root, out, split=SPLITS[dataset], workers=workers, progress=False, command="bench")
    print(json.dumps({"seconds": time.perf_counter() - start, "samples": manifest.total_count}))


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live process below it (from ``/proc/<pid>/task/*/children``)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in children.read_text().split()]
            except OSError:  # the thread or process ended meanwhile
                continue
    return found


def pss_kib(pid: int) -> int:
    """Proportional set size of one process in KiB (0 once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in lines if line.startswith("Pss:")), 0)


def run(dataset: str, root: Path, out: Path, workers: int) -> dict[str, float]:
    """Convert in a fresh interpreter while sampling its process tree; returns its figures and ``peak_kib``."""
    child = subprocess.Popen([sys.executable, __file__, dataset, "--measure", str(root), str(out), str(workers)],
                             stdout=subprocess.PIPE, text=True)
    peak = 0
    while child.poll() is None:
        peak = max(peak, sum(map(pss_kib, process_tree(child.pid))))
        time.sleep(SAMPLE_SECONDS)
    stdout = child.stdout.read()
    if child.returncode:
        raise SystemExit(f"conversion with {workers} worker(s) failed with status {child.returncode}")
    return {**json.loads(stdout.splitlines()[-1]), "peak_kib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(SPLITS), help="which miniature to generate and convert")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames per sequence (default: 3dpw 512, zju-mocap 30, wild 600)")
    parser.add_argument("--sequences", type=int, default=10, help="3dpw: test-split sequences (at most 24)")
    parser.add_argument("--rendered", type=int, default=2, help="distinct rendered frames (3dpw, wild)")
    parser.add_argument("--measure", nargs=3, metavar=("ROOT", "OUT", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.dataset, args.measure[0], args.measure[1], int(args.measure[2]))
        return
    frames = args.frames or {"3dpw": 512, "zju-mocap": 30, "wild": 600}[args.dataset]
    with tempfile.TemporaryDirectory(prefix=f"bench-{args.dataset}-") as tmp:
        start = time.perf_counter()
        generate(args.dataset, Path(tmp) / "raw", frames, args.rendered, args.sequences)
        print(f"generated the {args.dataset} miniature in {time.perf_counter() - start:.1f} s")
        rates = {}
        for workers in (1, 2):
            fig = run(args.dataset, Path(tmp) / "raw", Path(tmp) / f"out{workers}", workers)
            rates[workers] = fig["samples"] / fig["seconds"]
            print(f"workers={workers}: {fig['samples']} samples in {fig['seconds']:.1f} s = {rates[workers]:.0f} "
                  f"samples/s; peak PSS of the process tree {fig['peak_kib'] / 1024:.0f} MiB")
        print(f"speed-up 2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
