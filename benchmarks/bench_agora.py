"""Time the official AGORA protocol (:mod:`humanbench.metrics.agora`) on an AGORA-validation-sized set.

Synthetic SMPL-X-sized data (10475 vertices, 127 joints per person, float32 like
SMPL-X forward passes) for ~1,000 images of ~5 people in 3840x2160 pixels: people
at 6-25 m, 10 % invalid (occlusion > 90 %), 10 % kids, most people detected with a
few centimetres of error, some misses, some false positives, a few images without
any prediction. Synthetic vertex index sets with the official sizes (4010 body,
2 x 778 MANO, 5023 FLAME).

It is evaluated twice: by humanbench (matrix cost/IoU per image, errors of all
matched people in vectorised batches, array aggregation) and by a straightforward
per-person loop written below in the official code's style (pairs from
``itertools.product``, repeated ``argmin``, per-pair IoU, per-person error calls,
list appends, the same rounding). Both summaries must be identical.

Run: ``python benchmarks/bench_agora.py [--images 1000] [--repeats 1] [--seed 0]``.
Prints timings only; nothing about speed is asserted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from itertools import product

import numpy as np

from humanbench.metrics.agora import AgoraImage, VertexSets, evaluate_images
from humanbench.metrics.agora_matching import match_greedy, matching_validity
from humanbench.metrics.agora_aggregate import (
    OCCLUSION_BIN_EDGES,
    ORIENTATION_BIN_EDGES,
    SMPLX_PARTS,
    AgoraSummary,
    aggregate,
    error_bins,
)

N_VERTS, N_JOINTS = 10475, 127
FOCAL, CX, CY = 3000.0, 1920.0, 1080.0


# --------------------------------------------------------------------------- synthetic data


def template(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A person-shaped point cloud: (127, 3) joints and (10475, 3) vertices in a 0.5 x 1.7 x 0.3 m box, y down."""
    scale = np.array([0.25, 0.85, 0.15])
    return (rng.uniform(-1, 1, (N_JOINTS, 3)) * scale).astype(np.float32), \
        (rng.uniform(-1, 1, (N_VERTS, 3)) * scale).astype(np.float32)


def project(points: np.ndarray) -> np.ndarray:
    """Pinhole projection to 4K pixels. (N, K, 3) -> (N, K, 2)."""
    return FOCAL * points[..., :2] / points[..., 2:] + np.array([CX, CY], dtype=np.float32)


