"""Tests for the official AGORA protocol maths (``humanbench.metrics.agora*``).

Every scene is small and hand-built; each test's docstring derives the expected
answer by hand from the official rules (``protocols.md`` §2.3-§2.5).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from humanbench.metrics.agora import (
    FACE_JOINTS,
    LEFT_HAND_JOINTS,
    AgoraImage,
    VertexSets,
    evaluate,
    person_errors,
)
from humanbench.metrics.agora_aggregate import (
    SMPLX_PARTS,
    ImageResult,
    aggregate,
    detection_scores,
    error_bins,
    full_body_error,
    normalized_error,
    orientation_deg,
    round_error,
    round_ratio,
)
from humanbench.metrics.agora_matching import (
    box_iou_plus_one,
    greedy_assign,
    joint_boxes,
    match_greedy,
    matching_cost,
    matching_validity,
)

# --------------------------------------------------------------------------- 2D scenes

SMALL = (0.0, 0.0, 30.0, 50.0)
"""A person's box: 31 x 51 = 1581 px² with the +1 convention."""

BIG = (0.0, 0.0, 1000.0, 1000.0)
"""A huge box: 1001² = 1002001 px²; IoU with SMALL = 1581 / 1002001 ≈ 0.0016 < 0.1."""


def grid24(box: tuple[float, float, float, float], dx: float = 0.0) -> np.ndarray:
    """24 joints on a 4 x 6 grid spanning ``box``, shifted by ``dx`` in x. Returns (24, 2)."""
    x0, y0, x1, y1 = box
    xs, ys = np.meshgrid(np.linspace(x0, x1, 4), np.linspace(y0, y1, 6))
    return np.stack([xs.ravel() + dx, ys.ravel()], axis=1)


