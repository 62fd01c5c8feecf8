"""Moving a posed SMPL-family body rigidly while keeping smplx's parameter semantics.

smplx rotates the body about its rest-pose pelvis ``J0(betas)`` and then adds ``transl``. Moving
the posed body by ``X' = R X + t`` (world -> camera, fit -> scene, EasyMocap's Rh/Th, ...) therefore
changes the root parameters to ``orient' = R · orient`` and ``transl' = R (transl + J0) + t - J0``
(formats.md §1.4, §5.3); only rotating the orientation is wrong for anything that projects.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def move_root(global_orient: np.ndarray, transl: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
              pelvis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Root parameters of the body after the rigid motion ``X' = rotation @ X + translation``.

    Args:
        global_orient: (...,3) axis-angle.
        transl: (...,3) smplx translation.
        rotation: (...,3,3), broadcastable against the leading dims of ``global_orient``.
        translation: (...,3), broadcastable likewise.
        pelvis: (...,3) rest-pose pelvis ``J0(betas)`` of each body, broadcastable likewise.

    Returns:
        ``(orient', transl')``, each (...,3) with the broadcast leading shape.
    """
    lead = np.broadcast_shapes(global_orient.shape[:-1], transl.shape[:-1], rotation.shape[:-2],
                               np.shape(translation)[:-1], np.shape(pelvis)[:-1])
    matrices = np.broadcast_to(rotation, lead + (3, 3))
    orient = Rotation.from_matrix(np.array(matrices.reshape(-1, 3, 3))) * Rotation.from_rotvec(
        np.array(np.broadcast_to(global_orient, lead + (3,)).reshape(-1, 3)))
    moved = np.einsum("...ij,...j->...i", matrices, transl + pelvis) + translation - pelvis
    return orient.as_rotvec().reshape(lead + (3,)), np.broadcast_to(moved, lead + (3,)).copy()
