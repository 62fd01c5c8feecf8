"""Whole-body SMPL-X errors (EHF / UBody family) against a straightforward per-person numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from smplx.vertex_ids import vertex_ids

from humanbench.metrics.hmr import EvalContext
from humanbench.metrics.hmr_smplx import smplx_part_errors


def procrustes_np(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SPIN-style similarity alignment of x onto y (independent numpy implementation)."""
    mx, my = x.mean(0), y.mean(0)
    a, b = x - mx, y - my
    u, s, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    scale = np.trace(rot @ a.T @ b) / (a ** 2).sum()
    return scale * a @ rot.T + my


def mean_err(a: np.ndarray, b: np.ndarray, keep: np.ndarray | None = None) -> float:
    err = np.sqrt(((a - b) ** 2).sum(-1))
    if keep is not None:
        if not keep.any():
            return float("nan")
        err = err[keep]
    return float(err.mean())


def reference(context: EvalContext, pred: np.ndarray, gt: np.ndarray, in_view) -> dict[str, list[float]]:
    sets = context.index_sets
    reg = context.model("smplx").smplx_model.J_regressor.numpy()
    out: dict[str, list[float]] = {k: [] for k in ("pa_pve_all", "pve_all", "pa_pve_hands", "pve_hands", "pa_pve_face",
                                                   "pve_face", "pa_mpjpe_body", "pa_mpjpe_hands")}
    hand_ids = {"l": sets.mano_left_vertex_ids, "r": sets.mano_right_vertex_ids}
    wrist = {"l": 20, "r": 21}
    fingers = {"l": [20, *range(25, 40)], "r": [21, *range(40, 55)]}
    tips = {s: [vertex_ids["smplx"][f"{s}{f}"] for f in ("thumb", "index", "middle", "ring", "pinky")] for s in "lr"}
    for p, g in zip(pred, gt):
        pj, gj = reg @ p, reg @ g
        keep = in_view(g)
        out["pa_pve_all"].append(mean_err(procrustes_np(p, g), g, keep))
        out["pve_all"].append(mean_err(p - pj[0] + gj[0], g, keep))
        face = sets.flame_vertex_ids
        out["pa_pve_face"].append(mean_err(procrustes_np(p[face], g[face]), g[face], keep[face]))
        out["pve_face"].append(mean_err(p[face] - pj[12] + gj[12], g[face], keep[face]))
        pa_h, h, paj_h = [], [], []
        for s in "lr":
            ids = hand_ids[s]
            pa_h.append(mean_err(procrustes_np(p[ids], g[ids]), g[ids], keep[ids]))
            h.append(mean_err(p[ids] - pj[wrist[s]] + gj[wrist[s]], g[ids], keep[ids]))
            hp = np.concatenate([pj[fingers[s]], p[tips[s]]])
            hg = np.concatenate([gj[fingers[s]], g[tips[s]]])
            paj_h.append(mean_err(procrustes_np(hp, hg), hg, in_view(hg)))
        out["pa_pve_hands"].append(np.nanmean(pa_h) if not np.isnan(pa_h).all() else np.nan)
        out["pve_hands"].append(np.nanmean(h) if not np.isnan(h).all() else np.nan)
        out["pa_mpjpe_hands"].append(np.nanmean(paj_h) if not np.isnan(paj_h).all() else np.nan)
        j14p, j14g = sets.smplx_to_j14 @ p, sets.smplx_to_j14 @ g
        out["pa_mpjpe_body"].append(mean_err(procrustes_np(j14p, j14g), j14g, in_view(j14g)))
    return out


@pytest.fixture(scope="module")
def meshes():
    context = EvalContext()
    model = context.model("smplx")
    gen = torch.Generator().manual_seed(1)
    def pose(scale):
        return {"betas": scale * torch.randn(4, 10, generator=gen, dtype=torch.float64),
                "body_pose": scale * torch.randn(4, 63, generator=gen, dtype=torch.float64),
                "left_hand_pose": scale * torch.randn(4, 45, generator=gen, dtype=torch.float64),
                "global_orient": scale * torch.randn(4, 3, generator=gen, dtype=torch.float64)}
    with torch.no_grad():
        gt = model(**pose(0.3)).vertices
        pred = model(**pose(0.3)).vertices
    return context, pred, gt


@pytest.mark.parametrize("view", ["all", "half"])
def test_whole_body_errors_match_reference(meshes, view) -> None:
    context, pred, gt = meshes
    if view == "all":
        in_view_t, in_view_np = None, (lambda pts: np.ones(len(pts), bool))
    else:  # only points on the +x side count (hands: one side only -> the other hand is skipped)
        in_view_t, in_view_np = (lambda pts: pts[..., 0] > 0), (lambda pts: pts[..., 0] > 0)
    with torch.no_grad():
        ours = smplx_part_errors(context, pred, gt, in_view_t)
    ref = reference(context, pred.numpy(), gt.numpy(), in_view_np)
    for name, values in ref.items():
        np.testing.assert_allclose(ours[name].numpy(), np.asarray(values), rtol=1e-9, atol=1e-12, err_msg=name)


def test_identical_meshes_have_zero_error(meshes) -> None:
    context, _, gt = meshes
    with torch.no_grad():
        errors = smplx_part_errors(context, gt.clone(), gt)
    for name, values in errors.items():
        assert values.abs().max() < 1e-9, name