def gt127(first24: np.ndarray, extra_box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """127 GT joints: ``first24`` then 103 more along the diagonal of ``extra_box``
    (default: the box of ``first24``, so the GT box is the box of the first 24). Returns (127, 2)."""
    box = np.concatenate([first24.min(0), first24.max(0)]) if extra_box is None else np.array(extra_box)
    lo, hi = box[:2], box[2:]
    t = np.linspace(0, 1, 103)[:, None]
    return np.concatenate([first24, lo + t * (hi - lo)])


def stack(*people: np.ndarray) -> np.ndarray:
    """(N, J, 2) from N (J, 2) arrays."""
    return np.stack(people)


# --------------------------------------------------------------------------- cost and IoU


def test_cost_is_spectral_norm_not_frobenius():
    """Official ``np.linalg.norm(d, 2)`` of a (24, 2) matrix is its largest singular value.

    Constant offset (3, 4) on every joint: d = 1·[3, 4] is rank one, singular value
    |(3, 4)|·√24 = 5√24 (also its Frobenius norm). Rows alternating (1, 0), (0, 1):
    dᵀd = diag(12, 12), so the spectral norm is √12 while Frobenius is √24.
    """
    gt = gt127(grid24(SMALL))[None]
    shifted = grid24(SMALL) + [3.0, 4.0]
    alternating = grid24(SMALL) + np.tile([[1.0, 0.0], [0.0, 1.0]], (12, 1))
    cost = matching_cost(stack(shifted, alternating), gt)
    np.testing.assert_allclose(cost[:, 0], [5 * np.sqrt(24), np.sqrt(12)], rtol=1e-12)


def test_iou_plus_one_convention():
    """Boxes [0, 0, 9, 9] and [5, 5, 14, 14]: areas (9-0+1)² = 100 each, intersection
    (9-5+1)² = 25, IoU = 25 / (100 + 100 - 25) = 1/7. Disjoint [20, 20, 21, 21]: 0."""
    iou = box_iou_plus_one(np.array([[0.0, 0, 9, 9]]), np.array([[5.0, 5, 14, 14], [20.0, 20, 21, 21]]))
    np.testing.assert_allclose(iou, [[1 / 7, 0.0]], rtol=1e-15)


def test_boxes_span_all_joints():
    """The box uses every row given (127 GT rows), not only the 24 cost joints."""
    boxes = joint_boxes(stack(gt127(grid24(SMALL), BIG)))
    np.testing.assert_array_equal(boxes, [[0.0, 0.0, 1000.0, 1000.0]])


def test_matching_validity_occlusion_bounds():
    """isValid & 0 <= occlusion <= 90: occlusion -1 and 91 are out, 0 and 90 in; isValid False is out."""
    valid = matching_validity(np.array([True, True, True, True, False]), np.array([-1.0, 0.0, 90.0, 91.0, 10.0]))
    np.testing.assert_array_equal(valid, [False, True, True, False, False])


# --------------------------------------------------------------------------- matching scenes


def test_perfect_match_and_miss():
    """One pred exactly on GT 0 (cost 0, IoU 1), GT 1 far away (x + 2000).

    (p0, g0) is the global minimum and is accepted; now #assigned = 1 >= #preds = 1,
    so the loop stops. GT 1 is valid and unmatched: a miss. No FP.
    """
    g0, g1 = gt127(grid24(SMALL)), gt127(grid24(SMALL, dx=2000))
    m = match_greedy(stack(grid24(SMALL)), stack(g0, g1), np.array([True, True]))
    np.testing.assert_array_equal(m.pairs, [[0, 0]])
    np.testing.assert_array_equal(m.misses, [1])
    assert m.false_positives.size == 0 and m.invalid_consumed.size == 0 and m.fp_events == 0


def test_false_positive():
    """Pred 0 on GT 0, pred 1 far away (x + 2000, IoU 0 with GT 0).

    (p0, g0) costs 0 and is accepted; every GT is now consumed, so the loop stops.
    Pred 1 is in no pair: a false positive.
    """
    m = match_greedy(stack(grid24(SMALL), grid24(SMALL, dx=2000)), stack(gt127(grid24(SMALL))), np.array([True]))
    np.testing.assert_array_equal(m.pairs, [[0, 0]])
    np.testing.assert_array_equal(m.false_positives, [1])
    assert m.misses.size == 0


def test_pred_on_invalid_gt_becomes_false_positive():
    """One pred exactly on an invalid (heavily occluded) GT.

    (p0, g0): pred free, GT unconsumed, IoU 1 -> accepted, but the GT is invalid, so only
    the GT is consumed; the pred stays free. All GT consumed -> stop. The pred is in no
    pair -> FP; the GT is invalid -> not a miss.
    """
    m = match_greedy(stack(grid24(SMALL)), stack(gt127(grid24(SMALL))), np.array([False]))
    assert m.pairs.size == 0 and m.misses.size == 0
    np.testing.assert_array_equal(m.false_positives, [0])
    np.testing.assert_array_equal(m.invalid_consumed, [0])


def test_pred_freed_by_invalid_gt_matches_next_valid_gt():
    """Pred exactly on invalid GT 0 (cost 0); valid GT 1 shifted 2 px
    (cost 2√24, IoU 29·51 / (31·51 + 31·51 - 29·51) ≈ 0.88).

    (p0, g0) consumes only the invalid GT. Stop test: 1 of 2 GT consumed and
    #assigned + #FP events = 0 < 1, so the loop goes on to (p0, g1): accepted.
    """
    g0, g1 = gt127(grid24(SMALL)), gt127(grid24(SMALL, dx=2))
    m = match_greedy(stack(grid24(SMALL)), stack(g0, g1), np.array([False, True]))
    np.testing.assert_array_equal(m.pairs, [[0, 1]])
    np.testing.assert_array_equal(m.invalid_consumed, [0])
    assert m.false_positives.size == 0 and m.misses.size == 0


def test_iou_gate_rejects_low_cost_pair():
    """Pred's 24 joints equal the GT's first 24 (cost 0), but the GT's other 103 joints
    span BIG, so IoU = 1581 / 1002001 ≈ 0.0016 < 0.1.

    (p0, g0) is an FP event (fp_events = 1), the pred is not consumed; then
    #assigned + #FP events = 0 + 1 >= 1 pred -> stop. Pred: FP; valid GT: miss.
    """
    m = match_greedy(stack(grid24(SMALL)), stack(gt127(grid24(SMALL), BIG)), np.array([True]))
    assert m.pairs.size == 0 and m.fp_events == 1
    np.testing.assert_array_equal(m.false_positives, [0])
    np.testing.assert_array_equal(m.misses, [0])


def test_two_preds_compete_for_one_gt():
    """Pred 0 is 3 px off the GT (cost 3√24), pred 1 is 1 px off (cost √24); both IoU >= 0.1.

    The cheaper (p1, g0) is visited first and accepted; all GT consumed -> stop.
    Pred 0 is an FP even though it overlaps the GT well.
    """
    preds = stack(grid24(SMALL, dx=3), grid24(SMALL, dx=1))
    m = match_greedy(preds, stack(gt127(grid24(SMALL))), np.array([True]))
    np.testing.assert_array_equal(m.pairs, [[1, 0]])
    np.testing.assert_array_equal(m.false_positives, [0])


def test_ties_go_to_the_first_pred_major_pair():
    """All costs 0, all IoUs 1: official argmin picks the first of ``product(preds, gts)``.

    Visits (0,0) accept, (0,1) skip (pred taken), (1,0) skip (GT taken), (1,1) accept.
    """
    m = greedy_assign(np.zeros((2, 2)), np.ones((2, 2)), np.array([True, True]))
    np.testing.assert_array_equal(m.pairs, [[0, 0], [1, 1]])


def test_early_stop_quirk_versus_hungarian():
    """The FP-event counter ends matching before a valid, overlapping pair is looked at.

    GT 0: box SMALL. GT 1: first 24 joints = GT 0's shifted 1 px, other joints span BIG.
    Pred 0 = GT 0's 24 joints (box SMALL). Pred 1: 24 joints spread over BIG.
    Costs: (p0,g0) = 0 < (p0,g1) = √24 ≈ 4.9 < the two p1 pairs (hundreds of px).
    IoUs: (p0,g0) = 1, (p0,g1) = (p1,g0) = 1581/1002001 < 0.1, (p1,g1) = 1.

    Official loop: (p0,g0) accepted (#assigned 1). (p0,g1): IoU < 0.1 -> FP event
    (fp_events 1), although pred 0 is already matched. Stop test: 1 + 1 >= 2 preds ->
    stop. (p1,g1) is never visited: pred 1 is an FP, GT 1 a miss.

    An IoU-gated Hungarian assignment matches both (p0,g0) and (p1,g1).
    """
    gts = stack(gt127(grid24(SMALL)), gt127(grid24(SMALL, dx=1), BIG))
    preds = stack(grid24(SMALL), grid24(BIG))
    cost = matching_cost(preds, gts)
    assert cost[0, 0] < cost[0, 1] < min(cost[1, 0], cost[1, 1])
    m = match_greedy(preds, gts, np.array([True, True]))
    np.testing.assert_array_equal(m.pairs, [[0, 0]])
    np.testing.assert_array_equal(m.false_positives, [1])
    np.testing.assert_array_equal(m.misses, [1])
    assert m.fp_events == 1

    iou = box_iou_plus_one(joint_boxes(preds), joint_boxes(gts))
    rows, cols = linear_sum_assignment(np.where(iou >= 0.1, cost, 1e12))
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 0), (1, 1)]


