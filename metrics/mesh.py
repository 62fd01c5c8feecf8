"""Per-sample joint / vertex errors for mesh recovery (MPJPE, PA-MPJPE, PVE, PA-PVE, part errors).

All functions take batched tensors (B = samples, N = points), work on any device, and
return one value per sample in the input unit (metres in, metres out; callers multiply by
1000 for mm and average over samples, ``protocols.md`` §0.2).

Masks are (B, N) bool: a per-sample mean runs over the points where the mask is True. A
sample with no valid point gets NaN, which callers use to skip it (UBody hands/face, §3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .procrustes import similarity_procrustes

Root = int | tuple[int, int]
"""A root joint: one joint index, or a pair of joint indices whose midpoint is the root."""


def point_errors(pred: Tensor, gt: Tensor) -> Tensor:
    """Euclidean distance per point.

    Args:
        pred: (B, N, 3).
        gt: (B, N, 3).

    Returns:
        (B, N) ``‖pred − gt‖``.
    """
    return torch.linalg.vector_norm(pred - gt, dim=-1)


def mean_point_error(pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean Euclidean distance over the (valid) points of each sample.

    Args:
        pred: (B, N, 3).
        gt: (B, N, 3).
        mask: (B, N) bool, points to average; None for all. Values at masked-out points
            never leak into the result (even NaN/inf).

    Returns:
        (B,) mean of ``‖pred − gt‖`` over the valid points; NaN for a sample without any
        valid point.
    """
    errors = point_errors(pred, gt)
    if mask is None:
        return errors.mean(dim=-1)
    mask = mask.expand(errors.shape)
    total = torch.where(mask, errors, torch.zeros_like(errors)).sum(dim=-1)
    return total / mask.sum(dim=-1).to(errors.dtype)


