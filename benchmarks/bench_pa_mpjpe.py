"""Time batched PA-MPJPE (:func:`humanbench.metrics.mesh.pa_mpjpe`) at 3DPW scale.

35,515 samples x 14 joints (the SPIN 3DPW test set size, ``protocols.md`` §1.1). GT =
a 14-joint standing skeleton (H36M J14 order, ~1.7 m tall) with per-joint pose noise,
random subject scale and random global orientation; pred = GT rotated by a random
~15 degree rotation, rescaled by 0.9-1.1, shifted and noised by ~4 cm per coordinate.
The batched torch metric (float64 and float32, CPU; CUDA when present) is compared
with a straightforward per-sample numpy loop (SPIN-style Procrustes per sample), in the
same run; the maximum absolute difference between the results is printed in mm.
CPU torch uses one thread by default, like the loop; CUDA timings exclude host-device copies.

Run: ``python benchmarks/bench_pa_mpjpe.py [--samples N] [--repeats R] [--threads T]``. Prints
timings only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from humanbench.metrics.mesh import pa_mpjpe

_SKELETON_J14 = np.array(
    [
        (-0.10, -0.90, 0.00),  # right ankle
        (-0.10, -0.48, 0.02),  # right knee
        (-0.10, 0.00, 0.00),  # right hip
        (0.10, 0.00, 0.00),  # left hip
        (0.10, -0.48, 0.02),  # left knee
        (0.10, -0.90, 0.00),  # left ankle
        (-0.26, 0.02, 0.08),  # right wrist
        (-0.22, 0.26, 0.00),  # right elbow
        (-0.18, 0.52, 0.00),  # right shoulder
        (0.18, 0.52, 0.00),  # left shoulder
        (0.22, 0.26, 0.00),  # left elbow
        (0.26, 0.02, 0.08),  # left wrist
        (0.00, 0.56, 0.00),  # neck
        (0.00, 0.76, 0.04),  # head
    ]
)
"""Standing skeleton in metres, pelvis at the origin, y up."""


def make_joints(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Realistic random (pred, gt) joint pairs, float64 (samples, 14, 3)."""
    gen = np.random.default_rng(seed)
    pose = _SKELETON_J14 + gen.normal(scale=0.08, size=(samples, 14, 3))
    pose *= gen.uniform(0.85, 1.15, size=(samples, 1, 1))
    gt = pose @ Rotation.random(samples, random_state=seed).as_matrix().transpose(0, 2, 1)
    tilt = Rotation.from_rotvec(gen.normal(scale=np.radians(15.0) / np.sqrt(3), size=(samples, 3)))
    pred = gen.uniform(0.9, 1.1, size=(samples, 1, 1)) * gt @ tilt.as_matrix().transpose(0, 2, 1)
    pred += gen.normal(scale=0.05, size=(samples, 1, 3)) + gen.normal(scale=0.04, size=pred.shape)
    return pred, gt


def numpy_pa_mpjpe_loop(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-sample numpy Procrustes (SPIN formulas, column vectors) and mean joint error."""
    errors = np.empty(len(pred))
    for i in range(len(pred)):
        x1, x2 = pred[i].T, gt[i].T
        mu1, mu2 = x1.mean(axis=1, keepdims=True), x2.mean(axis=1, keepdims=True)
        c1, c2 = x1 - mu1, x2 - mu2
        k = c1 @ c2.T
        u, _, vt = np.linalg.svd(k)
        z = np.eye(3)
        z[2, 2] = np.sign(np.linalg.det(u @ vt))
        r = vt.T @ z @ u.T
        s = np.trace(r @ k) / np.sum(c1**2)
        aligned = s * r @ x1 + (mu2 - s * r @ mu1)
        errors[i] = np.linalg.norm(aligned - x2, axis=0).mean()
    return errors


def best_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> tuple[float, object]:
    """Best wall time over ``repeats`` runs (after one warm-up run) and the last result."""
    result = fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=35_515)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per torch variant (best is printed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = like the numpy loop)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pred, gt = make_joints(args.samples, args.seed)
    print(f"PA-MPJPE, {args.samples} samples x 14 joints, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    start = time.perf_counter()
    reference = numpy_pa_mpjpe_loop(pred, gt) * 1000
    loop_s = time.perf_counter() - start
    print(f"  numpy per-sample loop  {loop_s:8.4f} s  {args.samples / loop_s:12,.0f} samples/s  mean {reference.mean():.3f} mm")

    variants = [("torch CPU float64", "cpu", torch.float64), ("torch CPU float32", "cpu", torch.float32)]
    if torch.cuda.is_available():
        variants += [("torch CUDA float64", "cuda", torch.float64), ("torch CUDA float32", "cuda", torch.float32)]
    for name, device, dtype in variants:
        p = torch.from_numpy(pred).to(device, dtype)
        g = torch.from_numpy(gt).to(device, dtype)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        seconds, errors = best_time(lambda: pa_mpjpe(p, g), args.repeats, sync)
        diff = np.abs(errors.double().cpu().numpy() * 1000 - reference).max()
        print(
            f"  {name:<22} {seconds:8.4f} s  {args.samples / seconds:12,.0f} samples/s  "
            f"{loop_s / seconds:7.1f}x the loop  max |diff| vs loop {diff:.2e} mm"
        )


if __name__ == "__main__":
    main()