def people(rng: np.random.Generator, joints0: np.ndarray, verts0: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n people: the template deformed per point (3 cm) and placed at x in [-4, 4], z in [6, 25] m."""
    place = np.stack([rng.uniform(-4, 4, n), rng.uniform(-0.3, 0.3, n), rng.uniform(6, 25, n)], 1)[:, None]
    place = place.astype(np.float32)
    joints = joints0 + place + 0.03 * rng.standard_normal((n, N_JOINTS, 3), dtype=np.float32)
    verts = verts0 + place + 0.03 * rng.standard_normal((n, N_VERTS, 3), dtype=np.float32)
    return joints, verts


def synthetic_image(rng: np.random.Generator, joints0: np.ndarray, verts0: np.ndarray) -> AgoraImage:
    """One image: 1-9 GT people (mean ~5) and their noisy detections, in shuffled order, plus FPs."""
    g = int(np.clip(rng.poisson(5), 1, 9))
    gt_joints, gt_verts = people(rng, joints0, verts0, g)
    occlusion = rng.uniform(0, 100, g)
    is_valid = occlusion <= 90
    detect = rng.random(g) < np.where(is_valid, 0.85, 0.3)
    if rng.random() < 0.03:
        detect[:] = False
    offset = (0.05 * rng.standard_normal((g, 1, 3))).astype(np.float32)
    n_det = int(detect.sum())
    noise_j, noise_v = (0.02 * rng.standard_normal((n_det, n, 3), dtype=np.float32) for n in (N_JOINTS, N_VERTS))
    pred_joints = gt_joints[detect] + offset[detect] + noise_j
    pred_verts = gt_verts[detect] + offset[detect] + noise_v
    if detect.any() and rng.random() < 0.2:
        fp_joints, fp_verts = people(rng, joints0, verts0, 1)
        pred_joints, pred_verts = np.concatenate([pred_joints, fp_joints]), np.concatenate([pred_verts, fp_verts])
    order = rng.permutation(len(pred_joints))
    return AgoraImage(
        gt_joints2d=project(gt_joints), gt_joints3d=gt_joints, gt_verts=gt_verts, is_valid=is_valid,
        occlusion=occlusion, kid=rng.random(g) < 0.1, orientation=rng.uniform(0, 360, g),
        pred_joints2d=project(pred_joints[order]), pred_joints3d=pred_joints[order], pred_verts=pred_verts[order],
    )


def synthetic_set(n_images: int, seed: int) -> tuple[list[AgoraImage], VertexSets]:
    """The image list and synthetic vertex sets of the official sizes, sorted like the released ``body_verts_*.npy``."""
    rng = np.random.default_rng(seed)
    joints0, verts0 = template(rng)
    sets = VertexSets(*(np.sort(rng.choice(N_VERTS, n, replace=False)) for n in (4010, 778, 778, 5023)))
    return [synthetic_image(rng, joints0, verts0) for _ in range(n_images)], sets


# --------------------------------------------------------------------------- per-person loop reference


def loop_iou(p: np.ndarray, g: np.ndarray) -> float:
    """IoU of the boxes of all joints of one pred and one GT, +1 pixel convention, scalar maths."""
    px1, py1 = (float(v) for v in p[:, :2].astype(np.float64).min(0))
    px2, py2 = (float(v) for v in p[:, :2].astype(np.float64).max(0))
    gx1, gy1 = (float(v) for v in g[:, :2].astype(np.float64).min(0))
    gx2, gy2 = (float(v) for v in g[:, :2].astype(np.float64).max(0))
    inter = max(0.0, min(px2, gx2) - max(px1, gx1) + 1) * max(0.0, min(py2, gy2) - max(py1, gy1) + 1)
    return inter / ((px2 - px1 + 1) * (py2 - py1 + 1) + (gx2 - gx1 + 1) * (gy2 - gy1 + 1) - inter)


def loop_match(pred2d: np.ndarray, gt2d: np.ndarray, valid: np.ndarray) -> tuple[list[tuple[int, int]], int]:
    """Official-style greedy matching of one image. Returns (accepted pairs, number of FPs)."""
    combs = list(product(range(len(pred2d)), range(len(gt2d))))
    errors = np.array([np.linalg.norm(pred2d[p][:24, :2] - gt2d[g][:24, :2], 2) for p, g in combs])
    pred_taken, gt_taken = np.zeros(len(pred2d), bool), np.zeros(len(gt2d), bool)
    pairs: list[tuple[int, int]] = []
    fp_events = 0
    while gt_taken.sum() < len(gt2d) and pred_taken.sum() + fp_events < len(pred2d):
        while True:
            k = int(np.argmin(errors))
            p, g = combs[k]
            errors[k] = np.inf
            iou = loop_iou(pred2d[p], gt2d[g])
            if not pred_taken[p] and not gt_taken[g] and iou >= 0.1:
                false_positive = False
                break
            if iou < 0.1:
                false_positive = True
                fp_events += 1
                break
        if valid[g] and not false_positive:
            pairs.append((p, g))
            pred_taken[p] = gt_taken[g] = True
        elif not valid[g]:
            gt_taken[g] = True
    return pairs, len(pred2d) - len(pairs)


def loop_part(gt: np.ndarray, pred: np.ndarray, gt_root: np.ndarray, pred_root: np.ndarray) -> float:
    """One person's root-aligned mean error, official operation order."""
    aligned_gt, aligned_pred = gt - np.expand_dims(gt_root, 0), pred - np.expand_dims(pred_root, 0)
    return np.mean(np.sqrt(np.sum((aligned_gt - aligned_pred) ** 2, axis=1)))


def loop_person(pj: np.ndarray, pv: np.ndarray, gj: np.ndarray, gv: np.ndarray, sets: VertexSets) -> dict[str, float]:
    """One matched person's eight part errors (metres)."""
    out = {}
    g_pel, p_pel = (gj[1, :] + gj[2, :]) / 2.0, (pj[1, :] + pj[2, :]) / 2.0
    out["body-MPJPE"] = loop_part(gj[:22], pj[:22], g_pel, p_pel)
    out["body-MVE"] = loop_part(gv[sets.body], pv[sets.body], g_pel, p_pel)
    for name, root, lo, hi, ids in (("lhand", 20, 25, 40, sets.left_hand), ("rhand", 21, 40, 55, sets.right_hand),
                                    ("face", 12, 76, 127, sets.face)):
        g_set = np.concatenate([gj[root].reshape(1, 3), gj[lo:hi]])
        p_set = np.concatenate([pj[root].reshape(1, 3), pj[lo:hi]])
        out[f"{name}-MPJPE"] = loop_part(g_set, p_set, g_set[0], p_set[0])
        out[f"{name}-MVE"] = loop_part(gv[ids], pv[ids], g_set[0], p_set[0])
    return out


def loop_evaluate(images: list[AgoraImage], sets: VertexSets) -> dict:
    """The whole protocol, person by person, lists and Python scalars like the official code."""
    count = misses = kid_count = kid_misses = 0
    fps = 0
    body = {k: [] for k in ("body-MPJPE", "body-MVE")}
    kid_body = {k: [] for k in body}
    hands = {k: [] for k in SMPLX_PARTS[2:]}
    kid_hands = {k: [] for k in hands}
    rows = []  # occlusion, orientation, body MPJPE mm, body MVE mm, miss
    for im in images:
        valid = (im.occlusion <= 90) & (im.occlusion >= 0) & im.is_valid
        pairs, n_fp = loop_match(im.pred_joints2d, im.gt_joints2d, valid)
        by_gt = {g: p for p, g in pairs}
        has_pred = len(im.pred_joints2d) > 0
        fps += n_fp if has_pred else 0
        for g in range(len(im.gt_joints2d)):
            if not im.is_valid[g]:
                continue
            kid = bool(im.kid[g])
            count += 1
            kid_count += kid
            if g in by_gt:
                p = by_gt[g]
                err = loop_person(im.pred_joints3d[p], im.pred_verts[p], im.gt_joints3d[g], im.gt_verts[g], sets)
            else:
                misses += 1
                kid_misses += kid
                err = {k: 0 for k in SMPLX_PARTS}
            for k in body:
                if g in by_gt:
                    body[k].append(1e3 * np.float64(err[k]))
                    if kid:
                        kid_body[k].append(1e3 * np.float64(err[k]))
            if has_pred:
                for k in hands:
                    hands[k].append(1e3 * np.float64(err[k]))
                    if kid:
                        kid_hands[k].append(1e3 * np.float64(err[k]))
            rows.append((im.occlusion[g], im.orientation[g], 1e3 * np.float64(err["body-MPJPE"]),
                         1e3 * np.float64(err["body-MVE"]), g not in by_gt))

    def prf1(n: int, miss: int) -> tuple[float, float, float]:
        tp = n - miss
        return (round(tp / (tp + fps), 2) if tp + fps else float("nan"), round(tp / (tp + miss), 2),
                round(tp / (tp + 0.5 * (fps + miss)), 2))

    def mean(values: list) -> float:
        return float(np.round(np.mean(np.array(values)), 1)) if values else float("nan")

    precision, recall, f1 = prf1(count, misses)
    kid_p, kid_r, kid_f1 = prf1(kid_count, kid_misses)
    m = {"precision": precision, "recall": recall, "f1": f1,
         "kid_precision": kid_p, "kid_recall": kid_r, "kid_f1": kid_f1}
    for kind, norm in (("MPJPE", "NMJE"), ("MVE", "NMVE")):
        m[f"body-{kind}"], m[f"kid-body-{kind}"] = mean(body[f"body-{kind}"]), mean(kid_body[f"body-{kind}"])
        m[f"body-{norm}"] = float(np.round(np.float64(m[f"body-{kind}"]) / f1, 1))
        m[f"kid-body-{norm}"] = float(np.round(np.float64(m[f"kid-body-{kind}"]) / kid_f1, 1))
    for prefix, lists in (("", hands), ("kid-", kid_hands)):
        for k in hands:
            m[prefix + k] = mean(lists[k])
        for kind in ("MPJPE", "MVE"):
            m[f"{prefix}fullbody-{kind}"] = float(np.round(
                np.float64(m[f"{prefix}body-{kind}"]) + (1 / 3) * m[f"{prefix}lhand-{kind}"]
                + (1 / 3) * m[f"{prefix}rhand-{kind}"] + (1 / 3) * m[f"{prefix}face-{kind}"], 1))
        for kind, norm in (("MPJPE", "NMJE"), ("MVE", "NMVE")):
            m[f"{prefix}fullbody-{norm}"] = float(np.round(np.float64(m[f"{prefix}fullbody-{kind}"]) / f1, 1))
    table = np.array(rows, dtype=np.float64)
    miss = table[:, 4].astype(bool)
    return {"counts": (count, count - misses, fps, misses, kid_count, kid_count - kid_misses, kid_misses),
            "metrics": m,
            "occ": error_bins(table[:, 0], table[:, 2], table[:, 3], miss, OCCLUSION_BIN_EDGES),
            "ori": error_bins(table[:, 1], table[:, 2], table[:, 3], miss, ORIENTATION_BIN_EDGES)}


# --------------------------------------------------------------------------- comparison and timing


def same_summary(ours: AgoraSummary, ref: dict) -> bool:
    """Counts, every metric (NaN == NaN) and both bin tables identical."""
    counts = (ours.count, ours.tp, ours.fp, ours.fn, ours.kid_count, ours.kid_tp, ours.kid_fn)
    metrics_equal = list(ours.metrics) == list(ref["metrics"]) and all(
        a == b or (np.isnan(a) and np.isnan(b)) for a, b in zip(ours.metrics.values(), ref["metrics"].values()))
    return counts == ref["counts"] and metrics_equal and ours.occlusion_bins.equals(ref["occ"]) \
        and ours.orientation_bins.equals(ref["ori"])


def best_seconds(run: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Best wall and best CPU (process) time of ``repeats`` calls, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def main() -> None:
    """Build the set, time both implementations, compare their summaries."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    images, sets = synthetic_set(args.images, args.seed)
    n_gt = sum(len(im.gt_joints2d) for im in images)
    n_pred = sum(len(im.pred_joints2d) for im in images)
    print(f"{len(images)} images, {n_gt} GT people, {n_pred} predictions, SMPL-X arrays float32 "
          f"({time.perf_counter() - start:.1f} s to build); best of {args.repeats}")

    t_match, c_match, _ = best_seconds(lambda: [match_greedy(im.pred_joints2d, im.gt_joints2d,
                                                             matching_validity(im.is_valid, im.occlusion))
                                                for im in images], args.repeats)
    t_ours, c_ours, ours = best_seconds(lambda: aggregate(evaluate_images(images, sets)), args.repeats)
    t_loop, c_loop, ref = best_seconds(lambda: loop_evaluate(images, sets), args.repeats)
    t_loop_match, c_loop_match, _ = best_seconds(
        lambda: [loop_match(im.pred_joints2d, im.gt_joints2d, (im.occlusion <= 90) & (im.occlusion >= 0) & im.is_valid)
                 for im in images], args.repeats)
    print(f"humanbench : {t_ours:6.2f} s wall ({c_ours:5.2f} s CPU)  {n_gt / t_ours:6.0f} people/s  "
          f"matching {t_match:.2f} s ({c_match:.2f} s CPU)")
    print(f"person loop: {t_loop:6.2f} s wall ({c_loop:5.2f} s CPU)  {n_gt / t_loop:6.0f} people/s  "
          f"matching {t_loop_match:.2f} s ({c_loop_match:.2f} s CPU)")
    print(f"speed-up x{t_loop / t_ours:.1f} overall (CPU x{c_loop / c_ours:.1f}), "
          f"x{t_loop_match / t_match:.1f} matching (CPU x{c_loop_match / c_match:.1f})")
    print(f"identical summaries: {same_summary(ours, ref)}  (matched {ours.tp}, FP {ours.fp}, misses {ours.fn})")
    m = ours.metrics
    print(f"F1 {m['f1']}  P {m['precision']}  R {m['recall']}  FB-MVE {m['fullbody-MVE']}  NMVE {m['fullbody-NMVE']}  "
          f"B-MVE {m['body-MVE']}  kid F1 {m['kid_f1']}")


if __name__ == "__main__":
    main()