def mpjpe(pred_joints: Tensor, gt_joints: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean per-joint position error, no alignment (callers root-align first).

    Args:
        pred_joints: (B, J, 3).
        gt_joints: (B, J, 3).
        mask: (B, J) bool joints to average, None for all.

    Returns:
        (B,) error per sample; NaN where no joint is valid.
    """
    return mean_point_error(pred_joints, gt_joints, mask)


def pa_mpjpe(
    pred_joints: Tensor, gt_joints: Tensor, mask: Tensor | None = None, fit_mask: Tensor | None = None
) -> Tensor:
    """Procrustes-aligned MPJPE ("reconstruction error"): similarity-align pred onto GT, then MPJPE.

    Args:
        pred_joints: (B, J, 3).
        gt_joints: (B, J, 3).
        mask: (B, J) bool joints to average, None for all.
        fit_mask: (B, J) bool joints the Procrustes fit uses, None for all (independent
            of ``mask``: UBody fits on all points and averages over in-image ones).

    Returns:
        (B,) error per sample; NaN where no joint is valid.
    """
    aligned = similarity_procrustes(pred_joints, gt_joints, fit_mask).aligned
    return mean_point_error(aligned, gt_joints, mask)


def pve(pred_vertices: Tensor, gt_vertices: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean per-vertex error (MPVPE / V2V), no alignment (callers root-align first).

    Args:
        pred_vertices: (B, V, 3).
        gt_vertices: (B, V, 3).
        mask: (B, V) bool vertices to average, None for all.

    Returns:
        (B,) error per sample; NaN where no vertex is valid.
    """
    return mean_point_error(pred_vertices, gt_vertices, mask)


def pa_pve(
    pred_vertices: Tensor, gt_vertices: Tensor, mask: Tensor | None = None, fit_mask: Tensor | None = None
) -> Tensor:
    """Procrustes-aligned per-vertex error (PA-MPVPE / PA-V2V).

    Args:
        pred_vertices: (B, V, 3).
        gt_vertices: (B, V, 3).
        mask: (B, V) bool vertices to average, None for all.
        fit_mask: (B, V) bool vertices the Procrustes fit uses, None for all.

    Returns:
        (B,) error per sample; NaN where no vertex is valid.
    """
    aligned = similarity_procrustes(pred_vertices, gt_vertices, fit_mask).aligned
    return mean_point_error(aligned, gt_vertices, mask)


def align_root(points: Tensor, root: Tensor) -> Tensor:
    """Express points relative to a root.

    Args:
        points: (B, N, 3).
        root: (B, 3).

    Returns:
        (B, N, 3) ``points − root``.
    """
    return points - root[:, None, :]


def joint_root(joints: Tensor, index: int) -> Tensor:
    """Root at one joint (SPIN H36M pelvis 0, SMPL-X pelvis 0, wrists 20/21, neck 12).

    Args:
        joints: (B, J, 3).
        index: joint index.

    Returns:
        (B, 3).
    """
    return joints[:, index]


def midpoint_root(joints: Tensor, first: int, second: int) -> Tensor:
    """Root at the midpoint of two joints (AGORA pelvis = midpoint of hips 1 and 2).

    Args:
        joints: (B, J, 3).
        first: joint index.
        second: joint index.

    Returns:
        (B, 3).
    """
    return 0.5 * (joints[:, first] + joints[:, second])


def root_point(joints: Tensor, root: Root) -> Tensor:
    """Root given as a joint index or as a pair of joint indices (their midpoint).

    Args:
        joints: (B, J, 3).
        root: ``int`` for :func:`joint_root`, ``(first, second)`` for :func:`midpoint_root`.

    Returns:
        (B, 3).
    """
    if isinstance(root, int):
        return joint_root(joints, root)
    return midpoint_root(joints, *root)


def translate_to_root(pred: Tensor, pred_root: Tensor, gt_root: Tensor) -> Tensor:
    """Translate pred so that its root coincides with the GT root (SMPLer-X family MPVPE).

    Errors against GT afterwards equal those of ``align_root`` applied to each side.

    Args:
        pred: (B, N, 3).
        pred_root: (B, 3).
        gt_root: (B, 3).

    Returns:
        (B, N, 3) ``pred − pred_root + gt_root``.
    """
    return pred + (gt_root - pred_root)[:, None, :]


def _as_ids(ids: Tensor | Sequence[int], device: torch.device) -> Tensor:
    """Point ids as a (P,) int64 tensor on ``device``."""
    return torch.as_tensor(ids, dtype=torch.long, device=device)


def part_errors(
    pred_points: Tensor,
    gt_points: Tensor,
    ids: Tensor | Sequence[int],
    pred_joints: Tensor,
    gt_joints: Tensor,
    root: Root,
    mask: Tensor | None = None,
) -> Tensor:
    """Root-aligned mean error of a point subset (hands at the wrist, face at the neck, AGORA body at the hips).

    Each side is expressed relative to its own root (equivalently pred is translated
    onto the GT root), then the error is averaged over ``ids``. If ``ids`` index the
    joints and contain the root itself (AGORA hand/face joints), that point's zero error
    is part of the mean, as in the official code.

    Args:
        pred_points: (B, N, 3) vertices or joints the ids index.
        gt_points: (B, N, 3).
        ids: (P,) point ids of the part (e.g. MANO or FLAME vertex ids).
        pred_joints: (B, J, 3) joints the root is taken from (may be ``pred_points``).
        gt_joints: (B, J, 3).
        root: joint index (SMPL-X wrists 20/21, neck 12) or a pair whose midpoint is the root.
        mask: (B, N) bool over all N points (e.g. in-image), None for all.

    Returns:
        (B,) error per sample; NaN where no point of the part is valid.
    """
    index = _as_ids(ids, pred_points.device)
    pred = align_root(pred_points[:, index], root_point(pred_joints, root))
    gt = align_root(gt_points[:, index], root_point(gt_joints, root))
    return mean_point_error(pred, gt, None if mask is None else mask[:, index])


def pa_part_errors(
    pred_points: Tensor, gt_points: Tensor, ids: Tensor | Sequence[int], mask: Tensor | None = None
) -> Tensor:
    """Procrustes-aligned mean error of a point subset, the fit using the part's points only.

    Args:
        pred_points: (B, N, 3).
        gt_points: (B, N, 3).
        ids: (P,) point ids of the part.
        mask: (B, N) bool over all N points, averaged over (not used for the fit); None for all.

    Returns:
        (B,) error per sample; NaN where no point of the part is valid.
    """
    index = _as_ids(ids, pred_points.device)
    return pa_pve(pred_points[:, index], gt_points[:, index], None if mask is None else mask[:, index])


def in_image_mask(points2d: Tensor, width: float | Tensor, height: float | Tensor) -> Tensor:
    """Points strictly inside the image, ``0 < x < W`` and ``0 < y < H`` (UBody, §3).

    Args:
        points2d: (B, N, 2) pixel coordinates (x, y).
        width: image width, a number or a (B,) tensor.
        height: image height, a number or a (B,) tensor.

    Returns:
        (B, N) bool; NaN coordinates are outside.
    """
    like = dict(dtype=points2d.dtype, device=points2d.device)
    w = torch.as_tensor(width, **like).reshape(-1, 1)
    h = torch.as_tensor(height, **like).reshape(-1, 1)
    x, y = points2d[..., 0], points2d[..., 1]
    return (x > 0) & (x < w) & (y > 0) & (y < h)
