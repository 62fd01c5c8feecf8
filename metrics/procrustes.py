"""Batched similarity Procrustes (Umeyama) alignment, as used by every PA-* metric.

The maths is the SPIN / HMR / ExPose / AGORA family (``protocols.md`` §0.1), written
for a batch of point sets with column vectors ``x`` (row-vector storage ``(B, N, 3)``):

    μ1, μ2  = means of source and target
    X1, X2  = centred source and target (3 × N)
    K       = X1 · X2ᵀ                               (3 × 3)
    K       = U S Vᵀ                                  (SVD)
    Z       = diag(1, 1, sign det(U Vᵀ))             (reflection fix: det R = +1)
    R       = V Z Uᵀ
    s       = trace(R K) / Σ‖X1‖²
    t       = μ2 − s R μ1
    aligned = s R x + t

The mks0601 family (``rigid_transform_3D``) is the same estimator; the tests check both.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

DEGENERATE_SPREAD = 64.0
"""A source set whose RMS spread about its mean is at most ``DEGENERATE_SPREAD · eps ·
max|coordinate|`` (eps of the dtype) counts as a single point: its spread is
indistinguishable from the rounding error of computing the mean."""


class ProcrustesResult(NamedTuple):
    """Similarity transform mapping ``source`` onto ``target``: ``aligned = s R x + t``.

    Attributes:
        aligned: (B, N, 3) the transformed source points (all points, fitted or not).
        scale: (B,) isotropic scale ``s``.
        rotation: (B, 3, 3) proper rotation ``R`` (det +1), acting on column vectors.
        translation: (B, 3) translation ``t``.
    """

    aligned: Tensor
    scale: Tensor
    rotation: Tensor
    translation: Tensor


def _weighted_mean(points: Tensor, weights: Tensor, count: Tensor) -> Tensor:
    """Weighted mean of a batch of point sets; points of weight 0 may hold anything (NaN too).

    Args:
        points: (B, N, 3).
        weights: (B, N, 1).
        count: (B, 1, 1) sum of the weights, nonzero.

    Returns:
        (B, 1, 3).
    """
    return torch.where(weights > 0, weights * points, 0.0).sum(dim=-2, keepdim=True) / count


def _det3(matrices: Tensor) -> Tensor:
    """Determinant of 3 × 3 matrices as the triple product of their rows (much faster than batched LU).

    Args:
        matrices: (B, 3, 3).

    Returns:
        (B,).
    """
    return (matrices[:, 0] * torch.linalg.cross(matrices[:, 1], matrices[:, 2])).sum(dim=-1)


def similarity_procrustes(source: Tensor, target: Tensor, weights: Tensor | None = None) -> ProcrustesResult:
    """Least-squares similarity transform (rotation, isotropic scale, translation) of source onto target.

    Exactly the SPIN family computation (module docstring), batched with
    ``torch.linalg.svd``; outputs follow the inputs' dtype and device (float64
    recommended; float32 PA-MPJPE agrees with it to a few 1e-5 mm on body-sized inputs).

    With ``weights``, the means, ``K`` and ``Σ‖X1‖²`` are weighted sums, so points of
    weight 0 have no influence on the fit, even if NaN (0/1 weights = fitting on a
    subset), while the transform is still applied to every point in ``aligned``.

    Degenerate inputs (never NaN):
        * Source without spread (N = 1, all points identical up to rounding, see
          :data:`DEGENERATE_SPREAD`): the optimal scale would be undefined (0/0) and every
          choice of ``s, R`` gives the same ``aligned`` (all points at the target mean).
          We return the pure translation ``s = 1, R = I, t = μ2 − μ1``; for N = 1 this puts
          the point exactly on its target (error 0).
        * All weights of a sample zero (nothing to fit): the identity transform
          (``aligned = source``).
        * Target without spread: ``K ≈ 0`` so ``s ≈ 0`` and every point lands on the
          target mean, which is the least-squares optimum.
        * Collinear / planar sets: the reflection fix still makes ``det R = +1``, so a
          mirrored non-planar set is *not* aligned (a mirrored planar set is: that is a
          rotation). With a planar set ``R`` is unique; with a collinear source only its
          action on the line is, and ``aligned`` is unique. If ``K`` has rank 1 while the
          source is not collinear (collinear target), ``s`` and the least-squares residual
          are unique but ``R`` and ``aligned`` are not (any rotation about the target line
          is optimal): per-point errors then depend on the SVD implementation, in every
          reference code alike.

    Args:
        source: (B, N, 3) points to move (the prediction).
        target: (B, N, 3) points to match (the ground truth).
        weights: (B, N) non-negative weights (bool or float; 0/1 in all protocols), or
            None for all ones.

    Returns:
        ProcrustesResult with aligned (B, N, 3), scale (B,), rotation (B, 3, 3),
        translation (B, 3).
    """
    dtype = torch.promote_types(source.dtype, target.dtype)
    source, target = source.to(dtype), target.to(dtype)
    batch = source.shape[0]
    if weights is None:
        w = torch.ones(source.shape[:-1] + (1,), dtype=dtype, device=source.device)
    else:
        w = weights.to(dtype).unsqueeze(-1).expand(source.shape[:-1] + (1,))
    count = w.sum(dim=-2, keepdim=True)  # (B, 1, 1)
    # All-zero weights: both means become 0 and the degenerate branch below gives the identity.
    count = torch.where(count > 0, count, torch.ones_like(count))

    mu1 = _weighted_mean(source, w, count)  # (B, 1, 3)
    mu2 = _weighted_mean(target, w, count)
    x1 = source - mu1
    x2 = target - mu2

    fitted = w > 0
    x1_fit = torch.where(fitted, x1, 0.0)  # unfitted points (possibly NaN) drop out of every sum
    k = x1_fit.mT @ torch.where(fitted, w * x2, 0.0)  # (B, 3, 3) = X1 · X2ᵀ
    # The 3 × 3 SVD runs in float64 whatever the input dtype: negligible cost, and float32
    # inputs then lose only the rounding of the inputs and of the sums.
    u, _, vh = torch.linalg.svd(k.to(torch.float64))
    det_sign = torch.sign(_det3(u @ vh))  # (B,) ±1: U and V are orthogonal
    z = torch.stack([torch.ones_like(det_sign), torch.ones_like(det_sign), det_sign], dim=-1)  # diag of Z
    rotation = ((vh.mT * z[:, None, :]) @ u.mT).to(dtype)  # V Z Uᵀ

    variance = (w * x1_fit.square()).sum(dim=(-2, -1))  # (B,) Σ‖X1‖²
    ones = torch.ones_like(variance)
    max_coordinate = torch.where(fitted, source.abs(), 0.0).amax(dim=(-2, -1))  # (B,)
    spread_limit = DEGENERATE_SPREAD * torch.finfo(dtype).eps * max_coordinate
    degenerate = variance <= count.reshape(batch) * spread_limit.square()
    trace_rk = torch.diagonal(rotation @ k, dim1=-2, dim2=-1).sum(dim=-1)
    scale = torch.where(degenerate, ones, trace_rk / torch.where(degenerate, ones, variance))
    eye = torch.eye(3, dtype=dtype, device=source.device).expand(batch, 3, 3)
    rotation = torch.where(degenerate[:, None, None], eye, rotation)

    translation = (mu2 - scale[:, None, None] * (mu1 @ rotation.mT)).squeeze(-2)
    aligned = scale[:, None, None] * (x1 @ rotation.mT) + mu2
    return ProcrustesResult(aligned=aligned, scale=scale, rotation=rotation, translation=translation)
