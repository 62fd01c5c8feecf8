"""A full 3dpw/spin evaluation at the real test-set size: time and peak memory, vs a per-person loop.

Writes 35,515 single-person 3DPW-test samples (random plausible SMPL parameters, gendered, with a
tiny placeholder image: evaluation never decodes images), predictions = GT plus noise, then times
``humanbench.evaluation.evaluate("3dpw/spin", ...)`` end to end (shard streaming, body-model forward
passes for GT and predictions, H36M regression, Procrustes, record). The straightforward baseline
evaluates people one at a time (one body-model forward each) on a subset and is extrapolated.

    python benchmarks/bench_eval_3dpw.py [--samples 35515] [--baseline-samples 300] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import io
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from humanbench.bodymodels import load_body_model, load_index_sets
from humanbench.conversion import write_shards
from humanbench.evaluation import evaluate
from humanbench.metrics.hmr import H36M_TO_J14
from humanbench.predictions import Predictions, save_predictions
from humanbench.schema import Camera, Sample

GENDERS = ("male", "female")


def placeholder_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buf, format="JPEG")
    return buf.getvalue()


def ground_truth(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"betas": rng.normal(scale=0.8, size=(count, 10)), "global_orient": rng.normal(scale=0.5, size=(count, 3)),
            "body_pose": rng.normal(scale=0.25, size=(count, 69)), "genders": rng.integers(0, 2, count)}


def write_gt_shards(out: Path, gt: dict[str, np.ndarray]) -> Path:
    image = placeholder_jpeg()
    K = np.array([[1960.0, 0, 540], [0, 1960, 960], [0, 0, 1]])

    def source(start: int):
        for i in range(start, len(gt["betas"])):
            people = {"betas": gt["betas"][i:i + 1], "global_orient": gt["global_orient"][i:i + 1],
                      "body_pose": gt["body_pose"][i:i + 1], "transl": np.array([[0.0, 0.0, 4.0]]),
                      "valid": np.ones(1, bool), "kid": np.zeros(1, bool)}
            yield Sample(key=f"seq-{i:06d}", dataset="3dpw", split="test", image=image, image_format="jpg", width=8,
                         height=8, camera=Camera(K=K), body_model="smpl", coords="camera", people=people,
                         genders=[GENDERS[gt["genders"][i]]], person_ids=["0"], synthetic=True,
                         flags={"campose_valid": np.ones(1, bool)})

    write_shards(source, out, total=len(gt["betas"]), dataset="3dpw", split="test", source_fingerprint="bench",
                 max_count=5000, progress=False, command="bench")
    return out


def loop_baseline(gt: dict[str, np.ndarray], pred: Predictions, count: int) -> float:
    """Seconds per person of a straightforward evaluation: one body-model forward per person and side."""
    regressor = torch.as_tensor(load_index_sets().J_regressor_h36m)
    models = {g: load_body_model("smpl", g, dtype=torch.float64) for g in (*GENDERS, "neutral")}
    start = time.perf_counter()
    for i in range(count):
        def joints(gender: str, betas, orient, pose) -> np.ndarray:
            with torch.no_grad():
                verts = models[gender](betas=torch.as_tensor(betas[None]), global_orient=torch.as_tensor(orient[None]),
                                       body_pose=torch.as_tensor(pose[None])).vertices[0]
            h36m = (regressor @ verts).numpy()
            return h36m[H36M_TO_J14] - h36m[0]

        g = joints(GENDERS[gt["genders"][i]], gt["betas"][i], gt["global_orient"][i], gt["body_pose"][i])
        p = joints("neutral", pred.betas[i], pred.global_orient[i], pred.body_pose[i])
        np.sqrt(((p - g) ** 2).sum(1)).mean()
        x, y = p - p.mean(0), g - g.mean(0)
        u, _, vt = np.linalg.svd(x.T @ y)
        rot = vt.T @ np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T
        scale = np.trace(rot @ x.T @ y) / (x ** 2).sum()
        np.sqrt(((scale * x @ rot.T + g.mean(0) - g) ** 2).sum(1)).mean()
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=35515)
    parser.add_argument("--baseline-samples", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(2)
    gt = ground_truth(args.samples)
    rng = np.random.default_rng(1)
    pred = Predictions(keys=np.array([f"seq-{i:06d}" for i in range(args.samples)]), person=np.zeros(args.samples, np.int64),
                       body_model="smpl", betas=gt["betas"] + rng.normal(scale=0.1, size=gt["betas"].shape),
                       global_orient=gt["global_orient"] + rng.normal(scale=0.05, size=(args.samples, 3)),
                       body_pose=gt["body_pose"] + rng.normal(scale=0.05, size=(args.samples, 69)))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        shards = write_gt_shards(tmp / "shards", gt)
        save_predictions(pred, tmp / "pred.npz")
        print(f"wrote {args.samples} GT samples + predictions in {time.perf_counter() - started:.1f} s")
        load_body_model("smpl", "male"), load_index_sets()  # warm the synthetic-model cache (not timed)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        record = evaluate("3dpw/spin", shards, tmp / "pred.npz", batch_size=args.batch_size, progress=False)
        elapsed = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    per_person = loop_baseline(gt, pred, args.baseline_samples)
    print(f"3dpw/spin over {record.counts['people']} people: {elapsed:.1f} s ({record.counts['people'] / elapsed:.0f} people/s), "
          f"MPJPE {record.metrics['mpjpe']:.2f} mm, PA-MPJPE {record.metrics['pa_mpjpe']:.2f} mm")
    print(f"peak RSS of this process: {rss_after / 1024:.0f} MiB (before the evaluation: {rss_before / 1024:.0f} MiB)")
    print(f"per-person loop baseline: {per_person * 1000:.2f} ms/person -> {per_person * args.samples:.0f} s extrapolated "
          f"for {args.samples} people; batched evaluation is {per_person * args.samples / elapsed:.1f}x faster")


if __name__ == "__main__":
    main()
