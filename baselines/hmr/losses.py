"""The HMR regressor's losses: SMPL parameters, 3D joints through the body model, 2D keypoints.

Every term is a per-person squared error averaged over the people with a weight (people of
samples without a valid person weigh 0; 2D joints weigh their confidence).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from smplx.lbs import batch_rigid_transform, blend_shapes, vertices2joints
from torch import Tensor

from humanbench.bodymodels import BodyModel

from .geometry import weak_perspective

TERMS = ("kp2d", "joints3d", "orient", "pose", "betas")


def _mean(per_person: Tensor, weight: Tensor) -> Tensor:
    return (per_person * weight).sum() / weight.sum().clamp_min(1.0)


def pelvis_relative_joints(body: BodyModel, rotmat: Tensor, betas: Tensor) -> Tensor:
    """The 24 SMPL joints (B, 24, 3) of rotations (B, 24, 3, 3) and betas (B, 10), pelvis at the origin.

    The same joints as the body model's forward pass (``joints[:, :24]``), computed with smplx's own
    shape blending, joint regression (applied to the shape directions, which is the same linear map) and
    kinematic chain, but without blending and skinning the mesh, which the joints do not need.
    """
    smpl = body.smplx_model
    template = vertices2joints(smpl.J_regressor, smpl.v_template[None])
    directions = torch.einsum("jv,vcs->jcs", smpl.J_regressor, smpl.shapedirs[..., :betas.shape[1]])
    rest = template + blend_shapes(betas, directions)
    joints, _ = batch_rigid_transform(rotmat, rest, smpl.parents, dtype=rotmat.dtype)
    return joints - joints[:, :1]


def hmr_losses(pred: Mapping[str, Tensor], target: Mapping[str, Tensor], body: BodyModel,
               weights: Mapping[str, float]) -> dict[str, Tensor]:
    """Loss terms and their weighted sum ``loss``.

    ``pred``: ``rotmat`` (B, 24, 3, 3), ``betas`` (B, 10), ``cam`` (B, 3). ``target``: the
    batched :func:`~humanbench.baselines.hmr.data.training_item` fields. ``weights``: one per
    name in :data:`TERMS`.
    """
    w = target["weight"]
    joints = pelvis_relative_joints(body, pred["rotmat"], pred["betas"])
    kp = target["joints2d"]
    kp_err = ((weak_perspective(joints, pred["cam"]) - kp[..., :2]) ** 2).sum(-1)
    terms = {
        "kp2d": _mean((kp_err * kp[..., 2]).mean(-1), w),
        "joints3d": _mean(((joints - target["joints3d"]) ** 2).sum(-1).mean(-1), w * target["has_joints3d"]),
        "orient": _mean(((pred["rotmat"][:, 0] - target["rotmat"][:, 0]) ** 2).sum((-1, -2)), w),
        "pose": _mean(((pred["rotmat"][:, 1:] - target["rotmat"][:, 1:]) ** 2).sum((-1, -2)).mean(-1), w),
        "betas": _mean(((pred["betas"] - target["betas"]) ** 2).mean(-1), w),
    }
    terms["loss"] = torch.stack([weights[name] * terms[name] for name in TERMS]).sum()
    return terms
