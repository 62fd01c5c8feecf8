"""Protocol-bound mesh-recovery evaluators: GT and predicted people -> per-person errors.

The evaluation driver (:mod:`humanbench.evaluation`) streams people from shards and
predictions into :class:`PersonBatch` es; a protocol's ``evaluate`` turns one batch into
:class:`PersonErrors` (metres, one value per person, plus per-joint errors). Body models and
index sets come from an :class:`EvalContext`, loaded once per run, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from humanbench.bodymodels import BodyModel, IndexSets, load_body_model, load_index_sets

from .mesh import pa_mpjpe, point_errors, translate_to_root
from .procrustes import similarity_procrustes

SMPL_PARAMS = ("betas", "global_orient", "body_pose")
SMPLX_PARAMS = SMPL_PARAMS + ("left_hand_pose", "right_hand_pose", "jaw_pose", "leye_pose", "reye_pose", "expression")


@dataclass
class PersonBatch:
    """N people: GT schema parameters and the matching predictions (all tensors lead with N)."""

    keys: list[str]
    person: np.ndarray  # (N,) person index within its sample
    genders: list[str]  # (N,) GT genders
    gt: dict[str, Tensor]  # schema arrays, e.g. betas (N,B), body_pose (N,BP), transl (N,3)
    pred: dict[str, Tensor]  # predicted parameters and/or "vertices" (N,V,3)
    camera_K: Tensor | None = None  # (N,3,3) intrinsics of each person's image
    image_size: Tensor | None = None  # (N,2) width, height

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class PersonErrors:
    """Per-person errors in metres: ``values[metric]`` (N,), NaN where the protocol skips the person;
    ``per_joint[metric]`` (N,J) for metrics defined per joint."""

    values: dict[str, Tensor]
    per_joint: dict[str, Tensor] = field(default_factory=dict)


class EvalContext:
    """Body models (float64, loaded once per kind and gender) and evaluation index sets for one run."""

    def __init__(self, body_models: str | Path | None = None, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float64) -> None:
        self.root = body_models
        self.device = torch.device(device)
        self.dtype = dtype
        self._models: dict[tuple[str, str], BodyModel] = {}

    def model(self, kind: str, gender: str = "neutral") -> BodyModel:
        """The ``kind`` body model of ``gender``."""
        if (kind, gender) not in self._models:
            self._models[(kind, gender)] = load_body_model(kind, gender, root=self.root, device=self.device,
                                                           dtype=self.dtype)
        return self._models[(kind, gender)]

    @cached_property
    def index_sets(self) -> IndexSets:
        """Regressors and vertex id sets (real files from the body-model folder, or synthetic)."""
        return load_index_sets(self.root)

    @property
    def synthetic(self) -> bool:
        """True when any model or index set used so far is the embedded synthetic one."""
        return any(m.synthetic for m in self._models.values()) or ("index_sets" in self.__dict__ and self.index_sets.synthetic)

    def tensor(self, array: np.ndarray) -> Tensor:
        """A numpy array as a tensor of this context's dtype and device."""
        return torch.as_tensor(array, dtype=self.dtype, device=self.device)

    def forward(self, kind: str, params: dict[str, Tensor], genders: list[str]) -> tuple[Tensor, Tensor]:
        """Pose people without translation, each with the model of their gender: vertices (N,V,3), joints (N,J,3)."""
        names = SMPLX_PARAMS if kind == "smplx" else SMPL_PARAMS
        labels = np.asarray(genders)
        vertices = joints = None
        for gender in np.unique(labels):
            index = torch.as_tensor(np.flatnonzero(labels == gender), device=self.device)
            inputs = {n: params[n][index].to(self.device, self.dtype) for n in names if n in params}
            out = self.model(kind, str(gender))(**inputs)
            if vertices is None:
                vertices = out.vertices.new_empty((len(labels), *out.vertices.shape[1:]))
                joints = out.joints.new_empty((len(labels), *out.joints.shape[1:]))
            vertices[index], joints[index] = out.vertices, out.joints
        return vertices, joints

    def gt_mesh(self, kind: str, batch: PersonBatch, gendered: bool) -> tuple[Tensor, Tensor]:
        """GT vertices and model joints without translation (gendered or neutral models)."""
        return self.forward(kind, batch.gt, batch.genders if gendered else ["neutral"] * len(batch))

    def pred_mesh(self, kind: str, batch: PersonBatch) -> Tensor:
        """Predicted vertices (N,V,3): given vertices, else the neutral model posed without translation."""
        if "vertices" in batch.pred:
            return batch.pred["vertices"].to(self.device, self.dtype)
        return self.forward(kind, batch.pred, ["neutral"] * len(batch))[0]