def test_fp_event_on_invalid_gt_consumes_it():
    """Pred 1 px off valid GT 0; invalid GT 1 has GT 0's 24 joints exactly (cost 0) but a BIG box.

    (p0,g1): IoU < 0.1 -> FP event, and the invalid GT is consumed anyway.
    Stop test: 0 + 1 >= 1 pred -> stop, so (p0,g0) is never visited:
    pred FP, GT 0 a miss, GT 1 consumed (not a miss).
    """
    gts = stack(gt127(grid24(SMALL, dx=1)), gt127(grid24(SMALL), BIG))
    m = match_greedy(stack(grid24(SMALL)), gts, np.array([True, False]))
    np.testing.assert_array_equal(m.misses, [0])
    np.testing.assert_array_equal(m.invalid_consumed, [1])
    np.testing.assert_array_equal(m.false_positives, [0])


def _literal_greedy(cost: np.ndarray, iou: np.ndarray, valid: np.ndarray) -> tuple[list, int, list]:
    """The official loop transcribed literally: repeated argmin over the pred-major pair list,
    visited pairs set to inf, the same accept / FP-event / skip branches and stop test."""
    n_pred, n_gt = cost.shape
    errors = cost.ravel().copy()
    pred_taken, gt_taken = np.zeros(n_pred, bool), np.zeros(n_gt, bool)
    pairs, fp_events = [], 0
    while gt_taken.sum() < n_gt and pred_taken.sum() + fp_events < n_pred:
        while True:
            k = int(np.argmin(errors))
            p, g = divmod(k, n_gt)
            errors[k] = np.inf
            if not pred_taken[p] and not gt_taken[g] and iou[p, g] >= 0.1:
                fp = False
                break
            if iou[p, g] < 0.1:
                fp, fp_events = True, fp_events + 1
                break
        if valid[g] and not fp:
            pairs.append((p, g))
            pred_taken[p] = gt_taken[g] = True
        elif not valid[g]:
            gt_taken[g] = True
    return pairs, fp_events, [p for p in range(n_pred) if not pred_taken[p]]


def test_greedy_equals_literal_official_loop_on_random_scenes():
    """60 random scenes (0-5 preds, 0-5 GT, tied costs, IoUs on both sides of 0.1, a
    third invalid): pairs, FP events and FPs equal the literal transcription."""
    rng = np.random.default_rng(7)
    for _ in range(60):
        n_pred, n_gt = rng.integers(0, 6, size=2)
        cost = rng.integers(0, 6, size=(n_pred, n_gt)).astype(float)
        iou = rng.choice([0.0, 0.05, 0.1, 0.5], size=(n_pred, n_gt))
        valid = rng.random(n_gt) > 0.33
        m = greedy_assign(cost, iou, valid)
        pairs, fp_events, fps = _literal_greedy(cost, iou, valid)
        assert m.pairs.tolist() == [list(p) for p in pairs] and m.fp_events == fp_events
        assert m.false_positives.tolist() == fps


