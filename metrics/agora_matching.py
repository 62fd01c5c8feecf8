"""AGORA's official prediction-to-ground-truth matching, quirks included.

Reproduces ``match_2d_greedy`` of pixelite1201/agora_evaluation
(``agora_evaluation/matching.py``, snapshot 8c9dece; ``protocols.md`` §2.3).
It is *not* a Hungarian assignment:

1. every (pred, gt) pair gets one scalar cost from the first 24 2D joints;
2. pairs are visited in ascending cost and accepted greedily, gated by the IoU of
   the boxes spanned by *all* given joints (``+1`` pixel area convention,
   IoU >= 0.1);
3. a pair below the IoU gate counts as a "false positive event", and the loop
   stops once ``#accepted preds + #FP events >= #preds`` -- possibly before a
   valid, overlapping pair was ever looked at;
4. a pair landing on an invalid (heavily occluded) GT consumes that GT but not
   the prediction;
5. afterwards every pred outside an accepted pair is a false positive and every
   valid GT outside one is a miss.

Cost: the official ``l2_error`` is ``np.linalg.norm(d, 2)`` of the (24, 2)
difference matrix ``d``, and for a 2-D array ``ord=2`` is the **spectral norm**
(largest singular value), not the Frobenius norm that ``protocols.md`` §2.3 and the
official docs' wording suggest. The two rank pairs differently, so the spectral
norm is used here, through the same LAPACK routine, giving bit-identical costs.

IoU: computed in float64. The official code works in the joints' own dtype
(numpy scalars); for float64 inputs the two agree bit for bit, for float32 inputs
they can differ in the last float32 bit, which matters only for an IoU within
~1e-7 of the 0.1 gate.

Validity for matching (§2.2) is ``isValid & 0 <= occlusion <= 90`` per GT person;
:func:`matching_validity` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "IOU_THRESHOLD",
    "N_COST_JOINTS",
    "MatchResult",
    "greedy_assign",
    "joint_boxes",
    "box_iou_plus_one",
    "match_greedy",
    "matching_cost",
    "matching_validity",
]

N_COST_JOINTS = 24
"""Joints entering the matching cost (official ``nkps = 24``)."""

IOU_THRESHOLD = 0.1
"""Official ``iou_thresh``; a pair is accepted only when IoU >= this."""


@dataclass(frozen=True, eq=False)
class MatchResult:
    """Outcome of matching one image.

    Attributes:
        pairs: (M, 2) int64 accepted (pred, gt) pairs in acceptance order; every gt
            here is valid.
        false_positives: (F,) int64 sorted ids of preds in no accepted pair.
        misses: (K,) int64 sorted ids of valid GT people in no accepted pair.
        invalid_consumed: (I,) int64 sorted ids of invalid GT people the loop
            consumed (a pair on them was visited before the loop stopped); the other
            invalid GT people were never reached. Neither kind is a miss.
        fp_events: the loop's false-positive counter when it stopped.
    """

    pairs: np.ndarray
    false_positives: np.ndarray
    misses: np.ndarray
    invalid_consumed: np.ndarray
    fp_events: int


def matching_validity(is_valid: np.ndarray, occlusion: np.ndarray) -> np.ndarray:
    """GT people that take part in matching (official ``validDF``).

    Args:
        is_valid: (G,) bool, the GT dataframe's ``isValid``.
        occlusion: (G,) occluded fraction in percent.

    Returns:
        (G,) bool ``is_valid & (occlusion <= 90) & (occlusion >= 0)``.
    """
    occlusion = np.asarray(occlusion)
    return (occlusion <= 90) & (occlusion >= 0) & np.asarray(is_valid, dtype=bool)


def matching_cost(pred_joints2d: np.ndarray, gt_joints2d: np.ndarray, n_joints: int = N_COST_JOINTS) -> np.ndarray:
    """Official pair cost: spectral norm of the first ``n_joints`` 2D joint differences.

    ``np.linalg.norm`` with ``ord=2`` over the last two axes runs the same LAPACK SVD
    per (n_joints, 2) matrix as the official per-pair call, so costs are bit-identical.

    Args:
        pred_joints2d: (P, Jp, >=2) predicted 2D joints, Jp >= n_joints, 4K pixels.
        gt_joints2d: (G, Jg, >=2) GT 2D joints, Jg >= n_joints.
        n_joints: joints used (official 24).

    Returns:
        (P, G) float costs.
    """
    diff = pred_joints2d[:, None, :n_joints, :2] - gt_joints2d[None, :, :n_joints, :2]
    if diff.size == 0:
        return np.zeros(diff.shape[:2])
    return np.linalg.norm(diff, ord=2, axis=(-2, -1))


def joint_boxes(joints2d: np.ndarray) -> np.ndarray:
    """Axis-aligned boxes spanned by *all* joints of each person (official ``get_bbx_overlap``).

    Args:
        joints2d: (N, J, >=2) 2D joints.

    Returns:
        (N, 4) float64 ``[x1, y1, x2, y2]`` (min x, min y, max x, max y).
    """
    xy = np.asarray(joints2d, dtype=np.float64)[..., :2]
    return np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=-1)


def box_iou_plus_one(pred_boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """IoU of every (pred, gt) box pair with the official "+1 pixel" convention.

    Widths and heights are ``x2 - x1 + 1`` and ``y2 - y1 + 1``; the intersection's
    are clipped at 0 after adding 1; IoU = inter / ((area_pred + area_gt) - inter),
    the official operation order.

    Args:
        pred_boxes: (P, 4) ``[x1, y1, x2, y2]``.
        gt_boxes: (G, 4).

    Returns:
        (P, G) float64.
    """
    p = pred_boxes[:, None, :]
    g = gt_boxes[None, :, :]
    inter_w = np.maximum(0, np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]) + 1)
    inter_h = np.maximum(0, np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]) + 1)
    inter = inter_w * inter_h
    area_p = (p[..., 2] - p[..., 0] + 1) * (p[..., 3] - p[..., 1] + 1)
    area_g = (g[..., 2] - g[..., 0] + 1) * (g[..., 3] - g[..., 1] + 1)
    return inter / (area_p + area_g - inter)


def greedy_assign(
    cost: np.ndarray, iou: np.ndarray, gt_valid: np.ndarray, iou_threshold: float = IOU_THRESHOLD
) -> MatchResult:
    """The official greedy loop on precomputed (P, G) cost and IoU matrices.

    Which official behaviour each step reproduces:

    * visiting pairs in a *stable* ascending sort of the pred-major flattened costs
      equals the official repeated ``np.argmin`` over ``product(preds, gts)`` with
      visited pairs set to inf (first index wins ties);
    * the stop test before each visit is the official outer ``while``: stop when
      every GT is consumed or ``#accepted + fp_events >= P`` (the FP-event counter
      can end matching early -- quirk). Skipped pairs change no state, so testing
      before every visit equals testing once per outer iteration;
    * accept: pred free, GT not consumed, IoU >= threshold. A valid GT forms a pair
      and consumes both; an invalid GT is consumed alone (the pred stays free --
      quirk, so a pred that only overlaps an invalid person ends as an FP);
    * IoU < threshold: an FP event *whatever* the pred/GT state (the official test
      ``iou < iou_thresh`` sits in the else branch of the accept test), and an
      invalid GT is consumed even so (quirk);
    * otherwise (pred taken or GT consumed, IoU >= threshold): skip.

    Args:
        cost: (P, G) finite pair costs.
        iou: (P, G) box IoUs.
        gt_valid: (G,) bool matching validity.
        iou_threshold: the IoU gate.

    Returns:
        The :class:`MatchResult`.
    """
    n_pred, n_gt = cost.shape
    valid = np.asarray(gt_valid, dtype=bool).tolist()
    gated = (iou >= iou_threshold).ravel().tolist()
    pred_taken = [False] * n_pred
    gt_consumed = [False] * n_gt
    n_consumed = n_accepted = fp_events = 0
    pairs: list[tuple[int, int]] = []
    for flat in np.argsort(cost.ravel(), kind="stable").tolist():  # repeated argmin, first index on ties
        if n_consumed == n_gt or n_accepted + fp_events >= n_pred:  # outer while; FP events count (quirk)
            break
        p, g = divmod(flat, n_gt)  # pred-major, as product(predList, gtList)
        if gated[flat] and not pred_taken[p] and not gt_consumed[g]:  # "found"
            gt_consumed[g] = True  # valid or not, the GT is consumed
            n_consumed += 1
            if valid[g]:  # only a valid GT takes the pred (quirk: invalid GT leaves it free)
                pred_taken[p] = True
                n_accepted += 1
                pairs.append((p, g))
        elif not gated[flat]:  # "false positive detected using threshold", taken pred/GT or not
            fp_events += 1
            if not valid[g] and not gt_consumed[g]:  # invalid GT consumed even by an FP event (quirk)
                gt_consumed[g] = True
                n_consumed += 1
        # else: IoU passes but the pred or GT is already taken -> skip, no state change
    pair_array = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    matched_gt = np.zeros(n_gt, dtype=bool)
    matched_gt[pair_array[:, 1]] = True
    valid_arr = np.array(valid, dtype=bool)
    return MatchResult(
        pairs=pair_array,
        false_positives=np.flatnonzero(~np.array(pred_taken, dtype=bool)).astype(np.int64),
        misses=np.flatnonzero(valid_arr & ~matched_gt).astype(np.int64),
        invalid_consumed=np.flatnonzero(np.array(gt_consumed, dtype=bool) & ~valid_arr).astype(np.int64),
        fp_events=fp_events,
    )


def match_greedy(
    pred_joints2d: np.ndarray,
    gt_joints2d: np.ndarray,
    gt_valid: np.ndarray,
    iou_threshold: float = IOU_THRESHOLD,
    n_cost_joints: int = N_COST_JOINTS,
) -> MatchResult:
    """Match one image's predictions to its GT people exactly like the official evaluator.

    Args:
        pred_joints2d: (P, Jp, >=2) predicted 2D joints (submission ``joints``), 4K
            pixels, Jp >= 24; the first 24 give the cost, all Jp rows the box.
        gt_joints2d: (G, Jg, >=2) GT ``gt_joints_2d`` (127 rows for SMPL-X); the first
            24 give the cost, all rows the box.
        gt_valid: (G,) bool matching validity (:func:`matching_validity`).
        iou_threshold: the IoU gate (official 0.1).
        n_cost_joints: joints in the cost (official 24).

    Returns:
        The :class:`MatchResult`.

    Raises:
        ValueError: on shape mismatches, too few joints, or non-finite joints (the
            official loop has no defined behaviour for NaN costs).
    """
    pred_joints2d = np.asarray(pred_joints2d)
    gt_joints2d = np.asarray(gt_joints2d)
    gt_valid = np.asarray(gt_valid, dtype=bool)
    boxes = {}
    for name, joints in (("pred_joints2d", pred_joints2d), ("gt_joints2d", gt_joints2d)):
        if joints.ndim != 3 or joints.shape[2] < 2 or joints.shape[1] < n_cost_joints:
            raise ValueError(f"{name} must be (N, J>={n_cost_joints}, >=2), got {joints.shape}")
        boxes[name] = joint_boxes(joints)
        if not np.isfinite(boxes[name]).all():  # min/max propagate any non-finite joint
            raise ValueError(f"{name} has non-finite values")
    if gt_valid.shape != (len(gt_joints2d),):
        raise ValueError(f"gt_valid must be ({len(gt_joints2d)},), got {gt_valid.shape}")
    cost = matching_cost(pred_joints2d, gt_joints2d, n_cost_joints)
    iou = box_iou_plus_one(boxes["pred_joints2d"], boxes["gt_joints2d"])
    return greedy_assign(cost, iou, gt_valid, iou_threshold)
