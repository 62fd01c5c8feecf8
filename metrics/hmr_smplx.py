"""Whole-body SMPL-X evaluators of the Hand4Whole / OSX / SMPLer-X / ExPose family (EHF, UBody).

Per person (protocols.md §3, §4), all in metres:

- ``pa_pve_all``: Procrustes on all vertices; ``pve_all``: pred translated so its SMPL-X
  ``J_regressor`` pelvis (row 0) meets the GT pelvis.
- ``pa_pve_hands`` / ``pve_hands``: each hand's 778 MANO vertices, Procrustes on that hand, or
  translation by the wrist (rows 20 / 21); the person's value is the mean over the hands that
  have a valid vertex.
- ``pa_pve_face`` / ``pve_face``: the 5023 FLAME vertices, Procrustes on the face, or translation
  by the neck (row 12).
- ``pa_mpjpe_body``: the 14 ``SMPLX_to_J14`` joints, Procrustes; ``pa_mpjpe_hands``: per hand the
  21-joint set (wrist, 15 finger joints of the ``J_regressor``, 5 fingertip vertices), Procrustes,
  mean over the valid hands.

An optional ``in_view`` test (UBody: GT points that project strictly inside the image) restricts
every average to the GT vertices / joints it accepts; Procrustes still fits on the whole part. A
part with no valid point is NaN (the person is skipped for it).
"""

from __future__ import annotations

from typing import Callable

import torch
from smplx.vertex_ids import vertex_ids
from torch import Tensor

from .hmr import EvalContext, PersonBatch, PersonErrors, regress
from .mesh import in_image_mask, mean_point_error, pa_part_errors, pa_pve, translate_to_root
from .procrustes import similarity_procrustes

PELVIS, NECK, LEFT_WRIST, RIGHT_WRIST = 0, 12, 20, 21
HAND_JOINTS = {"left": [20, *range(25, 40)], "right": [21, *range(40, 55)]}
"""Wrist + 15 finger joints of each hand in the SMPL-X joint order."""
FINGERTIPS = {side: [vertex_ids["smplx"][f"{side[0]}{finger}"] for finger in ("thumb", "index", "middle", "ring", "pinky")]
              for side in ("left", "right")}
"""The 5 fingertip vertex ids per hand that complete the 21-joint hand sets (as smplx's vertex joints)."""


def _nanmean(*values: Tensor) -> Tensor:
    """Element-wise mean of (N,) tensors ignoring NaN; NaN where all are NaN."""
    stacked = torch.stack(values)
    valid = ~torch.isnan(stacked)
    return torch.where(valid, stacked, torch.zeros_like(stacked)).sum(0) / valid.sum(0)


def _translated_part_error(pred: Tensor, gt: Tensor, ids: Tensor, pred_root: Tensor, gt_root: Tensor,
                           mask: Tensor | None) -> Tensor:
    """Mean error over ``ids`` after moving pred's root onto GT's root. (N,V,3) -> (N,)."""
    moved = translate_to_root(pred[:, ids], pred_root, gt_root)
    return mean_point_error(moved, gt[:, ids], None if mask is None else mask[:, ids])


def _hand_joints(context: EvalContext, vertices: Tensor, side: str) -> Tensor:
    """(N,V,3) SMPL-X vertices -> (N,21,3) hand joints: wrist, 15 finger joints, 5 fingertips."""
    joints = regress(context.model("smplx").smplx_model.J_regressor[HAND_JOINTS[side]], vertices)
    return torch.cat([joints, vertices[:, FINGERTIPS[side]]], dim=1)


InView = Callable[[Tensor], Tensor]
"""(N,P,3) GT points -> (N,P) bool: the points an average may use."""


def smplx_part_errors(context: EvalContext, pred: Tensor, gt: Tensor, in_view: InView | None = None) -> dict[str, Tensor]:
    """All whole-body errors of the module docstring for (N,10475,3) pred and GT vertices."""
    sets = context.index_sets
    mask = None if in_view is None else in_view(gt)
    regressor = context.model("smplx").smplx_model.J_regressor
    pred_joints, gt_joints = regress(regressor, pred), regress(regressor, gt)
    device = pred.device
    hands = {"left": torch.as_tensor(sets.mano_left_vertex_ids, device=device),
             "right": torch.as_tensor(sets.mano_right_vertex_ids, device=device)}
    face = torch.as_tensor(sets.flame_vertex_ids, device=device)
    everything = torch.arange(pred.shape[1], device=device)
    wrists = {"left": LEFT_WRIST, "right": RIGHT_WRIST}
    out = {
        "pa_pve_all": pa_pve(pred, gt, mask),
        "pve_all": _translated_part_error(pred, gt, everything, pred_joints[:, PELVIS], gt_joints[:, PELVIS], mask),
        "pa_pve_face": pa_part_errors(pred, gt, face, mask),
        "pve_face": _translated_part_error(pred, gt, face, pred_joints[:, NECK], gt_joints[:, NECK], mask),
        "pa_pve_hands": _nanmean(*(pa_part_errors(pred, gt, ids, mask) for ids in hands.values())),
        "pve_hands": _nanmean(*(_translated_part_error(pred, gt, ids, pred_joints[:, wrists[s]], gt_joints[:, wrists[s]],
                                                       mask) for s, ids in hands.items())),
    }
    j14_pred, j14_gt = regress(sets.smplx_to_j14, pred), regress(sets.smplx_to_j14, gt)
    out["pa_mpjpe_body"] = pa_pve(j14_pred, j14_gt, None if in_view is None else in_view(j14_gt))
    hand_errors = []
    for side in ("left", "right"):
        hp, hg = _hand_joints(context, pred, side), _hand_joints(context, gt, side)
        aligned = similarity_procrustes(hp, hg).aligned
        hand_errors.append(mean_point_error(aligned, hg, None if in_view is None else in_view(hg)))
    out["pa_mpjpe_hands"] = _nanmean(*hand_errors)
    return out


def evaluate_ehf_expose(batch: PersonBatch, context: EvalContext) -> PersonErrors:
    """EHF (§4): GT = the aligned scan-fit SMPL-X mesh stored in the sample's ``vertices``; pred = neutral SMPL-X."""
    gt = batch.gt["vertices"].to(context.device, context.dtype)
    return PersonErrors(smplx_part_errors(context, context.pred_mesh("smplx", batch), gt))


def evaluate_ubody_osx(batch: PersonBatch, context: EvalContext) -> PersonErrors:
    """UBody (§3): neutral SMPL-X GT with its camera translation, errors over the vertices that project
    strictly inside the image (Procrustes still fitted on whole parts)."""
    params = dict(batch.gt)
    vertices, _ = context.forward("smplx", params, ["neutral"] * len(batch))
    gt = vertices + params["transl"].to(context.device, context.dtype)[:, None]
    K = batch.camera_K.to(context.device, context.dtype)
    size = batch.image_size.to(context.device, context.dtype)

    def in_image(points: Tensor) -> Tensor:
        projected = torch.einsum("nij,npj->npi", K, points)
        pixels = projected[..., :2] / projected[..., 2:]
        return in_image_mask(pixels, size[:, 0], size[:, 1]) & (points[..., 2] > 0)

    return PersonErrors(smplx_part_errors(context, context.pred_mesh("smplx", batch), gt, in_image))
