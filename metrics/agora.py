"""The official AGORA protocol (pixelite1201/agora_evaluation), quirks included.

Three stages, each reproducing one file of the official evaluator (``protocols.md``
§2.2-§2.5, snapshot 8c9dece):

1. matching per image -- :mod:`humanbench.metrics.agora_matching` (``matching.py``);
2. per-person root-aligned errors of the matched people -- this module
   (``calculate_v2v_error.py``), vectorised over all matched people of all images;
3. aggregation -- :mod:`humanbench.metrics.agora_aggregate` (``compute_average_error.py``).

Per-person errors (metres, mean L2 over the points of a part, in the arrays' dtype):

* SMPL-X body: joints 0-21 and the 4010 ``body_verts_smplx`` vertices, both sides
  aligned at their own **hip midpoint** ``(J1 + J2) / 2`` (not joint 0);
* hands: wrist (20 left / 21 right) + joints 25-39 / 40-54, and the 778 MANO vertex
  ids, aligned at the wrist; face: neck (12) + landmarks 76-126 and the 5023 FLAME
  vertex ids, aligned at the neck. The root joint stays in the joint set, so its zero
  error is part of the mean (hand MPJPE = sum of 15 errors / 16, face = sum of 51 / 52);
* SMPL: joints 0-23 and the 4010 ``body_verts_smpl`` vertices at the hip midpoint.

The vertex index sets are inputs (:class:`VertexSets`): the official files from the
user's folder, or synthetic ones. The Procrustes-aligned variants the official code
also computes are never reported there and are not computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from humanbench.metrics.agora_aggregate import (
    BODY_PARTS,
    SMPLX_PARTS,
    AgoraSummary,
    ImageResult,
    Model,
    aggregate,
)
from humanbench.metrics.agora_matching import MatchResult, match_greedy, matching_validity

__all__ = [
    "FACE_JOINTS",
    "HIP_JOINTS",
    "LEFT_HAND_JOINTS",
    "RIGHT_HAND_JOINTS",
    "SMPL_BODY_JOINTS",
    "SMPLX_BODY_JOINTS",
    "AgoraImage",
    "VertexSets",
    "aligned_mean_error",
    "evaluate",
    "evaluate_images",
    "hip_midpoint",
    "gathered_errors",
    "person_errors",
    "stacked_vertex_ids",
]

SMPLX_BODY_JOINTS = np.arange(22)
"""SMPL-X body joints of the body MPJPE (official ``SMPLX_JOINTS = 22``)."""

SMPL_BODY_JOINTS = np.arange(24)
"""SMPL joints of the body MPJPE (official ``SMPL_JOINTS = 24``)."""

HIP_JOINTS = (1, 2)
"""Left / right hip; their midpoint is the official body root (``align_by_pelvis``)."""

LEFT_HAND_JOINTS = np.r_[20, 25:40]
"""Left wrist (root, row 0) + 15 left-hand joints of SMPL-X."""

RIGHT_HAND_JOINTS = np.r_[21, 40:55]
"""Right wrist (root, row 0) + 15 right-hand joints of SMPL-X."""

FACE_JOINTS = np.r_[12, 76:127]
"""Neck (root, row 0) + 51 face landmarks of SMPL-X's 127 joints."""


