"""Tests for ``humanbench.metrics.procrustes`` and ``humanbench.metrics.mesh``.

Every metric is checked against a straightforward float64 reference written here with
explicit loops over samples and points; Procrustes against both published formula
families (SPIN ``compute_similarity_transform`` and mks0601 ``rigid_transform_3D``, as
described in ``protocols.md`` §0.1), implemented independently of each other.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from humanbench.metrics.mesh import (
    align_root,
    in_image_mask,
    joint_root,
    mean_point_error,
    midpoint_root,
    mpjpe,
    pa_mpjpe,
    pa_part_errors,
    pa_pve,
    part_errors,
    point_errors,
    pve,
    root_point,
    translate_to_root,
)
from humanbench.metrics.procrustes import ProcrustesResult, similarity_procrustes

TOL = 1e-9

# --------------------------------------------------------------------------- references


def _mean(points: np.ndarray) -> np.ndarray:
    n = len(points)
    return np.array([sum(points[i][k] for i in range(n)) / n for k in range(3)])


def ref_procrustes_spin(src: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """SPIN family: centre, K = X1·X2ᵀ, SVD, Z = diag(1,1,sign det(UVᵀ)), R = VZUᵀ, s = tr(RK)/Σ‖X1‖².

    Args:
        src, tgt: (N, 3) float64.

    Returns:
        aligned (N, 3), scale, rotation (3, 3), translation (3,).
    """
    n = len(src)
    mu1, mu2 = _mean(src), _mean(tgt)
    x1 = [src[i] - mu1 for i in range(n)]
    x2 = [tgt[i] - mu2 for i in range(n)]
    k = np.zeros((3, 3))
    for i in range(n):
        for a in range(3):
            for b in range(3):
                k[a, b] += x1[i][a] * x2[i][b]
    u, _, vt = np.linalg.svd(k)
    v = vt.T
    z = np.eye(3)
    z[2, 2] = np.sign(np.linalg.det(u @ v.T))
    r = v @ z @ u.T
    var1 = sum(x1[i][a] ** 2 for i in range(n) for a in range(3))
    s = float(np.trace(r @ k) / var1)
    t = mu2 - s * (r @ mu1)
    aligned = np.array([s * (r @ src[i]) + t for i in range(n)])
    return aligned, s, r, t


def ref_procrustes_mks(a_pts: np.ndarray, b_pts: np.ndarray) -> np.ndarray:
    """mks0601 family: H = (A−Ā)ᵀ(B−B̄)/n, SVD, reflection fixed by negating the last singular
    value and last row of Vᵀ, c = Σs / (sum of per-axis variances of A).

    Args:
        a_pts, b_pts: (N, 3) float64, A aligned onto B.

    Returns:
        (N, 3) aligned A.
    """
    n = len(a_pts)
    ca, cb = _mean(a_pts), _mean(b_pts)
    h = np.zeros((3, 3))
    for i in range(n):
        h += np.outer(a_pts[i] - ca, b_pts[i] - cb)
    h /= n
    u, sv, vt = np.linalg.svd(h)
    r = vt.T @ u.T
    if np.linalg.det(r) < 0:
        sv[-1] = -sv[-1]
        vt[2] = -vt[2]
        r = vt.T @ u.T
    var_a = sum(sum((a_pts[i][k] - ca[k]) ** 2 for i in range(n)) / n for k in range(3))
    c = sv.sum() / var_a
    t = cb - c * (r @ ca)
    return np.array([c * (r @ a_pts[i]) + t for i in range(n)])


def ref_mean_error(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean L2 over valid points of one sample; NaN when none is valid."""
    total, count = 0.0, 0
    for i in range(len(pred)):
        if mask is None or mask[i]:
            total += math.sqrt(sum((pred[i][k] - gt[i][k]) ** 2 for k in range(3)))
            count += 1
    return total / count if count else math.nan


def ref_pa_error(pred: np.ndarray, gt: np.ndarray, mask=None, fit_mask=None) -> float:
    """Procrustes on the fit points (SPIN reference), transform applied to all, masked mean."""
    fit = [i for i in range(len(pred)) if fit_mask is None or fit_mask[i]]
    _, s, r, t = ref_procrustes_spin(pred[fit], gt[fit])
    aligned = np.array([s * (r @ p) + t for p in pred])
    return ref_mean_error(aligned, gt, mask)


# --------------------------------------------------------------------------- data


def random_rotations(count: int, seed: int) -> np.ndarray:
    return Rotation.random(count, random_state=seed).as_matrix()