def test_no_predictions_and_no_gt():
    """No preds: the loop never runs, every valid GT is a miss. No GT: every pred is an FP."""
    m = match_greedy(np.zeros((0, 24, 2)), stack(gt127(grid24(SMALL))), np.array([True]))
    np.testing.assert_array_equal(m.misses, [0])
    m = match_greedy(stack(grid24(SMALL)), np.zeros((0, 127, 2)), np.zeros(0, dtype=bool))
    np.testing.assert_array_equal(m.false_positives, [0])


# --------------------------------------------------------------------------- per-person errors

N_VERTS = 40
SETS = VertexSets(body=np.arange(0, 20), left_hand=np.arange(20, 26), right_hand=np.arange(26, 32),
                  face=np.arange(32, 40))


def _people(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random (n, 127, 3) joints and (n, 40, 3) vertices (metres)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 127, 3)), rng.normal(size=(n, N_VERTS, 3))


def test_errors_translation_invariant():
    """Each side is aligned at its own root: a rigid translation per person gives 0 everywhere."""
    joints, verts = _people(3)
    t = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 0.0], [0.0, 0.0, 9.0]])[:, None]
    errors = person_errors(joints + t, verts + t, joints, verts, SETS)
    assert set(errors) == set(SMPLX_PARTS)
    for values in errors.values():
        np.testing.assert_allclose(values, 0.0, atol=1e-12)


def test_root_point_counts_in_the_mean():
    """Moving one left finger joint (25) by 0.016 m: the 16-point left-hand set
    (wrist + 15) gives 0.016 / 16 = 0.001. Moving face landmark 80 by 0.052 m:
    0.052 / 52 = 0.001. Moving SMPL-X joint 0 (not the root: the root is the hip
    midpoint) by 0.022 m: 0.022 / 22 = 0.001. No other part changes."""
    joints, verts = _people(1)
    pred = joints.copy()
    pred[0, 25, 0] += 0.016
    pred[0, 80, 1] += 0.052
    pred[0, 0, 2] += 0.022
    errors = person_errors(pred, verts, joints, verts, SETS)
    for key, expected in (("lhand-MPJPE", 0.001), ("face-MPJPE", 0.001), ("body-MPJPE", 0.001),
                          ("rhand-MPJPE", 0.0), ("body-MVE", 0.0), ("lhand-MVE", 0.0)):
        np.testing.assert_allclose(errors[key], [expected], atol=1e-15)
    assert len(LEFT_HAND_JOINTS) == 16 and len(FACE_JOINTS) == 52


def test_body_root_is_hip_midpoint():
    """Moving both hips (1, 2) of the prediction by t = 0.01 m moves its root by t.

    Aligned hips then coincide with the GT's (error 0); the other 20 body joints and
    all body vertices are off by |t|: body MPJPE = 20·0.01/22, body MVE = 0.01.
    """
    joints, verts = _people(1)
    pred = joints.copy()
    pred[0, 1:3, 0] += 0.01
    errors = person_errors(pred, verts, joints, verts, SETS)
    np.testing.assert_allclose(errors["body-MPJPE"], [20 * 0.01 / 22], rtol=1e-12)
    np.testing.assert_allclose(errors["body-MVE"], [0.01], rtol=1e-12)


def test_hand_vertices_aligned_at_wrist():
    """Moving the left wrist (20) and the left-hand vertices by t = 0.016 m:
    hand MVE 0 (vertices follow their root); hand MPJPE: the 15 finger joints are off
    by |t| relative to the moved wrist, the wrist itself 0: 15·0.016/16 = 0.015;
    body MPJPE: joint 20 is off by |t| among 22: 0.016/22."""
    joints, verts = _people(1)
    pred_j, pred_v = joints.copy(), verts.copy()
    pred_j[0, 20, 0] += 0.016
    pred_v[0, SETS.left_hand, 0] += 0.016
    errors = person_errors(pred_j, pred_v, joints, verts, SETS)
    np.testing.assert_allclose(errors["lhand-MVE"], [0.0], atol=1e-15)
    np.testing.assert_allclose(errors["lhand-MPJPE"], [0.015], rtol=1e-12)
    np.testing.assert_allclose(errors["body-MPJPE"], [0.016 / 22], rtol=1e-12)


