"""Reference predictors: the floor and the ceiling any real method is compared against.

- :func:`mean_pose_predictions`: every person gets the mean shape and body pose of a training
  shard set, standing upright and facing the camera (no image evidence at all).
- :func:`noisy_gt_predictions`: the GT parameters plus Gaussian noise (a sanity check that the
  metrics rise smoothly with the noise).

Both return :class:`~humanbench.predictions.Predictions` for every person of the GT shards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from humanbench.predictions import Predictions
from humanbench.schema import PARAM_FIELDS, decode_sample
from humanbench.shards import iter_encoded

UPRIGHT_FACING_CAMERA = Rotation.from_euler("x", [np.pi]).as_rotvec().reshape(3)
"""Axis-angle that turns the SMPL rest frame (y up, facing +z) upright in the OpenCV camera frame."""


SMPLX_EXTRA = ("left_hand_pose", "right_hand_pose", "jaw_pose", "leye_pose", "reye_pose", "expression")
POSE_NOISE = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose")


def _people(shards: str | Path, scale_joints2d_to: tuple[int, int] | None = None
            ) -> tuple[np.ndarray, np.ndarray, str, dict[str, np.ndarray]]:
    """Keys (N,), person indices (N,), the body model and the stacked GT arrays of every person.

    The arrays are the body-model parameters (with the SMPL-X extras) when the GT has them, else the
    GT ``vertices``; plus ``joints2d`` (N,J,2) rescaled to ``scale_joints2d_to`` = (W, H) if given.
    """
    keys, person, rows, body_model = [], [], [], None
    for encoded in iter_encoded(shards):
        sample = decode_sample(encoded)
        body_model = sample.body_model
        names = [n for n in (*PARAM_FIELDS, *SMPLX_EXTRA) if n in sample.people] or ["vertices"]
        for p in range(sample.num_people):
            keys.append(sample.key)
            person.append(p)
            row = {name: sample.people[name][p] for name in names}
            if scale_joints2d_to is not None:
                scale = np.array(scale_joints2d_to, dtype=np.float64) / (sample.width, sample.height)
                row["joints2d"] = sample.people["joints2d"][p, :, :2] * scale
            rows.append(row)
    arrays = {name: np.stack([r[name] for r in rows]) for name in rows[0]} if rows else {}
    return np.asarray(keys, dtype=str), np.asarray(person, dtype=np.int64), body_model or "smpl", arrays


def mean_pose_predictions(train_shards: str | Path, shards: str | Path) -> Predictions:
    """The mean betas and body pose of ``train_shards`` (axis-angle averaged), upright, for every person of ``shards``."""
    _, _, train_model, train = _people(train_shards)
    keys, person, body_model, _ = _people(shards)
    if train_model != body_model:
        raise ValueError(f"training shards hold {train_model}, evaluated shards {body_model}")
    count = len(keys)
    return Predictions(keys=keys, person=person, body_model=body_model,
                       betas=np.tile(train["betas"][:, :10].mean(0), (count, 1)),
                       global_orient=np.tile(UPRIGHT_FACING_CAMERA, (count, 1)),
                       body_pose=np.tile(train["body_pose"].mean(0), (count, 1)))


def noisy_gt_predictions(shards: str | Path, *, pose_sigma: float = 0.05, shape_sigma: float = 0.1,
                         vertex_sigma: float = 0.01, scale_joints2d_to: tuple[int, int] | None = None,
                         seed: int = 0) -> Predictions:
    """The GT plus Gaussian noise for every person: parameters (radians for poses, SMPL-X hands and jaw
    included) when the GT has them, else the GT mesh with ``vertex_sigma`` metres of noise per vertex.

    ``scale_joints2d_to`` = (W, H) adds the GT 2D joints rescaled to that image size, as detection
    protocols need (AGORA: 3840 x 2160).
    """
    keys, person, body_model, gt = _people(shards, scale_joints2d_to)
    rng = np.random.default_rng(seed)
    if "vertices" in gt:
        noisy = {"vertices": gt["vertices"] + rng.normal(scale=vertex_sigma, size=gt["vertices"].shape)}
    else:
        noisy = {name: value.copy() for name, value in gt.items() if name not in ("transl", "joints2d")}
        noisy["betas"] = gt["betas"][:, :10] + rng.normal(scale=shape_sigma, size=gt["betas"][:, :10].shape)
        for name in POSE_NOISE:
            if name in noisy:
                noisy[name] = noisy[name] + rng.normal(scale=pose_sigma, size=noisy[name].shape)
    if "joints2d" in gt:
        noisy["joints2d"] = gt["joints2d"]
    return Predictions(keys=keys, person=person, body_model=body_model, **noisy)