def body_like(batch: int, joints: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """GT ~ a metre-sized point cloud; pred = GT rotated, scaled, shifted and noised (float64)."""
    gen = np.random.default_rng(seed)
    gt = gen.normal(scale=0.3, size=(batch, joints, 3))
    rot = random_rotations(batch, seed + 1)
    scale = gen.uniform(0.8, 1.2, size=(batch, 1, 1))
    pred = scale * gt @ rot.transpose(0, 2, 1) + gen.normal(size=(batch, 1, 3))
    pred += gen.normal(scale=0.03, size=pred.shape)
    return torch.from_numpy(pred), torch.from_numpy(gt)


def check_against_references(src: torch.Tensor, tgt: torch.Tensor, result: ProcrustesResult, unique: str = "rotation"):
    """Compare with both reference families.

    ``unique`` says what the problem determines: "rotation" (generic and planar sets: R, t,
    aligned), "aligned" (collinear source: R only on the line) or "objective" (rank-1 K
    with a non-collinear source: only s and the least-squares residual Σ‖sRx + t − y‖²).
    """
    for b in range(src.shape[0]):
        s_np, t_np = src[b].numpy(), tgt[b].numpy()
        aligned, s, r, t = ref_procrustes_spin(s_np, t_np)
        assert abs(result.scale[b].item() - s) < TOL
        if unique == "objective":
            residual = ((result.aligned[b].numpy() - t_np) ** 2).sum()
            assert abs(residual - ((aligned - t_np) ** 2).sum()) < TOL
            assert abs(residual - ((ref_procrustes_mks(s_np, t_np) - t_np) ** 2).sum()) < TOL
            continue
        np.testing.assert_allclose(result.aligned[b].numpy(), aligned, rtol=0, atol=TOL)
        np.testing.assert_allclose(result.aligned[b].numpy(), ref_procrustes_mks(s_np, t_np), rtol=0, atol=TOL)
        if unique == "rotation":
            np.testing.assert_allclose(result.rotation[b].numpy(), r, rtol=0, atol=TOL)
            np.testing.assert_allclose(result.translation[b].numpy(), t, rtol=0, atol=TOL)
    dets = torch.linalg.det(result.rotation)
    torch.testing.assert_close(dets, torch.ones_like(dets), rtol=0, atol=1e-12)
    rebuilt = result.scale[:, None, None] * src @ result.rotation.mT + result.translation[:, None]
    torch.testing.assert_close(rebuilt, result.aligned, rtol=0, atol=TOL)


# --------------------------------------------------------------------------- Procrustes


@pytest.mark.parametrize("joints", [3, 14, 60])
def test_procrustes_matches_both_families_on_body_like_points(joints):
    pred, gt = body_like(12, joints, seed=joints)
    check_against_references(pred, gt, similarity_procrustes(pred, gt))


def test_procrustes_matches_both_families_on_unrelated_points():
    """Independent random sets: about half need the reflection fix."""
    gen = torch.Generator().manual_seed(0)
    src = torch.randn(24, 10, 3, generator=gen, dtype=torch.float64)
    tgt = torch.randn(24, 10, 3, generator=gen, dtype=torch.float64)
    k = (src - src.mean(1, keepdim=True)).mT @ (tgt - tgt.mean(1, keepdim=True))
    u, _, vh = torch.linalg.svd(k)
    assert (torch.linalg.det(u @ vh) < 0).sum() >= 4  # the fix is exercised
    check_against_references(src, tgt, similarity_procrustes(src, tgt))


def test_pure_reflection_is_not_undone():
    """GT mirrored through its centroid (x → −x): a proper rotation cannot match it."""
    _, gt = body_like(8, 14, seed=3)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    result = similarity_procrustes(mirrored, gt)
    check_against_references(mirrored, gt, result)
    errors = pa_mpjpe(mirrored, gt)
    assert (errors > 0.02).all()
    for b in range(8):
        assert abs(errors[b].item() - ref_pa_error(mirrored[b].numpy(), gt[b].numpy())) < TOL


def test_mirrored_regular_tetrahedron_hand_value():
    """Regular tetrahedron x_i ∈ {(1,1,1), (1,−1,−1), (−1,1,−1), (−1,−1,1)}; source F x_i, F = diag(−1,1,1).

    Centroids are 0 and Σ x_i x_iᵀ = 4I, so K = Σ (F x_i) x_iᵀ = 4F with singular values
    (4, 4, 4) and det(UVᵀ) = det F = −1. Hence R = V Z Uᵀ is F composed with one axis flip,
    trace(RK) = 4(1 + 1 − 1) = 4, Σ‖X1‖² = 12, s = 1/3, and s R F = diag(±1/3) with
    one entry −1/3. Each aligned point differs from x_i by (2/3, 2/3, 4/3) up to signs
    and permutation, so every error is √(4/9 + 4/9 + 16/9) = 2√6/3 whichever axis the SVD flips.
    """
    gt = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64)[None]
    src = gt * torch.tensor([-1.0, 1, 1], dtype=torch.float64)
    result = similarity_procrustes(src, gt)
    assert abs(result.scale.item() - 1 / 3) < 1e-12
    assert abs(torch.linalg.det(result.rotation).item() - 1) < 1e-12
    expected = torch.full((1, 4), 2 * math.sqrt(6) / 3, dtype=torch.float64)
    torch.testing.assert_close(point_errors(result.aligned, gt), expected)
    assert abs(pa_mpjpe(src, gt).item() - 2 * math.sqrt(6) / 3) < 1e-12