def test_smpl_protocol_body_only():
    """SMPL: 24 body joints, so moving joint 23 by 0.024 m gives 0.001; no hand/face keys."""
    joints, verts = _people(1)
    pred = joints[:, :24].copy()
    pred[0, 23, 0] += 0.024
    errors = person_errors(pred, verts, joints[:, :24], verts, VertexSets(body=np.arange(N_VERTS)), "smpl")
    assert set(errors) == {"body-MPJPE", "body-MVE"}
    np.testing.assert_allclose(errors["body-MPJPE"], [0.001], rtol=1e-12)


def _official_person(pj: np.ndarray, pv: np.ndarray, gj: np.ndarray, gv: np.ndarray) -> dict[str, float]:
    """One person's errors computed like the official code (per-person numpy calls)."""
    def err(gt, pred, gt_root, pred_root):
        return np.mean(np.sqrt(np.sum(((gt - np.expand_dims(gt_root, 0)) - (pred - np.expand_dims(pred_root, 0))) ** 2,
                                      axis=1)))

    g_pel, p_pel = (gj[:22][1, :] + gj[:22][2, :]) / 2.0, (pj[:22][1, :] + pj[:22][2, :]) / 2.0
    out = {"body-MPJPE": err(gj[:22], pj[:22], g_pel, p_pel),
           "body-MVE": err(gv[SETS.body], pv[SETS.body], g_pel, p_pel)}
    for name, root, lo, hi, ids in (("lhand", 20, 25, 40, SETS.left_hand), ("rhand", 21, 40, 55, SETS.right_hand),
                                    ("face", 12, 76, 127, SETS.face)):
        g_set = np.concatenate([gj[root, :].reshape((1, 3)), gj[lo:hi, :]])
        p_set = np.concatenate([pj[root, :].reshape((1, 3)), pj[lo:hi, :]])
        out[f"{name}-MPJPE"] = err(g_set, p_set, g_set[0], p_set[0])
        out[f"{name}-MVE"] = err(gv[ids], pv[ids], g_set[0], p_set[0])
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_errors_vectorised_equal_per_person_loop(dtype):
    """Batched errors equal the official per-person computation bit for bit, also for
    non-contiguous inputs (Fortran-ordered arrays): the per-person means must reduce
    contiguous rows (pairwise summation), the xyz sums run left to right."""
    joints, verts = (a.astype(dtype) for a in _people(6, seed=3))
    rng = np.random.default_rng(4)
    pred_j = (joints + rng.normal(scale=0.05, size=joints.shape)).astype(dtype)
    pred_v = (verts + rng.normal(scale=0.05, size=verts.shape)).astype(dtype)
    errors = person_errors(np.asfortranarray(pred_j), np.asfortranarray(pred_v), joints, verts, SETS)
    for n in range(6):
        for key, value in _official_person(pred_j[n], pred_v[n], joints[n], verts[n]).items():
            assert errors[key][n] == value and errors[key].dtype == dtype, key


# --------------------------------------------------------------------------- aggregation


def result(matched, errors, *, valid=None, kid=None, n_fp=0, has_pred=True, occ=None, ori=None) -> ImageResult:
    """An ImageResult whose every part error is ``errors`` (metres, one per GT person)."""
    g = len(matched)
    ones = np.ones(g, dtype=bool)
    return ImageResult(
        valid=ones if valid is None else np.asarray(valid), kid=~ones if kid is None else np.asarray(kid),
        matched=np.asarray(matched), errors={k: np.asarray(errors, dtype=float) for k in SMPLX_PARTS},
        n_false_positives=n_fp, has_predictions=has_pred,
        occlusion=np.full(g, 5.0) if occ is None else np.asarray(occ), orientation=np.zeros(g) if ori is None else ori,
    )


def test_hand_face_average_includes_zero_for_misses():
    """Image A (predictions): valid person matched with every error 0.020 m, valid person
    missed, invalid person (excluded; its garbage error is ignored). Image B (no
    predictions): one valid person, a miss.

    count 3, TP 1, FN 2, FP 0. Body: matched only -> 20.0 mm. Hands/face: valid people
    of images with predictions, misses as 0 -> (20 + 0) / 2 = 10.0 (image B left out).
    F1 = 1 / (1 + 0.5·2) = 0.5. FB = round(20 + 10/3 + 10/3 + 10/3, 1) = 30.0;
    FB-NMVE = 30.0 / 0.5 = 60.0; body NMVE = 40.0.
    """
    a = result([True, False, False], [0.020, 0.5, 0.7], valid=[True, True, False])
    b = result([False], [0.0], has_pred=False)
    s = aggregate([a, b])
    assert (s.count, s.tp, s.fn, s.fp) == (3, 1, 2, 0)
    m = s.metrics
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 0.33, 0.5)
    assert m["body-MVE"] == 20.0 and m["lhand-MVE"] == m["rhand-MPJPE"] == m["face-MVE"] == 10.0
    assert m["fullbody-MVE"] == 30.0 and m["fullbody-NMVE"] == 60.0 and m["body-NMVE"] == 40.0