@dataclass(frozen=True, eq=False)
class VertexSets:
    """Vertex index sets of the AGORA parts.

    Attributes:
        body: (4010,) ``body_verts_smplx`` (into 10475) or ``body_verts_smpl`` (into 6890).
        left_hand: (778,) MANO ids into SMPL-X (``MANO_SMPLX_vertex_ids.pkl``); None for SMPL.
        right_hand: (778,) likewise.
        face: (5023,) FLAME ids into SMPL-X (``SMPL-X__FLAME_vertex_ids.npy``); None for SMPL.
    """

    body: np.ndarray
    left_hand: np.ndarray | None = None
    right_hand: np.ndarray | None = None
    face: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class AgoraImage:
    """One image's GT people and predictions (official dataframe row + prediction pickles).

    Attributes:
        gt_joints2d: (G, Jg, 2) ``gt_joints_2d``, 4K pixels (Jg = 127 for SMPL-X).
        gt_joints3d: (G, J, 3) ``gt_joints_3d`` (J >= 127 SMPL-X, >= 24 SMPL), metres.
        gt_verts: (G, V, 3) ``gt_verts``, camera frame, metres.
        is_valid: (G,) bool ``isValid``.
        occlusion: (G,) percent.
        kid: (G,) bool.
        orientation: (G,) degrees (:func:`~humanbench.metrics.agora_aggregate.orientation_deg`).
        pred_joints2d: (P, Jp, 2) submission ``joints`` (Jp >= 24), 4K pixels; P = 0
            when the image has no prediction file.
        pred_joints3d: (P, J, 3) ``allSmplJoints3d``.
        pred_verts: (P, V, 3) ``verts``.
    """

    gt_joints2d: np.ndarray
    gt_joints3d: np.ndarray
    gt_verts: np.ndarray
    is_valid: np.ndarray
    occlusion: np.ndarray
    kid: np.ndarray
    orientation: np.ndarray
    pred_joints2d: np.ndarray
    pred_joints3d: np.ndarray
    pred_verts: np.ndarray


def hip_midpoint(joints: np.ndarray) -> np.ndarray:
    """Official body root ``(J1 + J2) / 2.0``.

    Args:
        joints: (N, J, 3).

    Returns:
        (N, 3).
    """
    return (joints[:, HIP_JOINTS[0]] + joints[:, HIP_JOINTS[1]]) / 2.0


def aligned_mean_error(pred_points: np.ndarray, gt_points: np.ndarray,
                       pred_root: np.ndarray, gt_root: np.ndarray) -> np.ndarray:
    """Mean L2 error after moving each side to its own root, in the official operation order.

    ``mean_k sqrt(sum_xyz(((gt_k - gt_root) - (pred_k - pred_root))^2))``, bit-identical to
    the official per-person ``np.mean(np.sqrt(np.sum((gt - pred) ** 2, axis=1)))``:
    numpy reduces a length-3 axis left to right, ``(dx² + dy²) + dz²``, which is spelled
    out here (ten times faster than a reduction over a 3-long axis), and the mean runs
    over each person's C-contiguous row (whatever the inputs' layout), so with the same
    pairwise summation as the official 1-D mean -- a strided row would be summed
    sequentially (checked by ``tests/test_metrics_agora.py``).

    Args:
        pred_points: (N, K, 3).
        gt_points: (N, K, 3).
        pred_root: (N, 3).
        gt_root: (N, 3).

    Returns:
        (N,) in the inputs' promoted dtype.
    """
    diff = (gt_points - gt_root[:, None, :]) - (pred_points - pred_root[:, None, :])
    x, y, z = diff[..., 0], diff[..., 1], diff[..., 2]
    squared = np.multiply(x, x, order="C")  # C order: each person's mean reduces a contiguous row
    squared += y * y
    squared += z * z
    return np.mean(np.sqrt(squared, out=squared), axis=-1)


def stacked_vertex_ids(vertex_sets: VertexSets, model: Model = "smplx") -> tuple[np.ndarray, dict[str, slice]]:
    """All part vertex ids in one array, so that each side is gathered once.

    Args:
        vertex_sets: the part vertex ids (hands and face required for SMPL-X).
        model: ``"smplx"`` (body, lhand, rhand, face) or ``"smpl"`` (body).

    Returns:
        (U,) intp ids (body then hands then face, each in its given order) and
        part name -> its slice of them.
    """
    names = ("body",) if model == "smpl" else ("body", "lhand", "rhand", "face")
    sets = dict(zip(("body", "lhand", "rhand", "face"),
                    (vertex_sets.body, vertex_sets.left_hand, vertex_sets.right_hand, vertex_sets.face)))
    missing = [name for name in names if sets[name] is None]
    if missing:
        raise ValueError(f"{model} errors need the {', '.join(missing)} vertex ids")
    sizes = np.cumsum([0] + [len(sets[name]) for name in names])
    ids = np.concatenate([np.asarray(sets[name], dtype=np.intp) for name in names])
    if ids.size and ids.min() < 0:
        raise ValueError("vertex ids must be non-negative")
    return ids, {name: slice(int(a), int(b)) for name, a, b in zip(names, sizes[:-1], sizes[1:])}