def test_collinear_source_hand_value():
    """Source (−1,0,0), (0,0,0), (1,0,0); target (−1,0,0), (0,3,0), (1,0,0).

    μ1 = 0, μ2 = (0,1,0); centred target (−1,−1,0), (0,2,0), (1,−1,0). K = X1·X2ᵀ has the
    single non-zero entry K_xx = (−1)(−1) + (1)(1) = 2 (K_xy = 1 − 1 = 0), so R maps x to x,
    s = 2/2 = 1 and aligned = source + (0,1,0) = (−1,1,0), (0,1,0), (1,1,0).
    Errors 1, 2, 1 → PA-MPJPE = 4/3.
    """
    src = torch.tensor([[[-1.0, 0, 0], [0, 0, 0], [1, 0, 0]]], dtype=torch.float64)
    gt = torch.tensor([[[-1.0, 0, 0], [0, 3, 0], [1, 0, 0]]], dtype=torch.float64)
    result = similarity_procrustes(src, gt)
    assert abs(result.scale.item() - 1) < 1e-12
    torch.testing.assert_close(result.aligned, src + torch.tensor([0.0, 1, 0], dtype=torch.float64))
    assert abs(pa_mpjpe(src, gt).item() - 4 / 3) < 1e-12


def test_two_points_hand_value():
    """Source (0,0,0), (1,0,0); target (0,0,0), (0,2,0).

    Unaligned: errors 0 and ‖(1,−2,0)‖ = √5 → MPJPE √5/2. A segment maps exactly onto
    another segment by a similarity (rotate x onto y, scale 2): PA-MPJPE 0, s = 2.
    """
    src = torch.tensor([[[0.0, 0, 0], [1, 0, 0]]], dtype=torch.float64)
    gt = torch.tensor([[[0.0, 0, 0], [0, 2, 0]]], dtype=torch.float64)
    assert abs(mpjpe(src, gt).item() - math.sqrt(5) / 2) < 1e-15
    result = similarity_procrustes(src, gt)
    assert abs(result.scale.item() - 2) < 1e-12
    assert pa_mpjpe(src, gt).item() < 1e-12
    assert abs(torch.linalg.det(result.rotation).item() - 1) < 1e-12


def test_mirrored_triangle_is_a_rotation():
    """A planar set's mirror image is its 180° rotation about an in-plane axis: PA error 0, det R = +1.

    Triangle (0,0,0), (3,0,0), (0,4,0) mirrored by x → −x; unaligned errors 0, 6, 0 → MPJPE 2.
    """
    gt = torch.tensor([[[0.0, 0, 0], [3, 0, 0], [0, 4, 0]]], dtype=torch.float64)
    src = gt * torch.tensor([-1.0, 1, 1], dtype=torch.float64)
    assert abs(mpjpe(src, gt).item() - 2) < 1e-15
    result = similarity_procrustes(src, gt)
    assert abs(result.scale.item() - 1) < 1e-12
    assert abs(torch.linalg.det(result.rotation).item() - 1) < 1e-12
    assert pa_mpjpe(src, gt).item() < 1e-12