def test_rounding_before_division():
    """TP 1, FN 1, FP 0: F1 = 1 / 1.5 = 0.666… -> 0.67. Matched body error 0.06666 m
    -> 66.66 mm -> 66.7. NMVE = round(66.7 / 0.67, 1) = round(99.552…) = 99.6, whereas
    unrounded 66.66 / 0.6667 would give 100.0."""
    s = aggregate([result([True, False], [0.06666, 0.0])])
    assert s.metrics["f1"] == 0.67 and s.metrics["body-MVE"] == 66.7
    assert s.metrics["body-NMVE"] == 99.6
    assert round(66.66 / (2 / 3), 1) == 100.0


def test_kids_use_all_false_positives():
    """Image A: adult matched (errors 0.050), kid matched (0.080), kid missed; 2 FPs.
    Image B (no predictions): one kid, a miss.

    All: count 4, TP 2, FN 2, FP 2 -> P = R = 0.5, F1 = 2 / (2 + 0.5·4) = 0.5.
    Kids: count 3, TP 1, FN 2, FP 2 (not split by age) -> P = 1/3 -> 0.33,
    R = 1/3 -> 0.33, F1 = 1 / (1 + 0.5·4) -> 0.33.
    kid body MVE = 80.0 (matched kids), kid body NMVE = round(80 / 0.33, 1) = 242.4
    (kid F1). Kid hands: kids of image A, the miss as 0 -> 40.0;
    kid FB = round(80 + 40/3·3, 1) = 120.0, kid FB-NMVE = 120 / 0.5 (overall F1!) = 240.0.
    Body MVE = 65.0 -> NMVE 130.0.
    """
    a = result([True, True, False], [0.050, 0.080, 0.0], kid=[False, True, True], n_fp=2)
    b = result([False], [0.0], kid=[True], has_pred=False)
    s = aggregate([a, b])
    assert (s.kid_count, s.kid_tp, s.kid_fn, s.fp) == (3, 1, 2, 2)
    m = s.metrics
    assert (m["precision"], m["recall"], m["f1"]) == (0.5, 0.5, 0.5)
    assert (m["kid_precision"], m["kid_recall"], m["kid_f1"]) == (0.33, 0.33, 0.33)
    assert m["kid-body-MVE"] == 80.0 and m["kid-body-NMVE"] == 242.4
    assert m["kid-lhand-MVE"] == 40.0 and m["kid-fullbody-MVE"] == 120.0 and m["kid-fullbody-NMVE"] == 240.0
    assert m["body-MVE"] == 65.0 and m["body-NMVE"] == 130.0


def test_false_positives_only_from_images_with_predictions_and_no_kids():
    """FPs are summed over images with predictions; with no kid, kid scores are NaN."""
    s = aggregate([result([True], [0.01], n_fp=3), result([False], [0.0], n_fp=5, has_pred=False)])
    assert (s.fp, s.count, s.fn) == (3, 2, 1)
    assert np.isnan(s.metrics["kid_f1"]) and np.isnan(s.metrics["kid-body-NMVE"])


def test_metric_keys_follow_official_order():
    """SMPL-X summary keys are the official ``error_dict`` keys; SMPL stops after the body."""
    s = aggregate([result([True], [0.01])])
    keys = list(s.metrics)
    assert keys[:14] == ["precision", "recall", "f1", "kid_precision", "kid_recall", "kid_f1",
                         "body-MPJPE", "kid-body-MPJPE", "body-NMJE", "kid-body-NMJE",
                         "body-MVE", "kid-body-MVE", "body-NMVE", "kid-body-NMVE"]
    assert keys[14:24] == ["lhand-MPJPE", "rhand-MPJPE", "face-MPJPE", "lhand-MVE", "rhand-MVE", "face-MVE",
                           "fullbody-MPJPE", "fullbody-MVE", "fullbody-NMJE", "fullbody-NMVE"]
    assert len(keys) == 34 and keys[-1] == "kid-fullbody-NMVE"
    assert len(aggregate([result([True], [0.01])], model="smpl").metrics) == 14
    frame = s.to_frame()  # FB = 10 + (10 + 10 + 10)/3
    assert frame.loc["count", "value"] == 1 and frame.loc["fullbody-MVE", "value"] == 20.0