def regress(regressor: np.ndarray | Tensor, vertices: Tensor) -> Tensor:
    """Joints from vertices: (J,V) regressor, (N,V,3) vertices -> (N,J,3)."""
    matrix = torch.as_tensor(regressor, dtype=vertices.dtype, device=vertices.device)
    return torch.einsum("jv,nvc->njc", matrix, vertices)


def joint_errors(pred: Tensor, gt: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """MPJPE and PA-MPJPE per person (N,) and per joint (N,J) of already root-aligned joints."""
    aligned = similarity_procrustes(pred, gt).aligned
    per_joint = {"mpjpe": point_errors(pred, gt), "pa_mpjpe": point_errors(aligned, gt)}
    return {name: errors.mean(dim=1) for name, errors in per_joint.items()}, per_joint


# --------------------------------------------------------------------------- 3DPW family

H36M_TO_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
"""SPIN's H36M -> LSP-14 order (protocols.md §0.3)."""
LSP14_NAMES = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow", "r_shoulder",
               "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top")
SMPL_KINEMATIC_14 = [1, 2, 4, 5, 7, 8, 12, 15, 16, 17, 18, 19, 20, 21]
"""SMPLer-X's 14 kinematic joints of the SMPL/SMPL-X trees (protocols.md §1.5)."""
SMPL_KINEMATIC_14_NAMES = ("l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle", "neck", "head", "l_shoulder",
                           "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist")


def _h36m_j14(context: EvalContext, vertices: Tensor) -> Tensor:
    """SPIN joints: H36M-regressed, pelvis (H36M 0) subtracted, LSP-14 kept. (N,6890,3) -> (N,14,3)."""
    h36m = regress(context.index_sets.J_regressor_h36m, vertices)
    return h36m[:, H36M_TO_J14] - h36m[:, :1]


def evaluate_3dpw_spin(batch: PersonBatch, context: EvalContext) -> PersonErrors:
    """SPIN (protocols.md §1.1): gendered GT and neutral pred SMPL, H36M-regressed 14 joints, own pelvis."""
    gt = _h36m_j14(context, context.gt_mesh("smpl", batch, gendered=True)[0])
    pred = _h36m_j14(context, context.pred_mesh("smpl", batch))
    values, per_joint = joint_errors(pred, gt)
    return PersonErrors(values, per_joint)


def evaluate_3dpw_cliff(batch: PersonBatch, context: EvalContext) -> PersonErrors:
    """CLIFF / Meta-HMR (§1.4): SPIN joints + PVE over all 6890 vertices, both meshes untranslated and
    NOT pelvis-aligned (PVE definition 1 of §1.2)."""
    gt_vertices = context.gt_mesh("smpl", batch, gendered=True)[0]
    pred_vertices = context.pred_mesh("smpl", batch)
    values, per_joint = joint_errors(_h36m_j14(context, pred_vertices), _h36m_j14(context, gt_vertices))
    values["pve"] = point_errors(pred_vertices, gt_vertices).mean(dim=1)
    return PersonErrors(values, per_joint)


def evaluate_3dpw_smplerx(batch: PersonBatch, context: EvalContext) -> PersonErrors:
    """SMPLer-X (§1.5): GT SMPL J_regressor joints vs pred SMPL-X J_regressor joints, 14 kinematic joints;
    MPJPE after moving the pred SMPL-X pelvis onto the GT SMPL pelvis, PA-MPJPE on the 14 joints."""
    gt_vertices = context.gt_mesh("smpl", batch, gendered=True)[0]
    gt_joints = regress(context.model("smpl").smplx_model.J_regressor, gt_vertices)
    pred_joints = regress(context.model("smplx").smplx_model.J_regressor, context.pred_mesh("smplx", batch))
    pred_joints = translate_to_root(pred_joints, pred_joints[:, 0], gt_joints[:, 0])
    pred14, gt14 = pred_joints[:, SMPL_KINEMATIC_14], gt_joints[:, SMPL_KINEMATIC_14]
    per_joint = {"mpjpe": point_errors(pred14, gt14),
                 "pa_mpjpe": point_errors(similarity_procrustes(pred14, gt14).aligned, gt14)}
    values = {"mpjpe": per_joint["mpjpe"].mean(dim=1), "pa_mpjpe": pa_mpjpe(pred14, gt14)}
    return PersonErrors(values, per_joint)
