"""Rotation representations and the weak-perspective camera of the HMR regressor."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor


def rot6d_to_rotmat(x: Tensor) -> Tensor:
    """6D rotations (..., 6) -> rotation matrices (..., 3, 3).

    SPIN / SMPLer-X convention: the 6 numbers are read as a (3, 2) matrix whose two columns are
    Gram-Schmidt orthonormalised; the third column is their cross product.
    """
    pair = x.reshape(*x.shape[:-1], 3, 2)
    b1 = torch.nn.functional.normalize(pair[..., 0], dim=-1)
    a2 = pair[..., 1]
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2)], dim=-1)


def rotmat_to_rot6d(rotmat: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) -> 6D (..., 6): the first two columns, row-major (inverse of :func:`rot6d_to_rotmat`)."""
    return rotmat[..., :2].reshape(*rotmat.shape[:-2], 6)


def rotmat_to_axis_angle(rotmat: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> axis-angle (..., 3), float64."""
    flat = np.asarray(rotmat, dtype=np.float64).reshape(-1, 3, 3)
    return Rotation.from_matrix(flat).as_rotvec().reshape(*np.shape(rotmat)[:-2], 3)


def axis_angle_to_rotmat(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3), float64."""
    flat = np.asarray(rotvec, dtype=np.float64).reshape(-1, 3)
    return Rotation.from_rotvec(flat).as_matrix().reshape(*np.shape(rotvec)[:-1], 3, 3)


def weak_perspective(points: Tensor, cam: Tensor) -> Tensor:
    """Project camera-oriented points (B, J, 3) with cameras (B, 3) = (scale, tx, ty) -> (B, J, 2) crop coordinates."""
    return cam[:, None, :1] * points[..., :2] + cam[:, None, 1:]