def test_rounding_rules():
    """Errors: numpy rounding (1.05 -> 10.5 after ×10 -> half-even 10 -> 1.0; Python's
    round(1.05, 1) is 1.1). Scores: Python rounding of the exact binary value —
    TP 7, FP 33, FN 33: P = R = F1 = 7/40 = 0.175, stored as 0.17499999…, -> 0.17
    (numpy's ×100 gives exactly 17.5 -> 0.18)."""
    assert round_error(1.05) == 1.0 and round(1.05, 1) == 1.1
    assert detection_scores(40, 33, 33) == (0.17, 0.17, 0.17)
    assert round_ratio(0.175) == 0.17 and float(np.round(0.175, 2)) == 0.18


def test_error_bins():
    """Occlusion 5, 5, 15, 85 %: bin (-1, 10] holds a matched person (body errors 10 mm)
    and a miss -> mean 10.0, miss rate 0.5, normalised 10 / (1 - 0.5) = 20.0;
    (10, 20] one matched (30 mm); 85 % lies in no bin."""
    table = error_bins(np.array([5.0, 5.0, 15.0, 85.0]), np.array([10.0, 0.0, 30.0, 7.0]),
                       np.array([10.0, 0.0, 30.0, 7.0]), np.array([False, True, False, False]),
                       (-1, 10, 20, 30))
    assert table["n_people"].tolist() == [2, 1, 0]
    np.testing.assert_allclose(table["body-MPJPE"].to_numpy()[:2], [10.0, 30.0])
    np.testing.assert_allclose(table["body-NMVE"].to_numpy()[:2], [20.0, 30.0])
    assert np.isnan(table["body-MVE"].iloc[2])


def test_orientation_deg():
    """(yaw - 90 + 22.5 - camYaw) mod 360: yaw 90, cam 0 -> 22.5; yaw 0, cam 0 -> -67.5 -> 292.5."""
    np.testing.assert_allclose(orientation_deg(np.array([90.0, 0.0]), 0.0), [22.5, 292.5])


# --------------------------------------------------------------------------- end to end


def _image(offsets: list[float], kid: list[bool], pred_order: list[int], x0: float = 0.0) -> AgoraImage:
    """GT people side by side (x0 + 100 k px); predictions = GT joints (2D and 3D) of
    ``pred_order`` with every vertex translated by ``offsets[gt]`` metres in x."""
    g = len(offsets)
    j2d = stack(*(gt127(grid24(SMALL, dx=x0 + 100 * k)) for k in range(g)))
    joints, verts = _people(g, seed=len(pred_order))
    pred_verts = verts + np.array(offsets)[:, None, None] * [1.0, 0.0, 0.0]
    order = np.array(pred_order, dtype=int)
    return AgoraImage(
        gt_joints2d=j2d, gt_joints3d=joints, gt_verts=verts, is_valid=np.ones(g, dtype=bool),
        occlusion=np.full(g, 20.0), kid=np.array(kid), orientation=np.zeros(g),
        pred_joints2d=j2d[order, :24], pred_joints3d=joints[order], pred_verts=pred_verts[order],
    )


def test_evaluate_end_to_end():
    """Image 0: two valid GT people, predictions given in reverse order; vertices off by
    0.03 m (adult) and 0.05 m (kid), joints exact. Image 1: one valid person, no prediction.

    count 3, TP 2, FN 1, FP 0: P 1.0, R 0.67, F1 = 2 / 2.5 = 0.8. MPJPE 0. Every MVE part:
    (30 + 50) / 2 = 40.0 (image 1 not in the hand/face means), FB-MVE = 40 + 3·40/3 = 80.0,
    FB-NMVE = 80 / 0.8 = 100.0. Kid: 1 of 1 matched, kid F1 1.0, kid body MVE 50.0,
    kid FB-MVE 100.0, kid FB-NMVE = 100 / 0.8 (overall F1) = 125.0.
    """
    images = [_image([0.03, 0.05], [False, True], [1, 0]), _image([0.0], [False], [], x0=5000)]
    s = evaluate(images, SETS)
    m = s.metrics
    assert (s.count, s.tp, s.fn, s.fp) == (3, 2, 1, 0)
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 0.67, 0.8)
    assert m["body-MPJPE"] == m["lhand-MPJPE"] == m["face-MPJPE"] == 0.0
    assert m["body-MVE"] == m["rhand-MVE"] == m["face-MVE"] == 40.0
    assert (m["fullbody-MVE"], m["fullbody-NMVE"]) == (80.0, 100.0)
    assert (m["kid_f1"], m["kid-body-MVE"], m["kid-fullbody-MVE"], m["kid-fullbody-NMVE"]) == (1.0, 50.0, 100.0, 125.0)


# --------------------------------------------------------------------------- published numbers