def gathered_errors(pred_joints: np.ndarray, pred_points: np.ndarray, gt_joints: np.ndarray,
                    gt_points: np.ndarray, parts: dict[str, slice], model: Model = "smplx") -> dict[str, np.ndarray]:
    """Per-part errors of N people from vertices already gathered by :func:`stacked_vertex_ids`.

    Args:
        pred_joints: (N, J, 3) predicted 3D joints (J >= 127 SMPL-X, >= 24 SMPL).
        pred_points: (N, U, 3) predicted vertices at the stacked ids.
        gt_joints: (N, J', 3).
        gt_points: (N, U, 3).
        parts: part name -> slice of the U points.
        model: ``"smplx"`` or ``"smpl"``.

    Returns:
        :data:`SMPLX_PARTS` (or :data:`BODY_PARTS`) key -> (N,) error in metres.
    """
    pelvis_p, pelvis_g = hip_midpoint(pred_joints), hip_midpoint(gt_joints)
    body_joints = SMPLX_BODY_JOINTS if model == "smplx" else SMPL_BODY_JOINTS
    body = parts["body"]
    errors = {
        "body-MPJPE": aligned_mean_error(np.take(pred_joints, body_joints, axis=1),
                                         np.take(gt_joints, body_joints, axis=1), pelvis_p, pelvis_g),
        "body-MVE": aligned_mean_error(pred_points[:, body], gt_points[:, body], pelvis_p, pelvis_g),
    }
    if model == "smpl":
        return errors
    for name, joint_ids in (("lhand", LEFT_HAND_JOINTS), ("rhand", RIGHT_HAND_JOINTS), ("face", FACE_JOINTS)):
        root_p, root_g = pred_joints[:, joint_ids[0]], gt_joints[:, joint_ids[0]]
        errors[f"{name}-MPJPE"] = aligned_mean_error(np.take(pred_joints, joint_ids, axis=1),
                                                     np.take(gt_joints, joint_ids, axis=1), root_p, root_g)
        errors[f"{name}-MVE"] = aligned_mean_error(pred_points[:, parts[name]], gt_points[:, parts[name]],
                                                   root_p, root_g)
    return errors


def person_errors(pred_joints: np.ndarray, pred_verts: np.ndarray, gt_joints: np.ndarray,
                  gt_verts: np.ndarray, vertex_sets: VertexSets, model: Model = "smplx") -> dict[str, np.ndarray]:
    """Per-part errors of N matched (pred, GT) people at once.

    Args:
        pred_joints: (N, J, 3) predicted 3D joints (J >= 127 SMPL-X, >= 24 SMPL).
        pred_verts: (N, V, 3).
        gt_joints: (N, J', 3).
        gt_verts: (N, V, 3).
        vertex_sets: the part vertex ids (hands and face required for SMPL-X).
        model: ``"smplx"`` or ``"smpl"``.

    Returns:
        :data:`SMPLX_PARTS` (or :data:`BODY_PARTS`) key -> (N,) error in metres.
    """
    ids, parts = stacked_vertex_ids(vertex_sets, model)
    return gathered_errors(pred_joints, np.take(pred_verts, ids, axis=1), gt_joints,
                           np.take(gt_verts, ids, axis=1), parts, model)