def test_collinear_and_planar_random_sets():
    gen = np.random.default_rng(5)
    batch, n = 10, 12
    direction = gen.normal(size=(batch, 1, 3))
    line = gen.normal(size=(batch, n, 1)) * direction + gen.normal(size=(batch, 1, 3))
    basis = gen.normal(size=(batch, 2, 3))
    plane = gen.normal(size=(batch, n, 2)) @ basis + gen.normal(size=(batch, 1, 3))
    other = torch.from_numpy(gen.normal(size=(batch, n, 3)))
    line, plane = torch.from_numpy(line), torch.from_numpy(plane)
    cases = [
        (line, other, "aligned"),
        (line, line.flip(1), "aligned"),
        (other, line, "objective"),  # R is free about the target line: PA errors are implementation-defined
        (plane, other, "rotation"),
        (other, plane, "rotation"),
        (plane, plane.flip(1), "rotation"),
    ]
    for src, tgt, unique in cases:
        check_against_references(src, tgt, similarity_procrustes(src, tgt), unique)


def test_exact_similarity_transform_is_recovered():
    _, gt = body_like(16, 14, seed=7)
    rot = torch.from_numpy(random_rotations(16, 8))
    scale = torch.linspace(0.5, 2.0, 16, dtype=torch.float64)
    shift = torch.randn(16, 1, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    pred = scale[:, None, None] * gt @ rot.mT + shift
    result = similarity_procrustes(pred, gt)
    assert pa_mpjpe(pred, gt).max().item() < 1e-12
    torch.testing.assert_close(result.scale, 1 / scale, rtol=0, atol=1e-12)
    torch.testing.assert_close(result.rotation, rot.mT, rtol=0, atol=1e-12)


@pytest.mark.parametrize("value", [0.0, 0.1, 3.7])
def test_identical_source_points_give_translation_only(value):
    """No spread in the source: s = 1, R = I, t = μ2 − μ1, every point lands on the target mean."""
    _, gt = body_like(4, 9, seed=11)
    src = torch.full_like(gt, value)
    result = similarity_procrustes(src, gt)
    assert torch.isfinite(result.aligned).all()
    torch.testing.assert_close(result.scale, torch.ones(4, dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(result.rotation, torch.eye(3, dtype=torch.float64).expand(4, 3, 3), rtol=0, atol=0)
    torch.testing.assert_close(result.translation, gt.mean(1) - value, rtol=0, atol=1e-15)
    errors = pa_mpjpe(src, gt)
    for b in range(4):
        centre = _mean(gt[b].numpy())
        expected = ref_mean_error(np.tile(centre, (9, 1)), gt[b].numpy())
        assert abs(errors[b].item() - expected) < 1e-12


def test_identical_target_points_collapse_pred():
    """No spread in the target: the optimum is s ≈ 0 with every point on the target; both identical → 0."""
    pred, _ = body_like(4, 9, seed=12)
    gt = torch.full_like(pred, 0.1)
    assert pa_mpjpe(pred, gt).max().item() < 1e-12
    assert pa_mpjpe(gt, gt.clone()).max().item() == 0.0


def test_single_joint_is_pure_translation():
    pred, gt = body_like(5, 1, seed=13)
    result = similarity_procrustes(pred, gt)
    assert pa_mpjpe(pred, gt).abs().max().item() == 0.0
    torch.testing.assert_close(result.scale, torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(result.translation, (gt - pred)[:, 0])


def test_weights_fit_on_a_subset_only():
    pred, gt = body_like(8, 20, seed=14)
    fit = torch.rand(8, 20, generator=torch.Generator().manual_seed(15)) < 0.6
    fit[:, :3] = True
    corrupted = pred.clone()
    corrupted[~fit] += 100.0  # points outside the fit must not influence it
    gt_nan = gt.clone()
    gt_nan[~fit] = math.nan  # not even NaN
    for weights in (fit, fit.to(torch.float64)):
        result = similarity_procrustes(corrupted, gt_nan, weights)
        for b in range(8):
            idx = fit[b].numpy()
            _, s, r, t = ref_procrustes_spin(corrupted[b].numpy()[idx], gt[b].numpy()[idx])
            assert abs(result.scale[b].item() - s) < TOL
            np.testing.assert_allclose(result.rotation[b].numpy(), r, rtol=0, atol=TOL)
            expected = np.array([s * (r @ p) + t for p in corrupted[b].numpy()])
            np.testing.assert_allclose(result.aligned[b].numpy(), expected, rtol=0, atol=1e-8)


def test_all_zero_weights_give_identity():
    pred, gt = body_like(3, 6, seed=16)
    weights = torch.ones(3, 6, dtype=torch.bool)
    weights[1] = False
    result = similarity_procrustes(pred, gt, weights)
    torch.testing.assert_close(result.aligned[1], pred[1], rtol=0, atol=0)
    assert torch.isfinite(result.aligned).all()


def test_float32_agrees_with_float64():
    pred, gt = body_like(512, 14, seed=17)
    pred, gt = pred - pred[:, :1], gt - gt[:, :1]  # root-centred, as every protocol feeds it
    e64 = pa_mpjpe(pred, gt) * 1000
    e32 = pa_mpjpe(pred.float(), gt.float()) * 1000
    assert e32.dtype == torch.float32
    assert (e32.double() - e64).abs().max().item() < 1e-4  # mm


# --------------------------------------------------------------------------- errors and masks


def test_errors_against_loops_with_masks():
    pred, gt = body_like(6, 15, seed=18)
    mask = torch.rand(6, 15, generator=torch.Generator().manual_seed(19)) < 0.5
    mask[2] = False  # no valid point → NaN
    mask[4] = True
    fit = torch.ones_like(mask)
    fit[3, ::2] = False
    pred_nan = pred.clone()
    pred_nan[0][~mask[0]] = math.nan  # masked-out values never leak

    per_point = point_errors(pred, gt)
    for b in range(6):
        for i in range(15):
            expected = ref_mean_error(pred[b, i : i + 1].numpy(), gt[b, i : i + 1].numpy())
            assert abs(per_point[b, i].item() - expected) < 1e-15

    results = {
        "mean": mean_point_error(pred_nan, gt, mask),
        "mpjpe": mpjpe(pred, gt, mask),
        "pve": pve(pred, gt, mask),
        "pa_mpjpe": pa_mpjpe(pred, gt, mask, fit),
        "pa_pve": pa_pve(pred, gt, mask, fit),
    }
    for b in range(6):
        m, f = mask[b].numpy(), fit[b].numpy()
        plain = ref_mean_error(pred[b].numpy(), gt[b].numpy(), m)
        aligned = ref_pa_error(pred[b].numpy(), gt[b].numpy(), m, f)
        for name, got_all in results.items():
            expected = aligned if name.startswith("pa_") else plain
            got = got_all[b].item()
            if math.isnan(expected):
                assert math.isnan(got), name
            else:
                assert abs(got - expected) < TOL, name
    assert torch.isnan(results["pa_pve"][2]) and torch.isfinite(results["pa_pve"][[0, 1, 3, 4, 5]]).all()
    torch.testing.assert_close(mpjpe(pred, gt), mean_point_error(pred, gt, torch.ones_like(mask)))


def test_pa_fit_on_all_average_over_mask():
    """UBody: Procrustes on all points, mean over in-image points only."""
    pred, gt = body_like(4, 30, seed=20)
    mask = torch.zeros(4, 30, dtype=torch.bool)
    mask[:, 5:17] = True
    got = pa_pve(pred, gt, mask)
    for b in range(4):
        assert abs(got[b].item() - ref_pa_error(pred[b].numpy(), gt[b].numpy(), mask[b].numpy())) < TOL


# --------------------------------------------------------------------------- roots and parts


def test_root_helpers():
    pred, gt = body_like(3, 8, seed=21)
    root = gt[:, 4]
    centred = align_root(pred, root)
    for b in range(3):
        for i in range(8):
            np.testing.assert_allclose(centred[b, i].numpy(), pred[b, i].numpy() - root[b].numpy(), rtol=0, atol=0)
    torch.testing.assert_close(joint_root(pred, 4), pred[:, 4])
    torch.testing.assert_close(root_point(pred, 4), pred[:, 4])
    hips = np.array([(pred[b, 1].numpy() + pred[b, 2].numpy()) / 2 for b in range(3)])
    np.testing.assert_allclose(midpoint_root(pred, 1, 2).numpy(), hips, rtol=0, atol=1e-15)
    np.testing.assert_allclose(root_point(pred, (1, 2)).numpy(), hips, rtol=0, atol=1e-15)

    moved = translate_to_root(pred, pred[:, 0], gt[:, 0])
    torch.testing.assert_close(moved[:, 0], gt[:, 0])
    torch.testing.assert_close(mpjpe(moved, gt), mpjpe(align_root(pred, pred[:, 0]), align_root(gt, gt[:, 0])))


def test_part_errors_against_loops():
    """Hand-like part aligned at a wrist joint, AGORA-like joint part containing its own root, hip-midpoint root."""
    pred_v, gt_v = body_like(5, 40, seed=22)
    pred_j, gt_j = body_like(5, 25, seed=23)
    ids = [3, 7, 8, 15, 22, 39]
    mask = torch.rand(5, 40, generator=torch.Generator().manual_seed(24)) < 0.6
    mask[1] = False

    def reference(pv, gv, pj, gj, part, root, m):
        pr = pj[root] if isinstance(root, int) else (pj[root[0]] + pj[root[1]]) / 2
        gr = gj[root] if isinstance(root, int) else (gj[root[0]] + gj[root[1]]) / 2
        p = np.array([pv[i] - pr for i in part])
        g = np.array([gv[i] - gr for i in part])
        return ref_mean_error(p, g, None if m is None else [m[i] for i in part])

    cases = [
        (pred_v, gt_v, ids, 20, mask),
        (pred_v, gt_v, torch.tensor(ids), (1, 2), None),
        (pred_j, gt_j, [20, 10, 11, 12, 13], 20, None),  # root included: its zero error is in the mean
    ]
    for pv, gv, part, root, m in cases:
        got = part_errors(pv, gv, part, pred_j, gt_j, root, m)
        for b in range(5):
            sample_mask = None if m is None else m[b].numpy()
            pj, gj = pred_j[b].numpy(), gt_j[b].numpy()
            expected = reference(pv[b].numpy(), gv[b].numpy(), pj, gj, list(map(int, part)), root, sample_mask)
            if math.isnan(expected):
                assert math.isnan(got[b].item())
            else:
                assert abs(got[b].item() - expected) < TOL

    got = pa_part_errors(pred_v, gt_v, ids, mask)
    for b in range(5):
        sub_mask = mask[b].numpy()[ids]
        expected = ref_pa_error(pred_v[b].numpy()[ids], gt_v[b].numpy()[ids], sub_mask)
        assert math.isnan(got[b].item()) if math.isnan(expected) else abs(got[b].item() - expected) < TOL


def test_in_image_mask_is_strict():
    common = [[0.0, 5.0], [0.5, 5.0], [99.9, 59.9], [100.0, 30.0], [50.0, 60.0], [50.0, 0.0], [math.nan, 3.0]]
    points = torch.tensor([common + [[-1.0, 3.0]], common + [[79.0, 3.0]]])
    widths, heights = [100.0, 80.0], [60.0, 70.0]

    def reference(w, h):
        return [[bool(0 < x < w[b] and 0 < y < h[b]) for x, y in points[b].tolist()] for b in range(2)]

    assert in_image_mask(points, 100, 60).tolist() == reference([100, 100], [60, 60])
    assert in_image_mask(points, torch.tensor(widths), torch.tensor(heights)).tolist() == reference(widths, heights)
    assert in_image_mask(points, 100, 60)[0].tolist() == [False, True, True, False, False, False, False, False]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    pred, gt = body_like(64, 30, seed=25)
    mask = torch.rand(64, 30, generator=torch.Generator().manual_seed(26)) < 0.7
    mask[0] = False
    points2d = torch.rand(64, 30, 2, dtype=torch.float64) * 120 - 10
    cuda = [t.cuda() for t in (pred, gt, mask)]
    for fn in (mpjpe, pve):
        torch.testing.assert_close(fn(*cuda).cpu(), fn(pred, gt, mask), equal_nan=True)
    for fn in (pa_mpjpe, pa_pve):
        torch.testing.assert_close(fn(*cuda, cuda[2]).cpu(), fn(pred, gt, mask, mask), equal_nan=True)
    result = similarity_procrustes(cuda[0].float(), cuda[1].float())
    assert result.aligned.is_cuda and result.aligned.dtype == torch.float32
    expected = similarity_procrustes(pred, gt).aligned
    torch.testing.assert_close(result.aligned.double().cpu(), expected, rtol=0, atol=1e-5)
    ids = [1, 5, 9]
    torch.testing.assert_close(
        part_errors(cuda[0], cuda[1], ids, cuda[0], cuda[1], (1, 2), cuda[2]).cpu(),
        part_errors(pred, gt, ids, pred, gt, (1, 2), mask),
        equal_nan=True,
    )
    torch.testing.assert_close(pa_part_errors(cuda[0], cuda[1], ids).cpu(), pa_part_errors(pred, gt, ids))
    sizes = torch.full((64,), 100.0, dtype=torch.float64)
    assert torch.equal(in_image_mask(points2d.cuda(), sizes.cuda(), 90).cpu(), in_image_mask(points2d, sizes, 90))