# protocols.md §8.2 (AiOS CVPR'24 Table 1, copied from the AGORA SMPL-X test leaderboard):
# F1, NMVE All/Body, NMJE All/Body, MVE All/Body/Face/LH/RH, MPJPE All/Body/Face/LH/RH.
LEADERBOARD = {
    "BEDLAM": (.73, (179.5, 132.2), (177.5, 131.4), (131.0, 96.5, 25.8, 38.8, 39.0), (129.6, 95.9, 27.8, 36.6, 36.7)),
    "Hand4Whole†": (.94, (144.1, 96.0), (141.1, 92.7), (135.5, 90.2, 41.6, 46.3, 48.1),
                    (132.6, 87.1, 46.1, 44.3, 46.2)),
    "BEDLAM†": (.73, (142.2, 102.1), (141.0, 101.8), (103.8, 74.5, 23.1, 31.7, 33.2),
                (102.9, 74.3, 24.7, 29.9, 31.3)),
    "PyMAF-X†": (.89, (141.2, 94.4), (140.0, 93.5), (125.7, 84.0, 35.0, 44.6, 45.6), (124.6, 83.2, 37.9, 42.5, 43.7)),
    "OSX*": (.94, (130.6, 85.3), (127.6, 83.3), (122.8, 80.2, 36.2, 45.4, 46.1), (119.9, 78.3, 37.9, 43.0, 43.9)),
    "HybrIK-X": (.93, (120.5, 73.7), (115.7, 72.3), (112.1, 68.5, 37.0, 46.7, 47.0), (107.6, 67.2, 38.5, 41.2, 41.4)),
    "SMPLer-X": (.93, (133.1, 88.1), (128.9, 84.6), (123.8, 81.9, 37.4, 43.6, 44.8), (119.9, 78.7, 39.5, 41.4, 44.8)),
    "SMPLer-X†": (.93, (107.2, 68.3), (104.1, 66.3), (99.7, 63.5, 29.9, 39.1, 39.5), (96.8, 61.7, 31.4, 36.7, 37.2)),
    "AiOS": (.94, (97.8, 61.3), (96.0, 60.7), (91.9, 57.6, 24.6, 38.7, 39.6), (90.2, 57.1, 25.7, 36.4, 37.3)),
}
MPJPE_INCONSISTENT = {"SMPLer-X"}
"""Rows whose published MPJPE parts do not give their published FB-MPJPE (see the test below)."""


def _check_row(f1: float, normalized: tuple[float, float], parts: tuple[float, ...]) -> None:
    """FB from the rounded parts, then FB / F1 and B / F1, must equal the published values."""
    all_, body, face, lhand, rhand = parts
    assert full_body_error(body, lhand, rhand, face) == all_
    assert normalized_error(all_, f1) == normalized[0]
    assert normalized_error(body, f1) == normalized[1]


@pytest.mark.parametrize("method", list(LEADERBOARD))
def test_published_mve_rows_reproduce(method):
    """Leaderboard FB-MVE ("All") = round(B + (F + LH + RH)/3, 1) and NMVE = round(x / F1, 1), e.g.
    SMPLer-X†: 63.5 + (29.9 + 39.1 + 39.5)/3 = 99.67 -> 99.7; 99.7 / 0.93 = 107.20 -> 107.2."""
    f1, nmve, _, mve, _ = LEADERBOARD[method]
    _check_row(f1, nmve, mve)


@pytest.mark.parametrize("method", [m for m in LEADERBOARD if m not in MPJPE_INCONSISTENT])
def test_published_mpjpe_rows_reproduce(method):
    """Same formulas for FB-MPJPE and NMJE."""
    f1, _, nmje, _, mpjpe = LEADERBOARD[method]
    _check_row(f1, nmje, mpjpe)


def test_published_smplerx_mpjpe_row_is_internally_inconsistent():
    """SMPLer-X (foundation) MPJPE: 78.7 + (39.5 + 41.4 + 44.8)/3 = 120.6, published 119.9.

    The published All (119.9) and NMJE (119.9 / 0.93 = 128.9) agree with each other, and
    Body NMJE 78.7 / 0.93 = 84.6 agrees, so one hand/face part is off in the copied table:
    RH-MPJPE 44.8 equals that row's RH-MVE (a likely copy slip); an RH-MPJPE in
    [42.6, 42.8] would give 119.9. Our formulas are not at fault: this row is reported,
    not reproduced.
    """
    f1, _, nmje, _, (all_, body, face, lhand, rhand) = LEADERBOARD["SMPLer-X"]
    assert full_body_error(body, lhand, rhand, face) == 120.6 != all_
    assert normalized_error(all_, f1) == nmje[0] and normalized_error(body, f1) == nmje[1]
    assert all(full_body_error(body, lhand, rh, face) == all_ for rh in (42.6, 42.7, 42.8))