def _gather_rows(arrays: Sequence[np.ndarray], ids: np.ndarray) -> np.ndarray:
    """Stack rows ``ids`` of per-person (V, 3) arrays without copying whole meshes first.

    Args:
        arrays: n (V, 3) arrays, one V.
        ids: (U,) non-negative row ids.

    Returns:
        (n, U, 3) C-contiguous, dtype promoted over ``arrays``.

    Raises:
        IndexError: an id is >= V.
    """
    n_rows = min(len(a) for a in arrays)
    if ids.size and ids.max() >= n_rows:
        raise IndexError(f"vertex id {ids.max()} out of range for {n_rows} vertices")
    out = np.empty((len(arrays), len(ids), 3), dtype=np.result_type(*arrays))
    for row, array in zip(out, arrays):
        np.take(array, ids, axis=0, out=row, mode="clip")  # "clip": unbuffered; ids were checked above
    return out


def _chunked_errors(images: Sequence[AgoraImage], image_ids: np.ndarray, pairs: np.ndarray,
                    vertex_sets: VertexSets, model: Model, chunk_size: int) -> dict[str, np.ndarray]:
    """Errors of the given (image, pred, gt) triples, ``chunk_size`` people at a time.

    Returns:
        part key -> (M,) errors, M = len(pairs).
    """
    ids, parts = stacked_vertex_ids(vertex_sets, model)
    keys = SMPLX_PARTS if model == "smplx" else BODY_PARTS
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for start in range(0, len(pairs), chunk_size):
        rows = list(zip(image_ids[start:start + chunk_size].tolist(), pairs[start:start + chunk_size].tolist()))
        errors = gathered_errors(
            np.stack([images[i].pred_joints3d[p] for i, (p, _) in rows]),
            _gather_rows([images[i].pred_verts[p] for i, (p, _) in rows], ids),
            np.stack([images[i].gt_joints3d[g] for i, (_, g) in rows]),
            _gather_rows([images[i].gt_verts[g] for i, (_, g) in rows], ids),
            parts, model,
        )
        for k in keys:
            chunks[k].append(errors[k])
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in chunks.items()}


def evaluate_images(images: Sequence[AgoraImage], vertex_sets: VertexSets, model: Model = "smplx",
                    chunk_size: int = 256) -> list[ImageResult]:
    """Match every image, then compute the errors of all matched people in batches.

    Args:
        images: the images, in dataset order.
        vertex_sets: part vertex ids.
        model: ``"smplx"`` or ``"smpl"``.
        chunk_size: matched people per vectorised batch (bounds memory).

    Returns:
        One :class:`ImageResult` per image; unmatched people have error 0.
    """
    matches: list[MatchResult] = [
        match_greedy(im.pred_joints2d, im.gt_joints2d, matching_validity(im.is_valid, im.occlusion))
        for im in images
    ]
    n_pairs = [len(m.pairs) for m in matches]
    image_ids = np.repeat(np.arange(len(images)), n_pairs)
    pairs = np.concatenate([m.pairs for m in matches]) if matches else np.zeros((0, 2), dtype=np.int64)
    flat = _chunked_errors(images, image_ids, pairs, vertex_sets, model, chunk_size)
    offsets = np.concatenate([[0], np.cumsum(n_pairs)])
    results = []
    for i, (im, m) in enumerate(zip(images, matches)):
        n_gt = len(im.gt_joints2d)
        gt_ids = m.pairs[:, 1]
        matched = np.zeros(n_gt, dtype=bool)
        matched[gt_ids] = True
        errors = {}
        for k, values in flat.items():
            errors[k] = np.zeros(n_gt, dtype=values.dtype)
            errors[k][gt_ids] = values[offsets[i]:offsets[i + 1]]
        results.append(ImageResult(
            valid=np.asarray(im.is_valid, dtype=bool), kid=np.asarray(im.kid, dtype=bool), matched=matched,
            errors=errors, n_false_positives=len(m.false_positives), has_predictions=len(im.pred_joints2d) > 0,
            occlusion=np.asarray(im.occlusion), orientation=np.asarray(im.orientation),
        ))
    return results


def evaluate(images: Sequence[AgoraImage], vertex_sets: VertexSets, model: Model = "smplx",
             chunk_size: int = 256) -> AgoraSummary:
    """The whole official protocol: :func:`evaluate_images` then :func:`aggregate`."""
    return aggregate(evaluate_images(images, vertex_sets, model, chunk_size), model)
